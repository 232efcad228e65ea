"""Case 1: end-to-end no-op trials through real workers, and the runners the other cases reuse.

hypero: a sweep of N trials (3 declared params, 10 ``hex.log`` points and a result each) through
one ``hypero worker --concurrency C``; the time runs from the dispatch call to the last
``finished_at``. Bare Celery: N ``apply_async`` calls to a prefork ``-c C`` worker (JSON, acks
late, prefetch 1) whose task INSERTs one row; the time runs to the last row's commit. Optuna: the
same objective (3 suggests, 10 ``trial.report``) on ``RDBStorage`` in the same PostgreSQL, 2
spawned processes released by a barrier. Every worker is past a warm-up batch before timing.

    python -m bench.e2e [--quick]
"""

from __future__ import annotations

import multiprocessing as mp
import time
import uuid
from collections.abc import Callable
from typing import Any

from bench._common import Env, Procs, Row, median, python, wait_until

SPEC = """
battery: {battery}
trial: bench._trials:{trial}
method: random
run_cap: {n}
queue: {queue}
lease: {lease}
parameters:
  lr: {{distribution: log_uniform_values, min: 1.0e-5, max: 0.1}}
  depth: {{distribution: int_uniform, min: 1, max: 8}}
  optimizer: {{values: [adam, sgd, rmsprop]}}
"""
WARMUP = 40


# -- hypero -------------------------------------------------------------------------------------


class HyperoWorker:
    """One ``hypero worker`` process (in its own session) and the sweeps run through it."""

    def __init__(self, env: Env, procs: Procs, concurrency: int, name: str | None = None,
                 queue: str | None = None) -> None:
        self.env, self.procs = env, procs
        self.queue = queue or f"bench-{uuid.uuid4().hex[:8]}"
        self.name = name or f"bench-h{concurrency}-{uuid.uuid4().hex[:6]}"
        self.proc = procs.start(self.name, [
            python(), "-m", "hypero", "worker", "--concurrency", str(concurrency), "--queues",
            self.queue, "--loglevel", "WARNING", "--name", f"{self.name}@localhost",
        ], env.hypero_env(), cwd=env.workdir)

    def run(self, n: int, trial: str = "noop", lease: str = "60s") -> float:
        """Trials per second of a sweep of ``n`` trials, dispatch to last finish."""
        return run_sweep(self.env, n, self.queue, trial=trial, lease=lease,
                         alive=lambda: self.proc.poll() is None, log=self.name,
                         procs=self.procs)[0]

    def stop(self) -> None:
        self.procs.stop(self.proc)


def run_sweep(env: Env, n: int, queue: str, *, trial: str = "noop", lease: str = "60s",
              alive: Callable[[], bool] = lambda: True, log: str = "",
              procs: Procs | None = None, wait: bool = True) -> tuple[float, int]:
    """Dispatch a sweep and wait for every trial to be final: ``(trials/s, sweep id)``."""
    import hypero
    from hypero import dispatcher
    from hypero.config import Settings
    from hypero.spec import loads
    from hypero.tasks import app, configure

    battery = f"bench {queue} {uuid.uuid4().hex[:6]}"
    spec = loads(SPEC.format(battery=battery, trial=trial, n=n, queue=queue, lease=lease),
                 path=env.workdir / "bench.yaml")
    celery = configure(app, Settings(db=env.db, schema=env.schema, broker=env.broker), queue)
    with hypero.connect(env.db, schema=env.schema) as conn:
        t0 = time.time()
        sid = dispatcher.dispatch(conn, spec, celery, seed=n)
        if not wait:
            return 0.0, sid
        last = _wait_final(env, sid, n, alive, log, procs)
    return n / (last - t0), sid


def _wait_final(env: Env, sid: int, n: int, alive: Callable[[], bool], log: str,
                procs: Procs | None) -> float:
    """Wait until the sweep's ``n`` trials are final; the epoch time of the last finish."""
    q = ("SELECT count(*), extract(epoch FROM max(finished_at)), "
         "count(*) FILTER (WHERE state <> 'completed') FROM experiment "
         "WHERE sweep_id = %s AND state IN ('completed', 'failed', 'pruned', 'cancelled')")
    with env.pg() as c:
        def done() -> Any:
            if not alive():
                tail = procs.log_tail(log) if procs else ""
                raise RuntimeError(f"worker {log} died:\n{tail}")
            count, last, bad = c.execute(q, [sid]).fetchone()
            if bad:
                raise RuntimeError(f"sweep {sid}: {bad} trials did not complete")
            return float(last) if count >= n else None

        return float(wait_until(done, timeout=60 + n / 5, every=0.05, what=f"sweep {sid}"))


# -- bare Celery ---------------------------------------------------------------------------------


