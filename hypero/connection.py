"""``hypero.connect()``: a connection to the store, the entry point of the hex API."""

from __future__ import annotations

import atexit
import logging
import math
import os
import threading
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hypero import config
from hypero.db import Database
from hypero.errors import HyperoError
from hypero.store import INITIAL_VERSION, Mode, Store

if TYPE_CHECKING:
    from hypero.battery import Battery
    from hypero.experiment import Experiment

log = logging.getLogger("hypero")
FLUSH_INTERVAL = 0.5


class Connection:
    """A connection to hypero's store; make one with :func:`hypero.connect`."""

    #: a worker's trial connection stops at the first point of metric ``_gated`` logged at a
    #: step >= ``_gate`` (a hyperband bracket) until the supervisor has judged it
    _gate: float = math.inf
    _gated: str | None = None

    def __init__(self, settings: config.Settings, *, migrate: bool = True) -> None:
        self.settings = settings
        self.db = Database(settings.db, settings.schema)
        self.store = Store(self.db)
        self._dirty_set: set[Experiment] = set()
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._closed = False
        ref = weakref.ref(self)
        atexit.register(_close_at_exit, ref)
        if migrate:
            try:
                self.db.migrate()
            except BaseException:
                self._closed = True
                self.db.dispose()  # a refused connect() must not leave a pooled connection open
                raise

    def __repr__(self) -> str:
        schema = f", schema={self.settings.schema!r}" if self.db.backend == "postgresql" else ""
        return f"hypero.Connection({config.redact(self.settings.db)!r}{schema})"

    __str__ = __repr__

    @property
    def url(self) -> str:
        """The database URL with any password replaced by ``***``."""
        return config.redact(self.settings.db)

    # -- the hex API ----------------------------------------------------------------------------

    def battery(self, name: str, version: str | None = None) -> Battery:
        """Get or create battery ``name`` at ``version`` (default: its latest version)."""
        from hypero.battery import Battery

        if not isinstance(name, str) or not name:
            raise ValueError(f"battery name must be a non-empty string (got {name!r})")
        bid = self.store.battery_id(name)
        if version is None:
            versions = self.store.versions(bid)
            if versions:
                return Battery(self, bid, name, *versions[-1])
            version = INITIAL_VERSION
        return Battery(self, bid, name, self.store.version_id(bid, version), version)

    def batteries(self) -> list[str]:
        """Names of every battery, oldest first."""
        return [n for _, n in self.store.batteries()]

    def experiment(self, hex_id: int, *, attempt: int | None = None) -> Experiment:
        """Reopen experiment ``hex_id`` (:class:`hypero.NotFound` if there is none)."""
        from hypero.experiment import Experiment

        self.flush()  # values this connection still buffers for that hex are part of it
        row = self.store.experiment(int(hex_id))
        params = self.store.docs("param", [row["id"]]).get(row["id"], {})
        return Experiment(self, row, params, attempt=attempt)

    # -- buffered writes ------------------------------------------------------------------------

    def _record(
        self, hex: Experiment, docs: Mapping[str, tuple[Mapping[str, Any], Mode]],
        points: Sequence[tuple[str, float, float]],
    ) -> None:
        if not self.store.record(hex.id, docs, points, attempt=hex._token):
            hex._stop()  # a newer attempt owns the trial, or it was stopped: drop and stop

    def _should_stop(self) -> bool:
        return False

    def _at_gate(self, hex: Experiment, step: float) -> None:
        pass

    def _dirty(self, hex: Experiment) -> None:
        if hex in self._dirty_set and self._thread is not None and self._pid == os.getpid():
            return
        with self._cv:
            self._dirty_set.add(hex)
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._flush_loop, name="hypero-flush", daemon=True
                )
                self._thread.start()

    def _flush_loop(self) -> None:
        while True:
            with self._cv:
                self._cv.wait(FLUSH_INTERVAL)
                if self._closed:
                    return
            self.flush()

    def flush(self) -> None:
        """Write every buffered value of every experiment of this connection now."""
        with self._cv:
            hexes, self._dirty_set = self._dirty_set, set()
        for hex in hexes:
            try:
                hex.flush()
            except HyperoError as e:
                log.warning("hypero: flushing experiment %s failed, will retry: %s", hex.id, e)
                with self._cv:
                    self._dirty_set.add(hex)

    def close(self) -> None:
        """Flush what is buffered and release the database connections."""
        if self._closed:
            return
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self.flush()
        self.db.dispose()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close_at_exit(ref: weakref.ref[Connection]) -> None:
    conn = ref()
    if conn is not None:
        conn.close()


def connect(
    url: str | None = None, *, schema: str | None = None, host: str | None = None,
    port: int | str | None = None, user: str | None = None, username: str | None = None,
    password: str | None = None, dbname: str | None = None, database: str | None = None,
    migrate: bool = True,
) -> Connection:
    """Connect to hypero's store and bring its schema up to date.

    The database is ``url`` if given, else one built from the seed-style keywords (``host``,
    ``port``, ``user``/``username``, ``password``, ``dbname``/``database``; what they omit falls
    to libpq's ``PG*`` variables and ``~/.pgpass``), else ``HYPERO_DB``, else
    ``sqlite:///hypero.db``. ``schema`` names the PostgreSQL schema (default ``hyper``).
    """
    keywords = (host, port, user, username, password, dbname, database)
    if url is None and any(k is not None for k in keywords):
        url = config.dsn_from_keywords(
            host, port, user or username, password, dbname or database
        )
    settings = config.from_env(db=url, schema=schema)
    if not settings.checkpoints.is_absolute():
        settings = _with_checkpoints(settings, Path.cwd() / settings.checkpoints)
    return Connection(settings, migrate=migrate)


def _with_checkpoints(settings: config.Settings, path: Path) -> config.Settings:
    from dataclasses import replace

    return replace(settings, checkpoints=path)
