"""The database: one engine per process, two backends, migrations on connect.

``Database`` owns the SQLAlchemy engine for PostgreSQL (psycopg 3, through libpq so that
``PG*`` variables, ``~/.pgpass``, service files and ``sslmode`` keep working) or SQLite (WAL,
busy timeout, foreign keys, ``BEGIN IMMEDIATE`` for writes). It turns driver errors into
:class:`hypero.StorageError` with any password redacted, and it applies the Alembic migrations
shipped in :mod:`hypero.migrations` under a lock, so that many workers connecting to a fresh
database at once do not race.

Thread safety: a ``Database`` may be used from several threads (the engine pools connections).
Across ``fork`` it disposes of the inherited pool in the child and opens new connections.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from hypero import codec
from hypero.config import check_schema, libpq_env, redact
from hypero.errors import ConfigError, StorageError
from hypero.schema import HEAD

VERSION_TABLE = "hypero_alembic_version"
_PG_PREFIXES = ("postgresql+psycopg://", "postgresql://", "postgres://")


def now() -> datetime:
    """The current time in UTC (all stored timestamps are UTC)."""
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands timestamps back naive; they were written in UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _libpq_conninfo(url: str) -> str:
    """The libpq form of a PostgreSQL URL or key=value DSN (SQLAlchemy's driver tag removed)."""
    for p in _PG_PREFIXES:
        if url.startswith(p):
            return "postgresql://" + url[len(p):]
    return url


#: libpq waits for ever for a connection and ~15 minutes for a write the server does not
#: acknowledge, so a worker cut off from the database hung in its heartbeat instead of keeping its
#: results in the spool. Unless the DSN (or ``PGCONNECT_TIMEOUT``) says otherwise, a connection
#: gives up after these; every caller that must survive an outage retries.
PG_TIMEOUTS = {"connect_timeout": "10", "tcp_user_timeout": "10000"}


def _with_timeouts(conninfo: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    given = set(conninfo_to_dict(conninfo))
    if "PGCONNECT_TIMEOUT" in libpq_env():
        given.add("connect_timeout")
    missing = {k: v for k, v in PG_TIMEOUTS.items() if k not in given}
    return make_conninfo(conninfo, **missing) if missing else conninfo


def backend_of(url: str) -> str:
    """``"postgresql"`` or ``"sqlite"``; :class:`ConfigError` for anything else."""
    if url.startswith("sqlite:"):
        return "sqlite"
    if url.startswith(_PG_PREFIXES) or ("=" in url and "://" not in url):
        return "postgresql"
    scheme = url.split("://", 1)[0] if "://" in url else url
    raise ConfigError(
        f"database: unsupported URL scheme {redact(scheme)!r}; "
        "use postgresql://… or sqlite:///path.db"
    )


def _wal(cur: sqlite3.Cursor, timeout: float = 60.0) -> None:
    """Put the file in WAL mode (it stays so).

    Switching needs the file to itself and answers "database is locked" at once, ignoring the
    busy timeout, when several processes open a fresh file together: retry until one has done it.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            if cur.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.005, 0.05))


class Database:
    """One engine, its dialect and schema; see the module docstring for the contract."""

    def __init__(self, url: str, schema: str = "hyper") -> None:
        self.url = url
        self.schema = check_schema(schema)
        self.backend = backend_of(url)
        self._pid = os.getpid()
        self._engine: Engine | None = None  # made on first use: a trial's child may never
        self._making = threading.Lock()      # touch the database, and an engine takes ms

    def __repr__(self) -> str:
        schema = f", schema={self.schema!r}" if self.backend == "postgresql" else ""
        return f"Database({redact(self.url)!r}{schema})"

    # -- engine ---------------------------------------------------------------------------------

    def _make_engine(self) -> Engine:
        kw: dict[str, Any] = {"json_serializer": codec.dumps, "json_deserializer": codec.loads}
        if self.backend == "sqlite":
            return self._sqlite_engine(kw)
        import psycopg
        from psycopg.types.json import set_json_dumps, set_json_loads

        conninfo, schema = _libpq_conninfo(self.url), self.schema

        def creator() -> Any:
            conn = psycopg.connect(_with_timeouts(conninfo))
            set_json_dumps(codec.dumps, conn)
            set_json_loads(codec.loads, conn)
            conn.execute(f'SET search_path TO "{schema}"')  # schema is a checked identifier
            conn.commit()
            return conn

        return sa.create_engine(
            "postgresql+psycopg://", creator=creator, pool_pre_ping=True, **kw
        )

    def _sqlite_engine(self, kw: dict[str, Any]) -> Engine:
        memory = self.url in ("sqlite://", "sqlite:///:memory:")
        if memory:
            kw.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
        else:
            kw["connect_args"] = {"timeout": 60, "check_same_thread": False}
        engine = sa.create_engine(self.url, **kw)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout=60000")
            if not memory:
                _wal(cur)
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine

    @property
    def engine(self) -> Engine:
        pid = os.getpid()
        if self._engine is None:
            with self._making:
                if self._engine is None:
                    self._engine, self._pid = self._make_engine(), pid
        elif pid != self._pid:  # forked: never reuse the parent's sockets
            self._engine.dispose(close=False)
            self._pid = pid
        return self._engine

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    # -- transactions ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """Turn driver errors into :class:`StorageError`, passwords redacted."""
        try:
            yield
        except sa.exc.DBAPIError as e:
            msg = str(e.orig).strip().splitlines()[0] if e.orig is not None else str(e)
            raise StorageError(redact(f"{self.backend}: {msg}")) from e
        except sa.exc.SQLAlchemyError as e:
            raise StorageError(redact(f"{self.backend}: {e}")) from e

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (SQLite: ``BEGIN IMMEDIATE``, so writers queue up, not fail)."""
        with self.errors(), self.engine.connect() as c:
            c = c.execution_options(sqlite_begin="IMMEDIATE")
            with c.begin():
                yield c

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction."""
        with self.errors(), self.engine.connect() as c, c.begin():
            yield c

    def lock_row(self, table: sa.Table) -> sa.Select[Any]:
        """``SELECT … FOR UPDATE`` on PostgreSQL (SQLite's write transaction already locks)."""
        q = sa.select(table)
        return q.with_for_update() if self.backend == "postgresql" else q

    # -- migrations -----------------------------------------------------------------------------

    def revision(self, c: Connection) -> str | None:
        """The schema revision recorded in the database, or None for a fresh one."""
        if self.backend == "postgresql":
            found = c.execute(
                sa.text("SELECT to_regclass(:t)"), {"t": f'"{self.schema}".{VERSION_TABLE}'}
            ).scalar()
        else:
            found = c.execute(
                sa.text("SELECT name FROM sqlite_master WHERE type='table' AND name=:t"),
                {"t": VERSION_TABLE},
            ).scalar()
        if not found:
            return None
        q: sa.Select[Any] = sa.select(sa.column("version_num")).select_from(sa.table(VERSION_TABLE))
        return c.execute(q).scalar()

    def migrate(self) -> None:
        """Bring the schema to :data:`HEAD`; idempotent and safe under concurrent callers."""
        with self.read() as c:
            if self.revision(c) == HEAD:
                return
        with self.write() as c:
            if self.backend == "postgresql":
                key = zlib.crc32(f"hypero.migrate:{self.schema}".encode()) - 2**31
                c.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
                exists = c.execute(
                    sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": self.schema}
                ).scalar()
                if not exists:
                    c.exec_driver_sql(f'CREATE SCHEMA "{self.schema}"')
            current = self.revision(c)
            if current == HEAD:
                return
            self._upgrade(c, current)

    def _upgrade(self, c: Connection, current: str | None) -> None:
        from alembic import command
        from alembic.config import Config
        from alembic.script import ScriptDirectory

        cfg = Config()
        cfg.set_main_option("script_location", "hypero:migrations")
        cfg.set_main_option("version_table", VERSION_TABLE)
        known = {s.revision for s in ScriptDirectory.from_config(cfg).walk_revisions()}
        if current is not None and current not in known:
            raise StorageError(
                f"the database schema is at revision {current!r}, newer than this hypero "
                f"understands ({HEAD!r}): upgrade hypero (pip install -U hypero)"
            )
        cfg.attributes["connection"] = c
        command.upgrade(cfg, "head")
