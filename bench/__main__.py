"""``python -m bench [--quick]``: every case of issue 5, hypero beside its baseline in one run.

Uses the PostgreSQL and Redis of this machine (``--db``, ``--broker``); owns one fresh schema
(dropped at the end) and one Redis database number (flushed; 13 by default). Starts only the
workers a case needs, each in its own session, and stops them. Prints one table; the full run
(without ``--quick``) also writes ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench._common import DEFAULT_BROKER, DEFAULT_DB, Env, Procs, Row

#: case number -> module; each module has ``measure(env, procs) -> list[Row]``
CASES = {
    "1": "bench.e2e", "2": "bench.dispatch", "3": "bench.hexapi", "4": "bench.export",
    "5": "bench.status", "6": "bench.scaling", "7": "bench.recovery",
}
ORDER = ["3", "2", "4", "5", "1", "6", "7"]  # cheap ones first
RESULTS = Path(__file__).with_name("RESULTS.md")


def _version(module: str) -> str:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return "-"


def machine(env: Env) -> list[str]:
    """Lines describing the machine, the services and the versions."""
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    except OSError:
        mem = 0.0
    try:
        with env.pg("public") as c:
            pg = c.execute("SHOW server_version").fetchone()[0]
    except Exception as e:
        pg = f"unreachable ({e})"
    try:
        import redis

        with redis.Redis.from_url(env.broker) as r:
            rv = r.info("server")["redis_version"]
    except Exception as e:
        rv = f"unreachable ({e})"
    pkgs = ["hypero", "celery", "kombu", "billiard", "redis", "psycopg", "SQLAlchemy", "optuna",
            "psutil"]
    return [
        f"machine: {os.cpu_count()} CPUs ({cpu}), {mem:.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
        f"services: PostgreSQL {pg} ({env.libpq}), Redis {rv} ({env.broker})",
        "versions: " + ", ".join(f"{p} {_version(p)}" for p in pkgs),
    ]


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def _met(row: Row) -> str:
    return "-" if row.met is None else ("met" if row.met else "NOT MET")


def table(rows: list[tuple[Row, str]]) -> list[str]:
    """The result table as markdown lines; each row with the load average of its case."""
    out = ["| case | hypero | baseline | unit | ratio | target | | load (1/5/15 min) | notes |",
           "|---|---:|---:|---|---:|---|---|---|---|"]
    for r, ld in rows:
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}"
        out.append(f"| {r.case} | {_num(r.hypero)} | {_num(r.baseline)} | {r.unit} | {ratio} "
                   f"| {r.target} | {_met(r)} | {ld} | {r.note} |")
    return out


def run(env: Env, cases: list[str], write: bool) -> int:
    env.workdir.mkdir(parents=True, exist_ok=True)
    procs = Procs(env.workdir / "logs")
    head = machine(env)
    for line in head:
        print(line, flush=True)
    started = time.time()
    rows: list[tuple[Row, str]] = []
    failed: list[str] = []
    try:
        env.flush_redis()
        import hypero

        hypero.connect(env.db, schema=env.schema).close()  # the schema, migrated once
        for case in cases:
            t0 = time.time()
            print(f"-- case {case} ({CASES[case]}) load {load()}", flush=True)
            try:
                got = importlib.import_module(CASES[case]).measure(env, procs)
            except Exception as e:  # one broken case must not hide the others' figures
                import traceback

                traceback.print_exc()
                failed.append(f"case {case}: {type(e).__name__}: {e}")
                continue
            finally:
                procs.stop_all()
            ld = load()
            for r in got:
                rows.append((r, ld))
                runs = "; ".join(f"{k} {[round(x, 4) for x in v]}" for k, v in r.runs.items())
                print(f"   {r.case}: hypero {_num(r.hypero)} baseline {_num(r.baseline)} "
                      f"{r.unit} {_met(r)}  {runs}", flush=True)
            print(f"   ({time.time() - t0:.0f} s)", flush=True)
    finally:
        procs.stop_all()
        env.flush_redis()
        env.drop_schema()
        shutil.rmtree(env.workdir, ignore_errors=True)
    lines = table(rows)
    print()
    print("\n".join(lines))
    for f in failed:
        print(f"FAILED {f}")
    took = time.time() - started
    print(f"\n{'quick' if env.quick else 'full'} run, {took:.0f} s, load average at the end "
          f"{load()}")
    if write:
        _write_results(head, lines, failed, took)
        print(f"wrote {RESULTS}")
    return 1 if failed else 0


def _write_results(head: list[str], lines: list[str], failed: list[str], took: float) -> None:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=RESULTS.parent).stdout.strip()
    except OSError:
        commit = "?"
    text = [
        "# hypero benchmark results", "",
        f"`python -m bench` (full run), {time.strftime('%Y-%m-%d %H:%M')}, commit {commit}, "
        f"{took / 60:.0f} min. Medians of alternating runs; every ratio compares figures "
        "measured in this same run. See `bench/README.md` for what each case measures.", "",
        *(f"- {h}" for h in head), "", *lines, "",
        *(f"- FAILED {f}" for f in failed),
    ]
    RESULTS.write_text("\n".join(text).rstrip() + "\n")


def standalone(case: str, argv: list[str] | None, doc: str | None) -> None:
    """Run one case on its own (``python -m bench.e2e [--quick]``)."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--broker", default=DEFAULT_BROKER)
    args = p.parse_args(argv)
    sys.exit(run(Env(db=args.db, broker=args.broker, quick=args.quick), [case], write=False))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="about 3 minutes; no RESULTS.md")
    p.add_argument("--cases", default=",".join(ORDER), help="which cases, e.g. 1,4 "
                   f"(default: all, in the order {','.join(ORDER)})")
    p.add_argument("--db", default=DEFAULT_DB, help=f"PostgreSQL URL (default {DEFAULT_DB})")
    p.add_argument("--broker", default=DEFAULT_BROKER,
                   help=f"Redis URL; its database is flushed (default {DEFAULT_BROKER})")
    p.add_argument("--no-write", action="store_true", help="do not write bench/RESULTS.md")
    args = p.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        p.error(f"--cases: unknown {unknown} (known: {sorted(CASES)})")
    env = Env(db=args.db, broker=args.broker, quick=args.quick)
    write = not args.quick and not args.no_write and cases == ORDER
    return run(env, cases, write)


if __name__ == "__main__":
    sys.exit(main())
