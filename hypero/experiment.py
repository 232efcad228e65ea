"""The hyper-experiment ("hex"): sample hyper-parameters by name, record results and curves.

Sampling and ``log`` are buffered in memory and written by the connection's flusher thread within
about a second, on :meth:`Experiment.flush`, :meth:`Experiment.close`, the end of a ``with``
block and at interpreter exit; explicit ``set_*`` calls write at once, so that a
:class:`~hypero.Conflict` is raised where it happens.
"""

from __future__ import annotations

import math
import random
import threading
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from hypero import codec
from hypero import distributions as d
from hypero.errors import Pruned
from hypero.store import Mode

if TYPE_CHECKING:
    from hypero.connection import Connection

_MISSING: Any = object()


def _step(step: Any) -> float:
    """A step as a float: numpy and torch scalars are numbers too; strings, bools, NaN are not."""
    try:
        if isinstance(step, bool | str | bytes):
            raise TypeError
        value = float(step)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"step must be a finite number (got {step!r})")
    return value


class Experiment:
    """One hyper-experiment. Made by :meth:`Battery.experiment` or :meth:`Connection.experiment`."""

    def __init__(
        self, conn: Connection, row: Mapping[str, Any], params: Mapping[str, Any],
        *, attempt: int | None = None, seed: int | None = None,
    ) -> None:
        self._conn = conn
        self.id: int = int(row["id"])
        self.battery_id: int = int(row["battery_id"])
        self.version_id: int = int(row["version_id"])
        self.sweep_id: int | None = row["sweep_id"]
        #: the attempt that owns this hex when a worker runs it; its writes are fenced by it
        self._token = attempt
        self._attempt = int(row["attempt"]) if attempt is None else attempt
        self._params: dict[str, Any] = dict(params)
        self._pending: dict[str, Any] = {}
        self._points: list[tuple[str, float, float]] = []
        self._last_step = -1.0
        self._lock = threading.Lock()
        self._stopped = False
        self._rng = random.Random(seed)

    def __repr__(self) -> str:
        return f"<hypero.Experiment id={self.id} battery={self.battery_id}>"

    # -- state ----------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """queued | running | completed | failed | pruned | cancelled (read from the database)."""
        return str(self._conn.store.experiment(self.id)["state"])

    @property
    def error(self) -> str | None:
        """The failure's message and traceback, if the trial failed."""
        err = self._conn.store.experiment(self.id)["error"]
        return None if err is None else str(err)

    @property
    def attempt(self) -> int:
        """1 for the first run of a trial, 2 for its re-run, … (0 before a worker ran it)."""
        return self._attempt

    @property
    def checkpoint_dir(self) -> Path:
        """``<checkpoints>/<battery id>/<hex id>/``, kept across the attempts of this trial."""
        path = self._conn.settings.checkpoints / str(self.battery_id) / str(self.id)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def should_stop(self) -> bool:
        """True once early termination or cancellation has stopped this trial."""
        if not self._stopped and self._conn._should_stop():
            self._stopped = True
        return self._stopped

    def _stop(self) -> None:
        self._stopped = True

    # -- sampling -------------------------------------------------------------------------------

    def _sample(self, name: str, dist: d.Distribution) -> Any:
        value = self._params.get(name, _MISSING)
        if value is _MISSING:
            value = dist.sample(self._rng)
            with self._lock:
                self._params[name] = value
                self._pending[name] = value
            self._conn._dirty(self)
        return value

    def uniform(self, name: str, low: float, high: float) -> float:
        """A value drawn uniformly from [low, high]."""
        return self._sample(name, d.Uniform(low, high, param=name))  # type: ignore[no-any-return]

    def log_uniform(self, name: str, low: float, high: float) -> float:
        """``exp(uniform(low, high))``: the bounds are exponents, as in the seed."""
        return self._sample(name, d.LogUniform(low, high, param=name))  # type: ignore[no-any-return]

    def log_uniform_values(self, name: str, low: float, high: float) -> float:
        """Log-uniform between the values ``low`` and ``high`` (both > 0)."""
        return self._sample(  # type: ignore[no-any-return]
            name, d.LogUniformValues(low, high, param=name)
        )

    def normal(self, name: str, mean: float, std: float) -> float:
        """A value drawn from N(mean, std²)."""
        return self._sample(name, d.Normal(mean, std, param=name))  # type: ignore[no-any-return]

    def randint(self, name: str, low: int, high: int) -> int:
        """An integer drawn uniformly from low..high, both ends inclusive."""
        return self._sample(name, d.IntUniform(low, high, param=name))  # type: ignore[no-any-return]

    def categorical(
        self, name: str, choices: Sequence[Any], probs: Sequence[float] | None = None
    ) -> Any:
        """One of ``choices``; ``probs`` are weights, normalised (one per choice, >= 0)."""
        _storable(name, choices)
        return self._sample(name, d.Categorical(choices, probs, param=name))

    def hyper_param(self, name: str, value: Any) -> Any:
        """Record a value chosen elsewhere (a command-line option); the first one is kept."""
        _storable(name, value)
        return self._sample(name, d.Constant(value, param=name))

    # -- recording ------------------------------------------------------------------------------

    def log(self, step: float | None = None, **metrics: float) -> None:
        """Record one point of each named learning curve at ``step`` (default: last step + 1).

        Raises :class:`hypero.Pruned` once the trial has been stopped.
        """
        if self._stopped:
            raise Pruned(f"experiment {self.id} was stopped")
        step = self._last_step + 1 if step is None else _step(step)
        self._last_step = step
        pts = []
        for name, value in metrics.items():
            try:
                if isinstance(value, str | bytes):  # float("0.5") would take a string
                    raise TypeError
                pts.append((name, step, float(value)))
            except (TypeError, ValueError):
                raise ValueError(f"{name}: metric values must be numbers (got {value!r})") from None
        with self._lock:
            self._points.extend(pts)
        self._conn._dirty(self)
        if step >= self._conn._gate and self._conn._gated in metrics:
            self._conn._at_gate(self, step)  # early termination judges this point first
            if self._stopped:
                raise Pruned(f"experiment {self.id} was stopped at step {step:g}")

    def _write(self, kind: str, values: Mapping[str, Any], mode: Mode) -> None:
        self.flush()
        self._conn._record(self, {kind: (dict(values), mode)}, [])

    def set_param(self, values: Mapping[str, Any], update: bool = False) -> None:
        """Merge params; a key already set raises :class:`~hypero.Conflict` unless ``update``."""
        self._write("param", values, "update" if update else "strict")
        with self._lock:
            self._params.update(values)

    def set_meta(self, values: Mapping[str, Any], update: bool = False) -> None:
        """Merge metadata; same rule as :meth:`set_param`."""
        self._write("meta", values, "update" if update else "strict")

    def set_result(self, values: Mapping[str, Any], update: bool = False) -> None:
        """Merge results; same rule as :meth:`set_param`."""
        self._write("result", values, "update" if update else "strict")

    def get_param(self) -> dict[str, Any]:
        self.flush()
        return self._conn.store.docs("param", [self.id]).get(self.id, {})

    def get_meta(self) -> dict[str, Any]:
        return self._conn.store.docs("meta", [self.id]).get(self.id, {})

    def get_result(self) -> dict[str, Any]:
        return self._conn.store.docs("result", [self.id]).get(self.id, {})

    def get_metrics(self, names: Sequence[str] | None = None) -> dict[str, list[tuple[Any, float]]]:
        """``{name: [(step, value), …]}`` of what :meth:`log` recorded, by step."""
        self.flush()
        return self._conn.store.metrics([self.id], names)[self.id]

    def result_maxima(
        self, train: Any = None, valid: Any = None, test: Any = None, update: bool = False
    ) -> None:
        """Record the best train/valid/test values as results ``train``/``valid``/``test``."""
        vals = {"train": train, "valid": valid, "test": test}
        self.set_result({k: v for k, v in vals.items() if v is not None}, update)

    def result_learning_curve(
        self, train: Any = None, valid: Any = None, test: Any = None, update: bool = False
    ) -> None:
        """Record whole curves as results ``train_curve``/``valid_curve``/``test_curve``."""
        vals = {"train_curve": train, "valid_curve": valid, "test_curve": test}
        self.set_result({k: list(v) for k, v in vals.items() if v is not None}, update)

    def meta_data(self, name: str, value: Any, update: bool = False) -> None:
        self.set_meta({name: value}, update)

    def meta_name(self, value: Any, update: bool = False) -> None:
        self.meta_data("name", value, update)

    def meta_hostname(self, value: Any, update: bool = False) -> None:
        self.meta_data("hostname", value, update)

    def meta_dataset(self, value: Any, update: bool = False) -> None:
        self.meta_data("dataset", value, update)

    def meta_savepath(self, value: Any, update: bool = False) -> None:
        self.meta_data("savepath", value, update)

    # -- flushing and closing -------------------------------------------------------------------

    def _take(self) -> tuple[dict[str, Any], list[tuple[str, float, float]]]:
        with self._lock:
            pending, points = self._pending, self._points
            self._pending, self._points = {}, []
        return pending, points

    def _put_back(self, pending: dict[str, Any], points: list[tuple[str, float, float]]) -> None:
        with self._lock:
            self._pending = {**pending, **self._pending}
            self._points = points + self._points

    def flush(self) -> None:
        """Write what is buffered now (sampled params and logged points)."""
        pending, points = self._take()
        if not pending and not points:
            return
        try:
            self._conn._record(self, {"param": (pending, "keep")}, points)
        except BaseException:
            self._put_back(pending, points)
            raise

    def close(self, error: BaseException | None = None) -> None:
        """Flush; a hex made outside a sweep is then ``completed`` (``failed`` with ``error``).

        A sweep's trial is left as it is: the worker that runs it decides how it ends.
        """
        self.flush()
        if self._token is not None or self.sweep_id is not None:
            return
        if error is None:
            self._conn.store.set_state(self.id, "completed", expect=("running",))
        else:
            text = "".join(traceback.format_exception(error)).rstrip()
            self._conn.store.set_state(self.id, "failed", error=text, expect=("running",))

    def __enter__(self) -> Experiment:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(ev)



def _storable(name: str, value: Any) -> None:
    """``ValueError`` naming the parameter for a value that cannot be stored as JSON."""
    try:
        codec.dumps(value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: the value cannot be stored ({e})") from None
