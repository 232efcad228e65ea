"""Soak: many trials on real services while random faults of issue 4 (kinds 1-8) hit them; then
the invariants, as a table.

    python -m bench.soak [--trials 1000] [--faults 100] [--kinds 1,2,3,4,5,6,7,8] [--seed S]

Starts its own PostgreSQL cluster and ``redis-server`` (kinds 5 and 6 restart them) and
``hypero worker`` processes on this machine, runs the journalled trial of ``tests/faults`` in
several sweeps, and injects one fault at a time, at random moments, of a kind drawn at random:

1. a worker's whole process group SIGKILLed (a replacement worker is started);
2. one trial's process SIGKILLed;
3. a worker SIGSTOPped for longer than the lease, then SIGCONTed;
4. ``hypero run --detach`` SIGKILLed while it enqueues a sweep, then ``hypero run --resume``;
5. Redis SIGKILLed and restarted without persistence (this command re-publishes every 15 s, as
   an attached ``hypero run`` does);
6. PostgreSQL stopped for less or for more than the lease, then started again;
7. a trial longer than the visibility timeout, its message delivered again while it runs;
8. the network of a worker in its own namespace cut for longer than the lease, then healed
   (needs root and ``ip netns``; uses ``tests/faults/test_partition.py``'s helpers).

Recovery is the time from a fault's injection until each trial it hit while running is taken
back from the attempt it hit (queued again, final, or claimed by a newer attempt) or that
attempt heartbeats again after the fault; for kind 4, until ``--resume`` returned; for kind 5,
until the broker holds every queued trial again. It includes the fault's own duration.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import Celery

from hypero import config, dispatcher, spec, sweeps
from hypero.broker import pending_hex_ids
from hypero.errors import HyperoError
from hypero.tasks import configure
from tests import services
from tests.conftest import Target
from tests.faults import journal
from tests.faults.harness import TRIAL, Rig, alive, verdict, wait_for
from tests.workers import Procs, hypero_cli

LEASE = 3.0
VISIBILITY = 4.0  # the workers' HYPERO_VISIBILITY_TIMEOUT
NAMES = {1: "worker host killed (kill -9 group)", 2: "trial process killed",
         3: "worker SIGSTOPped > lease", 4: "dispatcher killed mid-enqueue",
         5: "Redis restarted empty", 6: "PostgreSQL restarted", 7: "trial > visibility timeout",
         8: "worker cut off > lease (netns)"}


@dataclass
class Fault:
    kind: int
    at: float  # when it was injected (time.time())
    end: float  # when the injection was over (time.time())
    hits: list[tuple[int, int]] = field(default_factory=list)  # (hex, attempt) it hit running
    recovery: float | None = None  # seconds; None while not recovered
    note: str = ""


class Soak:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args, self.tmp = args, tmp
        self.rng = random.Random(args.seed)
        self.procs = Procs(tmp)
        self.stack = contextlib.ExitStack()
        self.link: Any = None
        self.kinds = [int(k) for k in args.kinds.split(",")]
        self.skipped: dict[int, str] = {}
        self.faults: list[Fault] = []
        self.sweep_ids: list[int] = []
        self.inside: set[str] = set()
        self.pending: list[tuple[int, int]] = []  # (sweep number, trials) not dispatched yet
        self.long: set[int] = set()  # trials running past the visibility timeout at a kind 7

    # -- services and workers -----------------------------------------------------------------

    def start(self) -> None:
        host = "127.0.0.1"
        if 8 in self.kinds:
            host = self._netns() or host
        self.pg = services.start_throwaway_postgres(self.tmp)
        self.stack.callback(self.pg.close)
        redis_cls: Any = services.RedisServer
        if self.link is not None:
            self.pg.stop()  # again on the pair's host address, open to the namespace
            self.pg.host = host
            with open(self.pg.datadir / "pg_hba.conf", "a") as hba:
                hba.write(f"\nhost all all {self.link.subnet} trust\n")
            self.pg.start()
            from tests.faults.test_partition import AuthRedis
            redis_cls = AuthRedis
        binary = services.ensure_program("redis-server", "redis-server")
        self.redis = redis_cls(Path(tempfile.mkdtemp(prefix="redis-", dir=self.tmp)),
                               services.free_port(), binary=binary, remove_workdir=False)
        self.redis.host = host
        self.redis.start()
        self.stack.callback(self.redis.close)
        target = self.target = Target("postgresql", self.pg.url, "hyper")
        self.rig = Rig(target, f"{self.redis.url}/0", self.procs, self.tmp,
                       env={"HYPERO_VISIBILITY_TIMEOUT": str(VISIBILITY)})
        settings = config.Settings(db=target.url, schema="hyper", broker=self.rig.broker,
                                   visibility_timeout=VISIBILITY)
        self.rig.celery = configure(Celery("soak"), settings, self.rig.queue)
        self.conn = target.connect()
        self.stack.callback(self.conn.close)
        for _ in range(self.args.workers):
            self.worker()
        if self.link is not None:
            self.worker(inside=True)
        self.rig.ready(timeout=120)

    def _netns(self) -> str | None:
        try:
            from tests.faults.test_partition import _link
            self.link = self.stack.enter_context(_link())
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # ImportError, or pytest's skip when ip netns is refused
            self.skipped[8] = f"no network namespace: {type(e).__name__}: {e}"
            self.kinds.remove(8)
            return None
        return str(self.link.host)

    def worker(self, inside: bool = False) -> str:
        n = len(self.rig.workers)
        env = {"HYPERO_SPOOL": str(self.tmp / f"spool-{n}")}
        if not inside:
            return self.rig.worker(concurrency=self.args.concurrency, env=env)
        name = f"inside{n}@localhost"
        self.procs.start(["ip", "netns", "exec", self.link.ns, sys.executable, "-m", "hypero",
                          "worker", "--broker", self.rig.broker, "--queues", self.rig.queue,
                          "--concurrency", str(self.args.concurrency), "--name", name,
                          "--loglevel", "INFO"], {**self.rig.env, **env}, name.partition("@")[0])
        self.rig.workers.append(name)
        self.inside.add(name)
        return name

    def live_workers(self) -> list[str]:
        return [w for w in self.rig.workers if self.rig.proc(w).poll() is None]

    # -- sweeps ---------------------------------------------------------------------------------

    def spec(self, j: int, n: int) -> Path:
        axis = f"{{distribution: int_uniform, min: 0, max: {n - 1}}}"
        path = self.tmp / f"s{j}.yaml"
        path.write_text(f"""
