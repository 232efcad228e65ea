"""Run one trial under supervision: claim, fork the trial, heartbeat, record, decide what next.

The supervising process (a Celery pool process, or any caller) owns every database write of the
attempt. The trial function runs in a forked child that talks to it over a pipe (JSON lines:
sampled params, logged points, the returned dict or the error), so that CPU-bound training
cannot starve the heartbeat, CUDA never initialises in the worker, and a hung or crashing trial
cannot take the worker down. A ``program:`` trial runs as a subprocess that writes through
``hypero.current()`` with the same fencing token (``HYPERO_ATTEMPT``).
"""

from __future__ import annotations

import logging
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from hypero import command, sweeps
from hypero._trial import load_trial  # not hypero.spec: no pydantic in a worker
from hypero.config import Settings, redact
from hypero.errors import ConfigError, HyperoError, StorageError
from hypero.spool import Spool, for_store
from hypero.store import Store

T = TypeVar("T")
log = logging.getLogger("hypero.worker")

Republish = Callable[[int], None]
GRACE = 10.0  # seconds between SIGTERM and SIGKILL when a trial is stopped


@dataclass(frozen=True)
class TrialConfig:
    """What the worker needs from a sweep's spec to run its trials."""

    trial_ref: tuple[str, str] | None = None
    program: str | None = None
    command: list[str] | None = None
    lease: float = 60.0
    timeout: float | None = None
    retries: int = 0
    max_attempts: int = 3
    gpus: int | None = None  # None: the spec says nothing, one slot on a GPU worker
    queue: str = "hypero"
    declared: list[str] = field(default_factory=list)
    method: str = "random"
    metric: dict[str, Any] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)  # declared, as to_dict() gives
    bayes: dict[str, Any] | None = None
    early_terminate: dict[str, Any] | None = None
    seed: int = 0  # the sweep's

    @classmethod
    def from_spec(cls, doc: Mapping[str, Any]) -> TrialConfig:
        ref = doc.get("trial_ref")
        return cls(
            trial_ref=(str(ref[0]), str(ref[1])) if ref else None,
            program=doc.get("program"), command=doc.get("command"),
            lease=float(doc.get("lease", 60.0)),
            timeout=None if doc.get("timeout") is None else float(doc["timeout"]),
            retries=int(doc.get("retries", 0)), max_attempts=int(doc.get("max_attempts", 3)),
            gpus=_gpus(doc),
            queue=str(doc.get("queue", "hypero")),
            declared=list(doc.get("declared", [])),
            method=str(doc.get("method", "random")), metric=doc.get("metric"),
            parameters=dict(doc.get("parameters") or {}), bayes=doc.get("bayes"),
            early_terminate=doc.get("early_terminate"),
        )


def _gpus(doc: Mapping[str, Any]) -> int | None:
    """``resources.gpus`` if the spec as written gives it, else None."""
    written = (doc.get("raw") or {}).get("resources")
    if not isinstance(written, dict) or "gpus" not in written:
        return None
    return int((doc.get("resources") or {}).get("gpus", 0))


@dataclass
class Outcome:
    """How one attempt ended."""

    kind: str  # completed | error | lost | fenced | cancelled | pruned | timeout
    error: str | None = None
    docs: dict[str, Any] = field(default_factory=dict)
    points: list[tuple[str, float, float]] = field(default_factory=list)


def worker_meta(worker: str, attempt: int, gpus: list[str], pid: int) -> dict[str, Any]:
    from hypero import __version__

    return {
        "hypero.host": socket.gethostname(), "hypero.pid": pid, "hypero.worker": worker,
        "hypero.gpus": ",".join(gpus) if gpus else None, "hypero.attempt": attempt,
        "hypero.version": __version__, "hypero.python": platform.python_version(),
        "hypero.start": time.time(),
    }


