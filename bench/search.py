"""Adaptive search and early termination on one simulated learning-curve objective.

    python -m bench.search [--seeds 5] [--trials 81] [--epochs 27]

Every trial runs through the worker's own code (claim, bayes suggestion under the sweep lock,
forked trial, hyperband judged at each bracket, fenced record) on a fresh SQLite store, one
trial after another. The objective: a bowl over ``x`` (uniform), ``lr`` (log-uniform) and
``depth`` (int) whose minimum is 0, reached along a curve ``final + slope / epoch`` whose slope
depends on the parameters too (curves cross). Prints, side by side:

- random vs bayes (TPE): the best final loss after N trials, median over seeds, and how many
  trials bayes needs to reach random's best of all trials (target: ≤ 40 of 81);
- hyperband (``min_iter: 1, eta: 3``) vs no termination, on the same random trials: epochs
  spent (target ≤ 40 %) and whether the best trial is the same (target: ≥ 4 of 5 seeds);
- the time one bayes suggestion takes with 500 completed trials (target ≤ 200 ms), the engine
  alone and the whole locked transaction that reads the trials and writes the suggestion.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

SPEC = """
battery: {battery}
trial: {file}:fit
method: {method}
run_cap: {trials}
metric: {{name: loss, goal: minimize}}
{extra}
parameters:
  x: {{min: -1.0, max: 1.0}}
  lr: {{distribution: log_uniform_values, min: 1.0e-5, max: 1.0e-1}}
  depth: {{distribution: int_uniform, min: 1, max: 8}}
  epochs: {{value: {epochs}}}