battery: soak {j}
trial: {TRIAL}
method: grid
queue: {self.rig.queue}
lease: {LEASE:g}s
max_attempts: 10
parameters:
  i: {axis}
""")
        return path

    def dispatch(self, path: Path) -> int:
        sid = dispatcher.dispatch(self.conn, spec.load(path), self.rig.celery, seed=1)
        self.sweep_ids.append(sid)
        return sid

    def queued(self) -> int:
        with contextlib.suppress(HyperoError):
            return sum(sweeps.counts(self.conn.store, s)["queued"] for s in self.sweep_ids)
        return 10**9

    def running(self, worker: str | None = None) -> list[tuple[int, int]]:
        """``(hex, attempt)`` of the trials running (on ``worker``); [] while the database is
        away."""
        try:
            rows = [self.conn.store.experiment(h) for s in self.sweep_ids
                    for h in sweeps.trial_ids(self.conn.store, s, ["running"])]
        except HyperoError:
            return []
        return [(int(r["id"]), int(r["attempt"])) for r in rows
                if worker is None or r["worker"] == worker]

    # -- the watcher: re-publishing (as an attached hypero run) and recoveries -------------------

    def watch(self, stop: threading.Event) -> None:
        """Every half second, in a thread with its own connection: re-publish what the broker
        lost (every 15 s, as an attached ``hypero run`` does) and note recoveries."""
        conn = self.target.connect()
        last_republish = time.monotonic()
        while not stop.wait(0.5):
            with contextlib.suppress(Exception):
                if time.monotonic() - last_republish > 15.0:
                    last_republish = time.monotonic()
                    for sid in list(self.sweep_ids):
                        if sweeps.counts(conn.store, sid)["queued"]:
                            dispatcher.resume(conn, sid, self.rig.celery, blind=False)
                for f in list(self.faults):
                    if f.recovery is None:
                        self._recovered(conn, f)
        conn.close()

    def _recovered(self, conn: Any, f: Fault) -> None:
        now = time.time()
        if f.kind == 5:
            queued = {h for s in list(self.sweep_ids)
                      for h in sweeps.trial_ids(conn.store, s, ["queued"])}
            held = pending_hex_ids(self.rig.celery, self.rig.queue) or set()
            if queued <= held:
                f.recovery = now - f.at
            return
        for hid, attempt in f.hits:  # taken back, or its attempt heartbeating again
            row = conn.store.experiment(hid)
            beat = row["heartbeat_at"]
            if not (row["state"] != "running" or row["attempt"] > attempt
                    or (beat is not None and beat.timestamp() > f.end)):
                return
        f.recovery = now - f.at

    # -- the faults -------------------------------------------------------------------------------

    def inject(self, kind: int) -> Fault:
        t0 = time.time()
        f: Fault = getattr(self, f"_kind{kind}")()
        f.at = t0
        f.end = f.end or time.time()
        return f

    def _busy_worker(self, among: list[str]) -> str:
        busy = [w for w in among if self.running(w)]
        return self.rng.choice(busy or among)

    def _kind1(self) -> Fault:
        name = self._busy_worker(self.live_workers())
        self.rig.kill(name)
        hits = self.running(name)
        self.worker(inside=name in self.inside)
        return Fault(1, 0, 0, hits, note=name)

    def _kind2(self) -> Fault:
        live = [e for e in journal.running(self.rig.entries()) if alive(e.pid)]
        if not live:
            return Fault(2, 0, 0, note="no trial running")
        e = self.rng.choice(live)
        with contextlib.suppress(ProcessLookupError):
            os.kill(e.pid, signal.SIGKILL)
        return Fault(2, 0, 0, [(e.hex, e.attempt)])

    def _kind3(self) -> Fault:
        name = self._busy_worker(self.live_workers())
        hits = self.running(name)
        self.rig.signal_group(name, signal.SIGSTOP)
        time.sleep(LEASE + self.rng.uniform(1.0, 4.0))
        self.rig.signal_group(name, signal.SIGCONT)
        return Fault(3, 0, time.time(), hits, note=name)

    def _kind4(self) -> Fault:
        j, n = self.pending.pop(0)
        path = self.spec(j, n)
        proc = self.procs.start([sys.executable, "-m", "hypero", "run", str(path), "--detach",
                                 "--broker", self.rig.broker], self.rig.env, f"dispatch{j}")

        def sweep_row() -> dict[str, Any] | None:
            with contextlib.suppress(HyperoError):
                bid = self.conn.store.battery_id(f"soak {j}", create=False)
                rows = sweeps.sweeps_of(self.conn.store, bid)
                return rows[0] if rows else None
            return None

        row = wait_for("the dispatcher's sweep", sweep_row, 120, every=0.01)
        time.sleep(self.rng.uniform(0.0, 0.05))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        killed = time.time()
        recorded = len(sweeps.trial_ids(self.conn.store, int(row["id"])))
        state = sweeps.get_sweep(self.conn.store, int(row["id"]))["state"]
        self.sweep_ids.append(int(row["id"]))
        if state == "enqueueing":
            r = hypero_cli(["run", str(path), "--resume", "--detach", "--broker",
                            self.rig.broker], self.rig.env, timeout=300)
            if r.returncode != 0:
                raise RuntimeError(f"hypero run --resume failed: {r.stdout}{r.stderr}")
        f = Fault(4, 0, killed, note=f"{recorded}/{n} recorded, {state}")
        f.recovery = time.time() - killed
        return f

    def _kind5(self) -> Fault:
        self.redis.kill()
        time.sleep(self.rng.uniform(0.5, 2.0))
        self.redis.start()
        return Fault(5, 0, time.time())

    def _kind6(self) -> Fault:
        hits = self.running()
        down = LEASE * (self.rng.uniform(0.2, 0.7) if self.rng.random() < 0.5
                        else self.rng.uniform(1.5, 2.5))
        self.pg.stop()
        time.sleep(down)
        self.pg.start()
        return Fault(6, 0, time.time(), hits, note=f"down {down:.1f} s")

    def _kind7(self) -> Fault:
        def overdue() -> list[int]:  # running for longer than the visibility timeout
            with contextlib.suppress(HyperoError):
                rows = [self.conn.store.experiment(h) for h, _ in self.running()]
                return [int(r["id"]) for r in rows if r["started_at"] is not None
                        and time.time() - r["started_at"].timestamp() > VISIBILITY + 0.3]
            return []

        with contextlib.suppress(AssertionError):
            wait_for("a trial past the visibility timeout", overdue, 60)
        late = overdue()
        with self.rig.celery.connection_for_write() as c:  # what a starting worker does
            c.default_channel.qos.restore_visible(num=1000, interval=1)
        self.long.update(late)
        return Fault(7, 0, 0, note=f"{len(late)} trials past it")

    def _kind8(self) -> Fault:
        inside = [w for w in self.live_workers() if w in self.inside]
        hits = [h for w in inside for h in self.running(w)]
        self.link.cut()
        try:
            time.sleep(LEASE + self.rng.uniform(1.0, 4.0))
        finally:
            self.link.heal()
        return Fault(8, 0, time.time(), hits)

    # -- the run ----------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        a = self.args
        kinds = [self.rng.choice(self.kinds) for _ in range(a.faults)]
        n_sweeps = max(8, kinds.count(4) + 3)
        sizes = [a.trials // n_sweeps + (i < a.trials % n_sweeps) for i in range(n_sweeps)]
        slots = a.concurrency * (a.workers + (1 if self.link is not None else 0))
        # long enough for the faults (about 4 s each, one at a time) to find trials running
        mean = min(max(slots * a.faults * 4.0 / max(a.trials, 1), 0.3), 8.0)
        sleeps = {i: round(self.rng.uniform(0.4 * mean, 1.6 * mean), 2) for i in range(max(sizes))}
        for i in self.rng.sample(sorted(sleeps), k=len(sleeps) // 8):  # some outlast VISIBILITY
            sleeps[i] = round(VISIBILITY + self.rng.uniform(2.0, 6.0), 2)
        self.rig.plan(sleep=mean, sleeps=sleeps)
        self.pending = list(enumerate(sizes))
        stop = threading.Event()
        watcher = threading.Thread(target=self.watch, args=(stop,), daemon=True)
        watcher.start()
        t0 = time.monotonic()
        for k, kind in enumerate(kinds):
            self._feed(reserve=kinds[k:].count(4))
            time.sleep(self.rng.uniform(0.5, 2.5))
            with contextlib.suppress(AssertionError):
                wait_for("a trial running", lambda: self.running() or self.queued() == 0, 30)
            f = self.inject(kind)
            self.faults.append(f)
            print(f"[{k + 1:3}/{a.faults}] {time.monotonic() - t0:6.0f}s kind {kind}: "
                  f"{NAMES[kind]}; hit {len(f.hits)} {f.note}", file=sys.stderr, flush=True)
        deadline = time.monotonic() + a.final_timeout
        while time.monotonic() < deadline:
            self._feed(reserve=0)
            time.sleep(1.0)
            with contextlib.suppress(HyperoError):
                if not self.pending and all(sweeps.counts(self.conn.store, s)["queued"] == 0
                       and sweeps.counts(self.conn.store, s)["running"] == 0
                       for s in self.sweep_ids) and all(f.recovery is not None
                                                        for f in self.faults if f.kind != 7):
                    break
        elapsed = time.monotonic() - t0
        stop.set()
        watcher.join(10)
        v = verdict(self.conn, self.sweep_ids, self.rig.entries())
        return {"verdict": v, "elapsed": elapsed, "slots": slots, "mean": mean}

    def _feed(self, reserve: int) -> None:
        """Dispatch sweeps while few trials wait, keeping ``reserve`` sweeps for kind 4."""
        while len(self.pending) > reserve and self.queued() < 3 * self.args.concurrency * 4:
            j, n = self.pending.pop(0)
            self.dispatch(self.spec(j, n))


def report(soak: Soak, out: dict[str, Any]) -> str:
    v, faults = out["verdict"], soak.faults
    hits = sum(len(f.hits) for f in faults)
    lines = [f"soak: {v.trials} trials in {len(soak.sweep_ids)} sweeps, {len(faults)} faults, "
             f"{out['slots']} worker slots, lease {LEASE:g} s, visibility timeout "
             f"{VISIBILITY:g} s, trials ~{out['mean']:.1f} s, {out['elapsed'] / 60:.1f} min", "",
             f"{'kind':<5}{'fault':<38}{'injected':>9}{'hit trials':>11}{'worst recovery':>16}"]
    for kind in range(1, 9):
        mine = [f for f in faults if f.kind == kind]
        if kind in soak.skipped:
            lines.append(f"{kind:<5}{NAMES[kind]:<38}{'-':>9}   not run: {soak.skipped[kind]}")
            continue
        rec = [f.recovery for f in mine]
        worst = ("-" if kind == 7 or not mine else "never" if None in rec
                 else f"{max(r for r in rec if r is not None):.1f} s")
        lines.append(f"{kind:<5}{NAMES[kind]:<38}{len(mine):>9}"
                     f"{sum(len(f.hits) for f in mine):>11}{worst:>16}")
    deliveries = Counter(line.split("run_trial[hypero-")[1].split("-")[0]
                         for w in soak.rig.workers for line in soak.rig.log(w).splitlines()
                         if "run_trial[hypero-" in line and "received" in line)
    redelivered = sum(1 for h in soak.long if deliveries[str(h)] > 1)
    long_hits = sum(1 for f in faults for h, _ in f.hits if h in soak.long)
    recs = [f.recovery for f in faults if f.kind != 7 and f.recovery is not None]
    lines += ["", f"{'trials':<16}{v.trials}",
              f"{'executions':<16}{v.executions}  (bound: trials + hit trials = {v.trials + hits})",
              f"{'lost':<16}{len(v.lost)}", f"{'duplicated':<16}{len(v.duplicated)}",
              f"{'non-final':<16}{len(v.non_final)}",
              f"{'worst recovery':<16}{max(recs):.1f} s" if recs else "worst recovery  -",
              f"kind 7: {len(soak.long)} trials past the visibility timeout at a redelivery, "
              f"{redelivered} of them delivered again while running; their executions: "
              f"{sum(v.executions_of[h] for h in soak.long)} (bound: {len(soak.long)} + "
              f"{long_hits} hits of other faults on them)"]
    for bad in (v.lost + v.duplicated + [f"non-final hex {h}" for h in v.non_final])[:20]:
        lines.append(f"  ! {bad}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=1000)
    p.add_argument("--faults", type=int, default=100)
    p.add_argument("--kinds", default="1,2,3,4,5,6,7,8")
    p.add_argument("--workers", type=int, default=3, help="workers outside the namespace")
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--final-timeout", type=float, default=900.0)
    p.add_argument("--keep", action="store_true", help="keep the scratch directory (logs)")
    args = p.parse_args(argv)
    args.seed = random.SystemRandom().randrange(2**31) if args.seed is None else args.seed
    tmp = Path(tempfile.mkdtemp(prefix="hypero-soak-"))
    soak = Soak(args, tmp)
    try:
        soak.start()
        out = soak.run()
        print(report(soak, out))
        v = out["verdict"]
        hits = sum(len(f.hits) for f in soak.faults)
        ok = (not (v.lost or v.duplicated or v.non_final) and v.executions <= v.trials + hits
              and v.trials == args.trials)
        print(f"\nseed {args.seed}: {'PASS' if ok else 'FAIL'}" + (f"; logs in {tmp}" if args.keep
                                                                    or not ok else ""))
        return 0 if ok else 1
    finally:
        soak.procs.stop_all()
        soak.stack.close()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