class Supervisor:
    """Runs trials for one worker process; caches sweep configs and imported trial functions."""

    def __init__(self, store: Store, settings: Settings, worker: str) -> None:
        self.store = store
        self.settings = settings
        self.worker = worker
        self._configs: dict[int, TrialConfig] = {}
        self.spool = Spool(for_store(settings.spool, settings.db, settings.schema))

    def replay_spool(self) -> int:
        """Write what a worker left in the spool (fenced); how many records were taken."""
        n = 0
        for path, rec in self.spool.pending():
            try:
                sweeps.finish(self.store, **_finish_args(rec))
            except StorageError:
                self.spool.release(path)
                return n
            except HyperoError as e:  # e.g. the trial was deleted: nothing to write it into
                log.warning("hypero: dropping spooled record %s: %s", path.name, e)
            self.spool.drop(path)
            n += 1
        return n

    def _finish(self, rec: dict[str, Any], most: float = 10.0) -> bool:
        """``sweeps.finish``; while the database is away the record waits in the spool (fsynced)
        and this call keeps trying, at most ``most`` s apart: nothing is acknowledged before it
        is recorded."""
        try:
            return sweeps.finish(self.store, **_finish_args(rec))
        except StorageError as e:
            log.warning("hypero: database away, spooling trial %s: %s", rec["hex_id"], e)
        path = self.spool.put(f"{rec['hex_id']}-{rec['attempt']}", rec)
        delay = 0.5
        while True:
            time.sleep(delay)
            delay = min(delay * 2, most)
            try:
                done = sweeps.finish(self.store, **_finish_args(rec))
            except StorageError:
                continue
            self.spool.drop(path)
            return done

    def config(self, sweep_id: int) -> TrialConfig:
        if sweep_id not in self._configs:
            row = sweeps.get_sweep(self.store, sweep_id)
            cfg = TrialConfig.from_spec(row["spec"])
            self._configs[sweep_id] = replace(cfg, seed=int(row["seed"]))
        return self._configs[sweep_id]

    def run(self, hex_id: int, gpus: list[str], republish: Republish,
            row: Mapping[str, Any] | None = None) -> str:
        """Run trial ``hex_id`` to an end of this delivery; returns what happened. ``row``:
        its experiment row, if the caller has just read it."""
        if row is None:
            row = patiently(lambda: self.store.experiment(hex_id))
        if row["sweep_id"] is None:
            return "not a sweep trial"
        cfg = self.config(int(row["sweep_id"]))
        while True:
            taken = patiently(lambda: sweeps.take(self.store, hex_id, self.worker, cfg.lease))
            if taken is None:
                return "skipped"  # duplicate delivery, finished or cancelled: nothing to do
            row = taken[0]
            params: Mapping[str, Any] | None = taken[1]
            attempt = int(row["attempt"])
            meta = worker_meta(self.worker, attempt, gpus, os.getpid())
            out = None
            if cfg.method == "bayes":
                out = self._assign(row, attempt, cfg)
                params = None  # suggested just now: read them again
            if out is None:
                out = self._attempt(row, params, attempt, cfg, gpus)
            meta["hypero.end"] = time.time()
            mine, _ = out.docs.get("meta", ({}, "update"))  # the trial's own set_meta values
            out.docs["meta"] = ({**mine, **meta}, "update")
            again = self._settle(hex_id, attempt, cfg, out, republish, int(row["sweep_id"]))
            if not again:
                return out.kind

    def _assign(self, row: Mapping[str, Any], attempt: int, cfg: TrialConfig) -> Outcome | None:
        """Suggest a bayes trial's parameters; None to run it, else how the attempt ends."""
        from hypero._adaptive import TargetReached, assign

        try:
            if patiently(lambda: assign(self.store, cfg, row, attempt)):
                return None
            return Outcome("fenced")
        except TargetReached as e:
            return Outcome("cancelled", str(e))
        except (HyperoError, ImportError, ValueError, TypeError) as e:
            log.exception("hypero: no suggestion for trial %s", row["id"])
            return Outcome("error", f"bayes: no suggestion: {e}")

    def _settle(
        self, hex_id: int, attempt: int, cfg: TrialConfig, out: Outcome, republish: Republish,
        sweep_id: int,
    ) -> bool:
        """Write the attempt's end; True to run it again at once (a retry).

        While the database is away the end waits in the spool; only a failed attempt's retry
        waits for the database first, as it needs the failures so far. Both try again at most
        a quarter lease apart, as heartbeats do: an outage shorter than the lease reruns nothing.
        """
        every = _every(cfg)
        state, error, failed, again = "completed", out.error, False, False
        if out.kind in ("cancelled", "pruned"):
            state = out.kind
        elif out.kind in ("error", "timeout"):
            failed = True
            row = patiently(lambda: self.store.experiment(hex_id), most=every)
            if row["failures"] + 1 <= cfg.retries and attempt < cfg.max_attempts:
                state, again = "queued", True
            else:
                state = "failed"
        elif out.kind == "lost":
            if attempt < cfg.max_attempts:
                state = "queued"
            else:
                state = "failed"
                error = f"{out.error}; gave up after {attempt} attempts (max_attempts)"
        elif out.kind == "fenced":
            log.warning("hypero: trial %s attempt %s is stale (%s): nothing of it was recorded",
                        hex_id, attempt, out.error or "another attempt owns the trial")
            return False
        if state != "queued":  # export and top show how each trial ended, pruned ones too
            mine, _ = out.docs.get("meta", ({}, "update"))
            out.docs["meta"] = ({**mine, "hypero.state": state}, "update")
        done = self._finish({
            "hex_id": hex_id, "attempt": attempt, "state": state,
            "docs": {k: list(v) for k, v in out.docs.items()}, "points": out.points,
            "error": None if error is None else redact(error), "failed_attempt": failed,
        }, most=every)
        if not done:  # the end of an attempt that another attempt replaced meanwhile
            log.warning("hypero: trial %s attempt %s is stale: its end (%s) was refused",
                        hex_id, attempt, out.kind)
            out.kind = "fenced"
        if done and state == "queued" and not again:
            try:
                republish(hex_id)
            except Exception as e:
                log.warning("hypero: re-publishing trial %s failed: %s", hex_id, redact(str(e)))
        if done and state != "queued":
            self._after_final(hex_id, state, cfg, sweep_id)
        return done and again

    def _after_final(self, hex_id: int, state: str, cfg: TrialConfig, sweep_id: int) -> None:
        """``metric.target``, and the sweep is ``done`` once its last trial is final."""
        from hypero._adaptive import after_completed

        try:
            if state == "completed":
                after_completed(self.store, cfg, hex_id, sweep_id)
            sweeps.close_if_finished(self.store, sweep_id)
        except HyperoError as e:
            log.warning("hypero: after trial %s: %s", hex_id, e)

    def _attempt(self, row: Mapping[str, Any], params: Mapping[str, Any] | None, attempt: int,
                 cfg: TrialConfig, gpus: list[str]) -> Outcome:
        """Run the claimed attempt (``row`` as the claim left it; ``params`` None: read them)."""
        hex_id = int(row["id"])
        try:
            if params is None:
                # patiently: an outage must not turn a claimed attempt into a lost one
                params = patiently(lambda: self.store.docs("param", [hex_id]),
                                   most=_every(cfg)).get(hex_id, {})
            if cfg.program is not None:
                return self._program(hex_id, attempt, cfg, gpus, params)
            ref = cfg.trial_ref
            if ref is None:
                raise ConfigError("the sweep names neither a trial nor a program")
            # the trial's module is imported in the trial's own process, never in the worker:
            # its errors are the trial's, and a new version of the code is picked up
            return _Forked(self, row, params, attempt, cfg, gpus,
                           lambda: load_trial(ref)).run()
        except StorageError:
            raise  # the database stayed away: the lease brings the trial back
        except Exception as e:
            return Outcome("error", redact("".join(traceback.format_exception(e)).rstrip()))

    # -- program: trials ------------------------------------------------------------------------

    def _program(self, hex_id: int, attempt: int, cfg: TrialConfig, gpus: list[str],
                 params: Mapping[str, Any]) -> Outcome:
        env = dict(os.environ)
        env.update(HYPERO_DB=self.settings.db, HYPERO_SCHEMA=self.settings.schema,
                   HYPERO_HEX_ID=str(hex_id), HYPERO_ATTEMPT=str(attempt))
        if gpus is not None and _has_slots():
            env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
        names = [k for k in cfg.declared if k in params] or list(params)
        with tempfile.TemporaryDirectory(prefix="hypero-trial-") as work, \
                tempfile.TemporaryFile() as err:
            argv = command.build(cfg.command, cfg.program, params, names, Path(work), env)
            me = os.getpid()
            proc = subprocess.Popen(argv, env=env, cwd=os.path.dirname(cfg.program or ".") or None,
                                    stderr=err, start_new_session=True,
                                    preexec_fn=lambda: die_with_parent(me))
            watch = _Watch(self.store, hex_id, attempt, cfg)
            judge = _program_judge(self.store, cfg, hex_id)
            while proc.poll() is None:
                verdict = watch.tick()
                pruned = judge.tick() if judge is not None and verdict is None else None
                if pruned is not None:
                    _stop_process(proc.pid, proc)
                    return Outcome("pruned", docs={"meta": ({"hypero.pruned": pruned}, "update")})
                if verdict is not None:
                    _stop_process(proc.pid, proc)
                    return Outcome(verdict, watch.reason)
                time.sleep(min(0.2, watch.next_due()))
            err.seek(0)
            tail = err.read()[-8000:].decode(errors="replace")
        tail = redact(tail)
        sys.stderr.write(tail)
        code = proc.returncode
        if code == 0:
            return Outcome("completed")
        if code < 0:
            return Outcome("lost", f"program killed by signal {-code}")
        return Outcome("error", f"program exited with status {code}: {' '.join(argv)}\n{tail}")


