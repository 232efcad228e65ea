"""The forked half of a trial: the child runs the function, the parent relays and supervises."""

from __future__ import annotations

import contextlib
import math
import mmap
import os
import select
import signal
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hypero import _adaptive, _current, codec
from hypero.connection import Connection
from hypero.errors import Conflict, HyperoError, Pruned
from hypero.experiment import Experiment
from hypero.store import Mode

if TYPE_CHECKING:
    from hypero.config import Settings
    from hypero.runner import Outcome, Supervisor, TrialConfig


EOF_GRACE = 2.0  # seconds to drain the pipe after the child exited
WRITE_EVERY = 1.0  # seconds between writes of a running trial's relayed values
GATE_WAIT = 30.0  # seconds a trial waits at a bracket for the supervisor's verdict, at most


class _PipeConnection(Connection):
    """The child's connection: writes go to the supervisor over a pipe; reads hit the database."""

    def __init__(self, settings: Settings, fd: int, stop: mmap.mmap,
                 gates: tuple[str, list[int]] | None = None) -> None:
        super().__init__(settings, migrate=False)
        self._fd = fd
        self._send_lock = threading.Lock()
        self._stopflag = stop  # [0]: stop; [1]: verdicts given at gates (mod 256)
        self._set: dict[str, set[str]] = {"param": set(), "meta": set(), "result": set()}
        self._brackets: list[int] = []
        if gates is not None:
            self._gated, self._brackets = gates[0], list(gates[1])
            self._gate = float(self._brackets[0]) if self._brackets else math.inf

    def _record(
        self, hex: Experiment, docs: Mapping[str, tuple[Mapping[str, Any], Mode]],
        points: Sequence[tuple[str, float, float]],
    ) -> None:
        out: dict[str, Any] = {}
        for kind, (values, mode) in docs.items():
            if mode == "strict":
                clash = sorted(k for k in values if k in self._set[kind])
                if clash:
                    raise Conflict(f"{kind} already has {', '.join(map(repr, clash))}: "
                                   "pass update=True to overwrite")
            self._set[kind].update(values)
            out[kind] = [values, "keep" if mode == "keep" else "update"]
        with self._send_lock:
            send(self._fd, {"docs": out, "points": list(points)})
        if self._stopflag[0]:
            hex._stop()

    def _should_stop(self) -> bool:
        return bool(self._stopflag[0])

    def _at_gate(self, hex: Experiment, step: float) -> None:
        """Send the points so far and wait for the supervisor's verdict at this bracket."""
        hex.flush()
        given = self._stopflag[1]
        with self._send_lock:
            send(self._fd, {"gate": step})
        deadline = time.monotonic() + GATE_WAIT
        while self._stopflag[1] == given and time.monotonic() < deadline:
            time.sleep(0.001)
        later = [b for b in self._brackets if b > step]
        self._gate = float(later[0]) if later else math.inf
        if self._stopflag[0]:
            hex._stop()

    def end(self, msg: dict[str, Any]) -> None:
        with self._send_lock:
            send(self._fd, msg)


def send(fd: int, msg: Any) -> None:
    data = (codec.dumps(msg) + "\n").encode()
    while data:
        n = os.write(fd, data)
        data = data[n:]