"""


def final_loss(x: float, lr: float, depth: int) -> float:
    return (x - 0.3) ** 2 + 0.1 * (math.log10(lr) + 3) ** 2 + 0.02 * (depth - 4) ** 2


def fit(hex: Any) -> dict[str, float]:
    """The simulated training run: one ``hex.log`` per epoch."""
    x, lr = hex.uniform("x", -1.0, 1.0), hex.log_uniform_values("lr", 1e-5, 1e-1)
    depth, epochs = hex.randint("depth", 1, 8), int(hex.hyper_param("epochs", 27))
    final = final_loss(x, lr, depth)
    slope = 0.3 + 0.1 * depth + 0.2 * abs(x)  # deep nets learn slower: curves cross
    loss = math.inf
    for epoch in range(1, epochs + 1):
        loss = final + slope / epoch
        hex.log(step=epoch, loss=loss)
    return {"loss": loss, "final": final}


def run_sweep(db: str, text: str, seed: int) -> list[dict[str, Any]]:
    """Run a sweep's trials one after the other through the worker's Supervisor."""
    import hypero
    from hypero import dispatcher, spec
    from hypero.config import Settings
    from hypero.runner import Supervisor

    path = Path(tempfile.mkdtemp(prefix="hypero-bench-")) / "spec.yaml"
    path.write_text(text)
    with hypero.connect(db) as conn:
        _, ids = dispatcher.create(conn, spec.load(path), seed=seed)
        sup = Supervisor(conn.store, Settings(db=db), "bench")
        for h in ids:
            sup.run(h, [], lambda _: None)
        results, metrics = conn.store.docs("result", ids), conn.store.metrics(ids, ["loss"])
        params = conn.store.docs("param", ids)
        states = [conn.store.experiment(h)["state"] for h in ids]
    return [{"state": s, "final": results[h].get("final"), "params": params[h],
             "epochs": len(metrics[h].get("loss", []))} for h, s in zip(ids, states, strict=True)]


def spec_text(method: str, trials: int, epochs: int, extra: str = "", tag: str = "") -> str:
    return SPEC.format(battery=f"bench {method} {tag}", file=Path(__file__).resolve(),
                       method=method, trials=trials, epochs=epochs, extra=extra)


def best_after(trials: list[dict[str, Any]]) -> list[float]:
    out, best = [], math.inf
    for t in trials:
        if t["state"] == "completed":
            best = min(best, t["final"])
        out.append(best)
    return out


def suggestion_overhead(db: str, n: int = 500) -> tuple[float, float]:
    """(engine ms, locked transaction ms) of one suggestion with ``n`` completed trials."""
    import hypero
    from hypero import _adaptive, bayes, dispatcher, spec, sweeps
    from hypero.distributions import from_dict
    from hypero.runner import TrialConfig

    path = Path(tempfile.mkdtemp(prefix="hypero-bench-")) / "spec.yaml"
    path.write_text(spec_text("bayes", n + 1, 27, tag="overhead"))
    sp = spec.load(path)
    with hypero.connect(db) as conn:
        sid, ids = dispatcher.create(conn, sp, seed=1)
        cfg = TrialConfig.from_spec(dispatcher.spec_doc(sp))
        dists = {k: from_dict(v, param=k) for k, v in cfg.parameters.items()}
        records = []
        for k, h in enumerate(ids[:-1]):
            s = bayes.suggest(dists, "minimize", [], {}, seed=k)  # random points, quickly
            value = final_loss(s.params["x"], s.params["lr"], s.params["depth"])
            records.append(bayes.Record(s.engine, "completed", value))
            attempt = sweeps.claim(conn.store, h, "bench", 60.0)
            assert attempt is not None
            conn.store.record(h, {"param": (s.params, "update"), "result": ({"loss": value},
                              "update"), "meta": ({"hypero.suggestion": {"engine": s.engine}},
                                                  "update")})
            sweeps.finish(conn.store, h, attempt, "completed")
        engine = []
        for k in range(5):
            t0 = time.perf_counter()
            bayes.suggest(dists, "minimize", records, {}, seed=1000 + k)
            engine.append((time.perf_counter() - t0) * 1000)
        attempt = sweeps.claim(conn.store, ids[-1], "bench", 60.0)
        assert attempt is not None
        row = conn.store.experiment(ids[-1])
        t0 = time.perf_counter()
        _adaptive.assign(conn.store, cfg, row, attempt)
        whole = (time.perf_counter() - t0) * 1000
        used = conn.store.docs("meta", [ids[-1]])[ids[-1]]["hypero.suggestion"]["used"]
        assert used == n, used
        del sid
    return statistics.median(engine), whole


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--trials", type=int, default=81)
    ap.add_argument("--epochs", type=int, default=27)
    args = ap.parse_args()
    n, e, seeds = args.trials, args.epochs, range(args.seeds)
    tmp = Path(tempfile.mkdtemp(prefix="hypero-bench-"))
    db = f"sqlite:///{tmp / 'bench.db'}"
    hb = "early_terminate: {type: hyperband, min_iter: 1, eta: 3}"
    t0 = time.monotonic()
    runs: dict[str, list[list[dict[str, Any]]]] = {
        "random": [run_sweep(db, spec_text("random", n, e, tag=str(s)), s) for s in seeds],
        "bayes": [run_sweep(db, spec_text("bayes", n, e, tag=str(s)), s) for s in seeds],
        "hyperband": [run_sweep(db, spec_text("random", n, e, hb, f"hb{s}"), s) for s in seeds],
    }
    wall = time.monotonic() - t0
    curves = {m: [best_after(r) for r in rs] for m, rs in runs.items()}
    print(f"# {n} trials x {e} epochs, {len(seeds)} seeds, {wall:.0f} s in all\n")
    marks = sorted({k for k in (10, 20, 40, n) if k <= n})
    print("| best final loss after N trials (median over seeds) | "
          + " | ".join(f"N={k}" for k in marks) + " |")
    print("|---|" + "---|" * len(marks))
    for m in ("random", "bayes"):
        meds = [statistics.median(c[k - 1] for c in curves[m]) for k in marks]
        print(f"| {m} | " + " | ".join(f"{v:.4f}" for v in meds) + " |")
    need = []
    for r, b in zip(curves["random"], curves["bayes"], strict=True):
        hit = [i + 1 for i, v in enumerate(b) if v <= r[-1]]
        need.append(hit[0] if hit else math.inf)
    print(f"\ntrials bayes needs to reach random's best-of-{n}: "
          f"{', '.join(str(k) for k in need)} (median {statistics.median(need):g}; target ≤ 40)")
    full = [sum(t["epochs"] for t in r) for r in runs["random"]]
    spent = [sum(t["epochs"] for t in r) for r in runs["hyperband"]]
    same = sum(
        min((t for t in a if t["state"] == "completed"), key=lambda t: t["final"])["params"]
        == min((t for t in b if t["state"] == "completed"), key=lambda t: t["final"])["params"]
        for a, b in zip(runs["random"], runs["hyperband"], strict=True))
    pruned = statistics.median(sum(t["state"] == "pruned" for t in r) for r in runs["hyperband"])
    print("\n| early termination (same random trials) | epochs spent | share | best final loss "
          "(median) | same best trial |")
    print("|---|---|---|---|---|")
    print(f"| none | {statistics.median(full):g} | 100 % | "
          f"{statistics.median(c[-1] for c in curves['random']):.4f} | - |")
    share = statistics.median(s / f for s, f in zip(spent, full, strict=True))
    print(f"| hyperband (min_iter 1, eta 3; {pruned:g} pruned) | {statistics.median(spent):g} | "
          f"{share:.0%} | {statistics.median(c[-1] for c in curves['hyperband']):.4f} | "
          f"{same} of {len(seeds)} seeds |")
    engine, whole = suggestion_overhead(f"sqlite:///{tmp / 'overhead.db'}")
    print(f"\nbayes suggestion with 500 completed trials: {engine:.0f} ms in the engine, "
          f"{whole:.0f} ms with reading the trials and writing it (target ≤ 200 ms)")


if __name__ == "__main__":
    main()