class _Watch:
    """Heartbeat, cancellation and timeout bookkeeping for one attempt."""

    def __init__(self, store: Store, hex_id: int, attempt: int, cfg: TrialConfig) -> None:
        self.store, self.hex_id, self.attempt, self.cfg = store, hex_id, attempt, cfg
        self.started = time.monotonic()
        self.every = max(0.2, cfg.lease / 4)
        self.due = self.started + self.every
        self.reason: str | None = None

    def next_due(self) -> float:
        return max(0.0, self.due - time.monotonic())

    def tick(self) -> str | None:
        """None to go on; else why the attempt must stop (fenced | cancelled | timeout)."""
        t = time.monotonic()
        if self.cfg.timeout is not None and t - self.started > self.cfg.timeout:
            self.reason = f"timed out after {self.cfg.timeout:g} s"
            return "timeout"
        if t < self.due:
            return None
        self.due = t + self.every
        try:
            ours, cancel = sweeps.heartbeat(self.store, self.hex_id, self.attempt, self.cfg.lease)
        except StorageError as e:  # database unreachable: run on, the lease covers short outages
            log.warning("hypero: heartbeat of trial %s failed: %s", self.hex_id, e)
            return None
        if not ours:
            self.reason = "another attempt owns this trial"
            return "fenced"
        if cancel:
            self.reason = "cancelled"
            return "cancelled"
        return None