class _Forked:
    """Fork a child for one attempt, relay its writes, heartbeat, and collect its end."""

    def __init__(
        self, sup: Supervisor, row: Mapping[str, Any], params: Mapping[str, Any], attempt: int,
        cfg: TrialConfig, gpus: list[str], load: Callable[[], Callable[..., Any]],
    ) -> None:
        self.sup, self.row, self.params, self.attempt = sup, row, params, attempt
        self.cfg, self.gpus, self.load = cfg, gpus, load
        self.judge = _adaptive.judge(cfg)
        self.pruned: dict[str, Any] | None = None

    def run(self) -> Outcome:
        from hypero.runner import Outcome, _stop_process, _Watch

        r, w = os.pipe()
        stop = mmap.mmap(-1, 2)
        self.supervisor_pid = os.getpid()
        pid = os.fork()
        if pid == 0:  # pragma: no cover (runs in the child)
            os.close(r)
            os._exit(self._child(w, stop))
        os.close(w)
        out = Outcome("lost")
        watch = _Watch(self.sup.store, int(self.row["id"]), self.attempt, self.cfg)
        buf, verdict, end = b"", None, None
        written = time.monotonic()
        status, exited = 0, 0.0
        try:
            while True:
                if pid == 0 and time.monotonic() - exited > EOF_GRACE:
                    break  # the child is gone; something it started still holds the pipe
                ready, _, _ = select.select([r], [], [], min(0.5, watch.next_due() + 0.01))
                if not ready and pid:
                    got, st = os.waitpid(pid, os.WNOHANG)
                    if got:
                        status, pid, exited = st, 0, time.monotonic()
                if ready:
                    chunk = os.read(r, 1 << 16)
                    if not chunk:
                        break
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        msg = codec.loads(line)
                        end = self._relay(msg, out) or end
                        if "gate" in msg:
                            verdict = self._at_gate(out, watch, stop) or verdict
                if verdict is None and time.monotonic() - written >= WRITE_EVERY:
                    written = time.monotonic()
                    verdict = self._write(out, watch)
                if verdict is None:
                    verdict = watch.tick()
                if verdict is not None and pid:
                    stop[0] = 1
                    _stop_process(pid)
                    pid, exited = 0, time.monotonic()
        finally:
            os.close(r)
            if pid:  # leaving on an error: the child must not outlive its supervision
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
        if pid:
            status = os.waitpid(pid, 0)[1]
        return self._outcome(out, verdict, watch.reason, end, status)

    def _write(self, out: Outcome, watch: Any) -> str | None:
        """Record what the child sent so far (fenced), so curves show while a trial runs."""
        if not out.docs and not out.points:
            return None
        try:
            ok = self.sup.store.record(int(self.row["id"]), out.docs, out.points,
                                       attempt=self.attempt)
        except HyperoError:
            return None  # the database is away: keep the values, the lease covers the gap
        if not ok:
            watch.reason = "another attempt owns this trial"
            return "fenced"
        out.docs, out.points = {}, []
        return None

    def _at_gate(self, out: Outcome, watch: Any, stop: mmap.mmap) -> str | None:
        """Judge the trial at the bracket it reached, then let it go on (or stop it)."""
        verdict = self._write(out, watch)  # its points first, so other trials see them
        if verdict is None and self.judge is not None and self.pruned is None:
            self.pruned = _adaptive.prune(self.sup.store, self.judge, self.row)
            if self.pruned is not None:
                stop[0] = 1
                mine, _ = out.docs.get("meta", ({}, "update"))
                out.docs["meta"] = ({**mine, "hypero.pruned": self.pruned}, "update")
        stop[1] = (stop[1] + 1) % 256
        return verdict

    def _relay(self, msg: dict[str, Any], out: Outcome) -> dict[str, Any] | None:
        for kind, (values, mode) in (msg.get("docs") or {}).items():
            if kind == "param":  # sampled values of stored params change nothing: not sent on
                values = {k: v for k, v in values.items()
                          if k not in self.params or self.params[k] != v}
            old, _ = out.docs.get(kind, ({}, mode))
            merged = {**values, **old} if mode == "keep" else {**old, **values}
            # the child knows every stored param (they were loaded before the fork), so its
            # sampled values equal what is stored: writing all as "update" lets an explicit
            # set_param(update=True) in the trial win, as it does stand-alone
            out.docs[kind] = (merged, "update")
        points = [(str(n), float(s), float(v)) for n, s, v in msg.get("points", [])]
        out.points.extend(points)
        if self.judge is not None:
            self.judge.add(points)
        return msg if "end" in msg else None

    def _outcome(
        self, out: Outcome, verdict: str | None, reason: str | None, end: dict[str, Any] | None,
        status: int,
    ) -> Outcome:
        if verdict is not None:
            out.kind, out.error = verdict, reason
            return out
        if end is not None:
            out.kind, out.error = end["end"], end.get("error")
            if self.pruned is not None and out.kind == "completed":
                out.kind = "pruned"  # it returned instead of logging again: still stopped
            if end.get("result"):
                res, _ = out.docs.get("result", ({}, "update"))
                out.docs["result"] = ({**res, **end["result"]}, "update")
            return out
        if os.WIFSIGNALED(status):
            out.kind, out.error = "lost", f"trial process killed by signal {os.WTERMSIG(status)}"
        else:
            code = os.WEXITSTATUS(status)
            out.kind, out.error = "lost", f"trial process exited with status {code} silently"
        return out

    def _child(self, fd: int, stop: mmap.mmap) -> int:  # pragma: no cover (child)
        os.setsid()  # its own process group: stopping the trial stops what it started too
        from hypero.runner import die_with_parent

        die_with_parent(self.supervisor_pid)  # ... and the trial dies with its supervisor
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        from hypero.runner import _has_slots

        if _has_slots():
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(self.gpus)
        os.environ["HYPERO_HEX_ID"] = str(self.row["id"])
        os.environ["HYPERO_ATTEMPT"] = str(self.attempt)
        code = 0
        try:
            gates = (self.judge.metric, self.judge.bands) if self.judge is not None else None
            conn = _PipeConnection(self.sup.settings, fd, stop, gates)
            row = {**self.row, "attempt": self.attempt}
            seed = int(self.row["id"]) * 1_000_003 + self.attempt
            hex = Experiment(conn, row, self.params, attempt=self.attempt, seed=seed)
            _current.set_current(hex)
            try:
                result = self.load()(hex)
                hex.flush()
                if result is not None and not isinstance(result, Mapping):
                    raise TypeError(
                        f"a trial function returns a dict of results or None, "
                        f"not {type(result).__name__}"
                    )
                conn.end({"end": "completed", "result": dict(result or {})})
            except Pruned:
                hex.flush()
                conn.end({"end": "pruned"})
            except BaseException as e:
                try:
                    hex.flush()
                except Exception:
                    pass
                text = "".join(traceback.format_exception(e)).rstrip()
                conn.end({"end": "error", "error": text})
                code = 1
        except BaseException:
            try:
                send(fd, {"end": "error", "error": traceback.format_exc().rstrip()})
            except OSError:
                pass
            code = 1
        finally:
            try:
                os.close(fd)
            except OSError:
                pass
        time.sleep(0)
        return code
