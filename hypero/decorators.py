"""``hypero.trial``: turn a function of a hex into a task that records itself.

Meant for a user's own Celery task (``@app.task`` above ``@hypero.trial(...)``), but nothing
here imports Celery: any callable run in any process works the same way.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from hypero.connection import Connection, connect

R = TypeVar("R")

# one connection per process and store: an engine is never used across a fork
_connections: dict[tuple[int, str | None, str | None], Connection] = {}


def _connection(db: str | None, schema: str | None) -> Connection:
    key = (os.getpid(), db, schema)
    if key not in _connections:
        _connections[key] = connect(db, schema=schema)
    return _connections[key]


def trial(
    battery: str, version: str | None = None, *, db: str | None = None,
    schema: str | None = None,
) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Decorate ``fn(hex, *args, **kwargs)``: each call creates a hex in ``battery`` (at
    ``version``, default its latest) and passes it first; the call takes the other arguments.

    A returned mapping is recorded as the hex's results; the hex is then ``completed``. If
    ``fn`` raises, the hex is ``failed`` with the traceback and the exception propagates (so a
    Celery task fails, or retries, as it would without hypero). The store is ``db`` (default:
    ``HYPERO_DB``, else ``sqlite:///hypero.db``) and ``schema``, opened once per process.
    """

    def decorate(fn: Callable[..., R]) -> Callable[..., R]:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> R:
            hex = _connection(db, schema).battery(battery, version).experiment()
            try:
                result = fn(hex, *args, **kwargs)
                if result is not None:
                    if not isinstance(result, Mapping):
                        raise TypeError(f"a hypero.trial function returns a dict of results "
                                        f"or None, not {type(result).__name__}")
                    hex.set_result(dict(result), update=True)
            except BaseException as e:
                hex.close(e)
                raise
            hex.close()
            return result

        # callers (and Celery's argument check) see the signature without the hex
        params = list(inspect.signature(fn).parameters.values())[1:]
        run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        return run

    return decorate