def _program_judge(store: Store, cfg: TrialConfig, hex_id: int) -> Any:
    from hypero._adaptive import ProgramJudge, judge

    j = judge(cfg)
    return None if j is None else ProgramJudge(store, j, store.experiment(hex_id))


def die_with_parent(parent: int) -> None:
    """Linux: SIGKILL this process when the process that started it dies (a killed worker must
    not leave its trials running on, unsupervised, in sessions of their own)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the line above took effect
        os.kill(os.getpid(), signal.SIGKILL)


def _signal_group(pid: int, sig: int) -> None:
    """Signal the process group a trial leads (the process alone if it has none yet)."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        os.kill(pid, sig)


def _stop_process(pid: int, proc: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM to the trial's process group, then SIGKILL after the grace period; reaps it."""
    try:
        _signal_group(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + GRACE
    while time.monotonic() < deadline:
        done = proc.poll() is not None if proc else os.waitpid(pid, os.WNOHANG)[0] != 0
        if done:
            return
        time.sleep(0.05)
    try:
        _signal_group(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if proc is not None:
        proc.wait()
    else:
        os.waitpid(pid, 0)


def _finish_args(rec: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "hex_id": int(rec["hex_id"]), "attempt": int(rec["attempt"]), "state": rec["state"],
        "docs": {k: (v[0], v[1]) for k, v in (rec.get("docs") or {}).items()},
        "metrics": [(str(n), float(s), float(v)) for n, s, v in rec.get("points") or []],
        "error": rec.get("error"), "failed_attempt": bool(rec.get("failed_attempt")),
    }


def patiently(fn: Callable[[], T], patience: float = 3600.0, most: float = 10.0) -> T:
    """``fn()``, retried with backoff (``most`` s apart at most) while the database is away
    (up to ``patience`` s)."""
    deadline = time.monotonic() + patience
    delay = 0.5
    while True:
        try:
            return fn()
        except StorageError:
            if time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, most)


def _every(cfg: TrialConfig) -> float:
    """How often an attempt retries a write while the database is away: as often as it
    heartbeats (a quarter lease), so that it is in before the lease runs out."""
    return min(10.0, max(0.2, cfg.lease / 4))


def _has_slots() -> bool:
    from hypero.gpus import worker_slots

    return bool(worker_slots())


from hypero._forked import _Forked  # noqa: E402  (the fork half lives in its own module)
