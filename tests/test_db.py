"""Storage: backends, PostgreSQL schemas, migrations, SQLite settings and concurrent writers."""

from __future__ import annotations

import gc
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql as pgsql

import hypero
from hypero.schema import HEAD
from tests import procs
from tests.conftest import Target
from tests.services import libpq_url

TABLES = {"battery", "version", "sweep", "experiment", "param", "meta", "result", "metric"}
VERSION_TABLE = "hypero_alembic_version"
REVISION_SQL = "SELECT version_num FROM hypero_alembic_version"


def tables(target: Target) -> set[str]:
    """The tables of the target's store, read outside hypero."""
    if target.backend == "sqlite":
        path = target.url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as c:
            rows = c.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    else:
        with psycopg.connect(libpq_url(target.url)) as c:
            rows = c.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (target.schema,),
            ).fetchall()
    return {r[0] for r in rows}


def scalar_rows(conn: hypero.Connection, sql: str) -> list[object]:
    with conn.db.read() as c:
        return list(c.execute(sa.text(sql)).scalars())


@pytest.fixture
def pg_schemas(postgres_url: str) -> Iterator[list[str]]:
    """Schema names for a test to create; every one of them is dropped afterwards."""
    names: list[str] = []
    yield names
    with psycopg.connect(libpq_url(postgres_url), autocommit=True) as c:
        for name in names:
            c.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def new_schema(names: list[str], prefix: str = "t_") -> str:
    names.append(f"{prefix}{uuid.uuid4().hex[:12]}")
    return names[-1]


# -- URLs and schema names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["mysql://root:canary-pw@db/hypero", "http://example.com/db", "hypero.db", "redis://h"]
)
def test_unknown_scheme_is_a_config_error(url: str, tmp_path: Path) -> None:
    with pytest.raises(hypero.ConfigError) as e:
        hypero.connect(url)
    msg = str(e.value)
    assert "postgresql://" in msg and "sqlite:///" in msg
    assert "canary-pw" not in msg
    assert not (tmp_path / "hypero.db").exists()