class BareWorker:
    """A bare Celery prefork worker (``bench._bare_app``) whose task INSERTs one row."""

    def __init__(self, env: Env, procs: Procs, concurrency: int) -> None:
        self.env, self.procs = env, procs
        self.queue = f"bare-{uuid.uuid4().hex[:8]}"
        self.name = f"bench-b{concurrency}-{uuid.uuid4().hex[:6]}"
        with env.pg() as c:
            from bench._bare_app import TABLE

            c.execute(TABLE)
        self.proc = procs.start(self.name, [
            python(), "-m", "celery", "-A", "bench._bare_app", "worker", "--pool", "prefork",
            "--concurrency", str(concurrency), "--queues", self.queue, "--loglevel", "WARNING",
            "--hostname", f"{self.name}@localhost", "--without-mingle", "--without-gossip",
        ], env.hypero_env(BENCH_BROKER=env.broker, BENCH_PG=env.libpq,
                          BENCH_SCHEMA=env.schema), cwd=env.workdir)

    def run(self, n: int) -> float:
        """Tasks per second: first publish to the last INSERT's commit."""
        from bench._bare_app import app

        batch = uuid.uuid4().hex
        sig = app.signature("bare.insert")
        t0 = time.time()
        with app.producer_or_acquire() as producer:
            for i in range(n):
                lr = 10 ** (-5 + 4 * (i % 97) / 97)
                sig.apply_async((batch, lr, 1 + i % 8, ("adam", "sgd", "rmsprop")[i % 3]),
                                queue=self.queue, producer=producer)
        q = ("SELECT count(*), extract(epoch FROM max(done_at)) FROM bare_trial "
             "WHERE batch = %s")
        with self.env.pg() as c:
            def done() -> Any:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"bare worker died:\n{self.procs.log_tail(self.name)}")
                count, last = c.execute(q, [batch]).fetchone()
                return float(last) if count >= n else None

            last = wait_until(done, timeout=60 + n / 5, every=0.05, what="bare tasks")
        return n / (float(last) - t0)

    def stop(self) -> None:
        self.procs.stop(self.proc)


# -- Optuna ----------------------------------------------------------------------------------------


def _optuna_storage(env: Env, schema: str) -> Any:
    import optuna

    url = env.db.replace("postgresql://", "postgresql+psycopg://", 1)
    return optuna.storages.RDBStorage(
        url, engine_kwargs={"connect_args": {"options": f"-csearch_path={schema}"}})


def _objective(trial: Any) -> float:
    from bench._trials import REPORTS, score

    lr = trial.suggest_float("lr", 1e-5, 0.1, log=True)
    depth = trial.suggest_int("depth", 1, 8)
    optimizer = trial.suggest_categorical("optimizer", ["adam", "sgd", "rmsprop"])
    value = score(lr, depth, optimizer)
    for step in range(REPORTS):
        trial.report(value + 1.0 / (step + 1), step)
    return value


def _optuna_child(env: Env, schema: str, study: str, n: int, seed: int, barrier: Any,
                  out: Any) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = _optuna_storage(env, schema)
    s = optuna.load_study(study_name=study, storage=storage,
                          sampler=optuna.samplers.RandomSampler(seed=seed))
    barrier.wait()
    t0 = time.time()
    s.optimize(_objective, n_trials=n)
    out.put((t0, time.time()))


def optuna_rate(env: Env, n: int, nprocs: int = 2) -> float:
    """Trials per second of Optuna RDB with ``nprocs`` processes on a fresh schema."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    schema = f"{env.schema}_optuna"
    with env.pg("public") as c:
        c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        c.execute(f'CREATE SCHEMA "{schema}"')
    try:
        storage = _optuna_storage(env, schema)
        study = f"bench-{uuid.uuid4().hex[:8]}"
        optuna.create_study(study_name=study, storage=storage)
        storage.engine.dispose()
        ctx = mp.get_context("spawn")
        barrier, out = ctx.Barrier(nprocs + 1), ctx.Queue()
        children = [ctx.Process(target=_optuna_child, args=(env, schema, study, n // nprocs, i,
                                                            barrier, out))
                    for i in range(nprocs)]
        for p in children:
            p.start()
        barrier.wait(timeout=120)
        spans = [out.get(timeout=600) for _ in children]
        for p in children:
            p.join()
        done = optuna.load_study(study_name=study, storage=_optuna_storage(env, schema))
        complete = sum(t.state == optuna.trial.TrialState.COMPLETE
                       for t in done.get_trials(deepcopy=False))
        if complete != n // nprocs * nprocs:
            raise RuntimeError(f"optuna: {complete} complete trials")
        return complete / (max(t1 for _, t1 in spans) - min(t0 for t0, _ in spans))
    finally:
        with env.pg("public") as c:
            c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# -- the case ------------------------------------------------------------------------------------


def measure(env: Env, procs: Procs) -> list[Row]:
    n = 500 if env.quick else 2000
    n_bare = 2000  # bare runs are short: enough tasks that polling for the end is noise
    n_optuna = 200 if env.quick else 400
    reps = 1 if env.quick else 3
    hyp = HyperoWorker(env, procs, 2)
    bare = BareWorker(env, procs, 2)
    try:
        hyp.run(WARMUP)
        bare.run(WARMUP)
        rh: list[float] = []
        rb: list[float] = []
        ro: list[float] = []
        for rep in range(reps):
            order: list[tuple[list[float], Callable[[], float]]] = [
                (rb, lambda: bare.run(n_bare)), (rh, lambda: hyp.run(n)),
                (ro, lambda: optuna_rate(env, n_optuna)),
            ]
            for runs, fn in order[rep % 3:] + order[:rep % 3]:  # alternate who goes first
                runs.append(fn())
    finally:
        hyp.stop()
        bare.stop()
    h, b, o = median(rh), median(rb), median(ro)
    runs = {"hypero": rh, "bare": rb, "optuna": ro}
    return [
        Row("1 end-to-end no-op trials, c=2 vs bare Celery + 1 INSERT", h, b, "trials/s",
            ">= 0.5x", h / b >= 0.5, note=f"{n} trials a run (bare {n_bare})", runs=runs),
        Row("1 end-to-end no-op trials, c=2 vs Optuna RDB 2 procs", h, o, "trials/s",
            ">= 10x", h / o >= 10, note=f"Optuna {n_optuna} trials a run", runs=runs),
    ]


if __name__ == "__main__":
    from bench.__main__ import standalone

    standalone("1", None, __doc__)