@pytest.mark.parametrize(
    "schema",
    ['x"; DROP SCHEMA public; --', "bad;name", "with space", "dash-name", "1digit", "a" * 64,
     "schéma", "x\x00y"],
)
def test_invalid_schema_name_is_a_config_error(
    schema: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(hypero.ConfigError, match="schema"):
        hypero.connect(postgres_url, schema=schema)
    if "\x00" not in schema:  # an environment variable cannot hold a NUL
        monkeypatch.setenv("HYPERO_SCHEMA", schema)
        with pytest.raises(hypero.ConfigError, match="schema"):
            hypero.connect(postgres_url)


def test_tables_land_in_the_named_schema(postgres_url: str, pg_schemas: list[str]) -> None:
    schema = new_schema(pg_schemas, "Team_")  # mixed case: kept as written, not folded
    with hypero.connect(postgres_url, schema=schema) as conn:
        conn.battery("b", "v").experiment().close()
        assert schema in repr(conn)
    target = Target("postgresql", postgres_url, schema)
    assert tables(target) >= TABLES | {VERSION_TABLE}
    with psycopg.connect(libpq_url(postgres_url)) as c:
        q = pgsql.SQL("SELECT count(*) FROM {}.experiment").format(pgsql.Identifier(schema))
        n = c.execute(q).fetchone()
    assert n == (1,)


def test_default_schema_is_hyper(postgres_url: str) -> None:
    with hypero.connect(postgres_url, migrate=False) as conn:
        assert conn.settings.schema == "hyper"
        assert conn.db.schema == "hyper"


def test_two_schemas_are_isolated(postgres_url: str, pg_schemas: list[str]) -> None:
    a, b = new_schema(pg_schemas), new_schema(pg_schemas)
    with hypero.connect(postgres_url, schema=a) as ca, hypero.connect(postgres_url, schema=b) as cb:
        bat_a = ca.battery("shared name", "v-a")
        hex_a = [bat_a.experiment() for _ in range(3)]
        for h in hex_a:
            h.set_result({"team": "a"})
        bat_b = cb.battery("shared name", "v-b")
        hex_b = bat_b.experiment()
        hex_b.set_result({"team": "b"})
        assert bat_a.id == bat_b.id == 1  # each schema has its own sequences
        assert [h.id for h in hex_a] == [1, 2, 3] and hex_b.id == 1
        assert [d for _, d in ca.store.versions(bat_a.id)] == ["v-a"]
        assert [d for _, d in cb.store.versions(bat_b.id)] == ["v-b"]
        assert cb.battery("shared name").experiments() == [1]
        assert cb.experiment(1).get_result() == {"team": "b"}
        assert ca.experiment(1).get_result() == {"team": "a"}
        with pytest.raises(hypero.NotFound):
            cb.experiment(2)


# -- migrations ------------------------------------------------------------------------------------


def test_connect_applies_migrations(target: Target) -> None:
    assert not (tables(target) & TABLES)
    with target.connect() as conn:
        assert tables(target) >= TABLES | {VERSION_TABLE}
        assert scalar_rows(conn, REVISION_SQL) == [HEAD]


def test_migrations_are_idempotent(target: Target) -> None:
    with target.connect() as conn:
        h = conn.battery("kept", "v1").experiment()
        h.set_result({"valid": 0.5})
        h.close()
    for _ in range(2):
        with target.connect() as conn:
            assert scalar_rows(conn, REVISION_SQL) == [HEAD]
            assert conn.experiment(h.id).get_result() == {"valid": 0.5}
            assert conn.battery("kept").experiments() == [h.id]


def test_many_processes_migrate_a_fresh_store_at_once(target: Target) -> None:
    n = 8
    ids = procs.run_together(procs.connect_and_record, [(target.url, target.schema, i)
                                                        for i in range(n)])
    assert len(set(ids)) == n
    with target.connect() as conn:
        assert scalar_rows(conn, REVISION_SQL) == [HEAD]
        assert scalar_rows(conn, "SELECT count(*) FROM battery") == [1]
        assert scalar_rows(conn, "SELECT count(*) FROM version") == [1]
        bat = conn.battery("migrated")
        assert bat.experiments() == sorted(ids)
        params = bat.get_param(ids)
        assert sorted(params[i]["child"] for i in ids) == list(range(n))
        assert {h: [v for _, v in m["loss"]] for h, m in bat.get_metrics(ids).items()} == {
            i: [float(params[i]["child"])] for i in ids
        }
    assert tables(target) >= TABLES | {VERSION_TABLE}


def test_a_store_at_an_older_revision_is_upgraded_with_its_data(target: Target) -> None:
    from alembic import command
    from alembic.config import Config

    with target.connect() as conn:
        bat = conn.battery("old", "v1")
        with bat.experiment() as h:
            h.hyper_param("lr", 0.1)
            h.log(step=0, loss=1.0)
        with conn.db.write() as c:  # back to what hypero 0.1.0 created
            cfg = Config()
            cfg.set_main_option("script_location", "hypero:migrations")
            cfg.set_main_option("version_table", VERSION_TABLE)
            cfg.attributes["connection"] = c
            command.downgrade(cfg, "0001")
        assert scalar_rows(conn, REVISION_SQL) == ["0001"]
    with target.connect() as conn:
        assert scalar_rows(conn, REVISION_SQL) == [HEAD]
        again = conn.battery("old", "v1")
        assert (again.id, again.version_id) == (bat.id, bat.version_id)
        assert conn.experiment(h.id).get_param() == {"lr": 0.1}
        h2 = conn.experiment(h.id)
        h2.log(step=0, loss=0.5)  # the same point again: replaced, not duplicated
        h2.flush()
        assert h2.get_metrics() == {"loss": [(0, 0.5)]}
        long = "long version " * 1000
        assert conn.battery("old", long).version == long


def test_newer_database_revision_is_refused_with_the_fix(target: Target) -> None:
    with target.connect() as conn:
        hid = conn.battery("b", "v").experiment().id
        with conn.db.write() as c:
            c.execute(sa.text("UPDATE hypero_alembic_version SET version_num = '9999'"))
    with pytest.raises(hypero.StorageError) as e:
        target.connect()
    gc.collect()  # a connection the refused connect() left open would warn here, failing the test
    msg = str(e.value)
    assert "'9999'" in msg
    assert "upgrade hypero" in msg and "pip install -U hypero" in msg
    with target.connect(migrate=False) as conn:  # nothing was touched
        assert scalar_rows(conn, REVISION_SQL) == ["9999"]
        assert scalar_rows(conn, "SELECT id FROM experiment") == [hid]


# -- SQLite ----------------------------------------------------------------------------------------


def test_sqlite_uses_wal_foreign_keys_and_a_busy_timeout(sqlite_target: Target) -> None:
    path = sqlite_target.url.removeprefix("sqlite:///")
    with sqlite_target.connect() as conn:
        conn.battery("b", "v").experiment().close()
        with conn.db.read() as c:
            assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
        # foreign keys are enforced: a document for an experiment that does not exist is refused
        with pytest.raises(hypero.StorageError, match="FOREIGN KEY"), conn.db.write() as c:
            c.execute(sa.text("INSERT INTO result (hex_id, doc) VALUES (999, '{}')"))
    with sqlite3.connect(path) as raw:  # WAL is a property of the file, seen by any client
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_sqlite_writer_waits_for_a_lock_instead_of_failing(sqlite_target: Target) -> None:
    path = sqlite_target.url.removeprefix("sqlite:///")
    with sqlite_target.connect() as conn:
        bat = conn.battery("b", "v")
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # another program holds the write lock for a second
        other.execute("INSERT INTO battery (name, created_at) VALUES ('other', '2026-01-01')")
        release = threading.Timer(1.0, other.execute, ("COMMIT",))
        release.start()
        t0 = time.monotonic()
        try:
            h = bat.experiment()
        finally:
            release.join()
            other.close()
        assert time.monotonic() - t0 >= 0.9
        assert h.state == "running"
        assert conn.batteries() == ["b", "other"]


def test_concurrent_sqlite_writers_lose_nothing(sqlite_target: Target) -> None:
    target = sqlite_target
    n_procs, n_hex, points = 4, 20, 10
    ids = procs.run_together(
        procs.write_many, [(target.url, target.schema, i, n_hex, points) for i in range(n_procs)]
    )
    all_ids = [i for part in ids for i in part]
    assert len(set(all_ids)) == n_procs * n_hex
    with target.connect() as conn:
        with conn.db.read() as c:
            counts = c.execute(sa.text(
                "SELECT (SELECT count(*) FROM experiment), (SELECT count(*) FROM param), "
                "(SELECT count(*) FROM meta), (SELECT count(*) FROM result), "
                "(SELECT count(*) FROM metric), (SELECT count(*) FROM battery)"
            )).one()
        n = n_procs * n_hex
        assert tuple(counts) == (n, n, n, n, n * points, 1)
        assert scalar_rows(conn, "SELECT DISTINCT state FROM experiment") == ["completed"]
        bat = conn.battery("writers")
        params = bat.get_param(all_ids)
        metas = bat.get_meta(all_ids)
        results = bat.get_result(all_ids)
        metrics = bat.get_metrics(all_ids)
        seen = set()
        for proc, part in enumerate(ids):
            for k, hid in enumerate(part):
                assert params[hid]["proc"] == proc and params[hid]["k"] == k
                assert 0.0 <= params[hid]["x"] <= 1.0
                assert metas[hid] == {"writer": f"{proc}/{k}"}
                assert results[hid] == {"train": proc, "valid": k}
                assert metrics[hid] == {
                    "loss": [(s, proc + k / 100 + s) for s in range(points)]
                }
                seen.add((proc, k))
        assert len(seen) == n_procs * n_hex
