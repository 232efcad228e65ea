"""connect(): which database, libpq's own sources, secrets kept out of sight, buffered writes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote, urlsplit

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql as pgsql

import hypero
from tests import services
from tests.conftest import Target
from tests.services import libpq_url

#: Passwords nobody would type by chance: if one shows up in a message, it leaked.
ROLE_PASSWORD = "Canary-Role-7f3q9Zx"
SUPER_PASSWORD = "Canary-Super-2k8wQp"
WRONG_PASSWORD = "Canary-Wrong-5m1vRt"
ODD_PASSWORD = "Canary p@ss:w/rd?%#'\"\\ é"  # every character a URL or a DSN treats specially
CANARIES = (ROLE_PASSWORD, SUPER_PASSWORD, WRONG_PASSWORD, ODD_PASSWORD,
            quote(ODD_PASSWORD, safe=""), quote(ODD_PASSWORD))
T = TypeVar("T")


def whoami(conn: hypero.Connection) -> tuple[str, str, str]:
    """``(current_database, current_user, current_schema)`` of a PostgreSQL connection."""
    with conn.db.read() as c:
        row = c.execute(sa.text("SELECT current_database(), current_user, current_schema()")).one()
    return str(row[0]), str(row[1]), str(row[2])


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for canary in CANARIES:
            assert canary not in text, f"password leaked into: {text}"


# -- which database --------------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No HYPERO_* variables, the working directory a fresh one."""
    for var in ("HYPERO_DB", "HYPERO_SCHEMA", "HYPERO_CHECKPOINTS"):
        monkeypatch.delenv(var, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def test_default_is_hypero_db_in_the_working_directory(clean_env: Path) -> None:
    with hypero.connect() as conn:
        assert conn.url == f"sqlite:///{clean_env / 'hypero.db'}"  # absolute, for child processes
        conn.battery("default", "v1").experiment().close()
    assert (clean_env / "hypero.db").is_file()
    with hypero.connect(f"sqlite:///{clean_env / 'hypero.db'}") as again:
        assert again.batteries() == ["default"]


def test_hypero_db_overrides_the_default(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env_db = tmp_path / "from-env.db"
    monkeypatch.setenv("HYPERO_DB", f"sqlite:///{env_db}")
    with hypero.connect() as conn:
        conn.battery("from env")
    assert env_db.is_file()
    assert not (clean_env / "hypero.db").exists()


def test_argument_overrides_hypero_db(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env_db, arg_db = tmp_path / "from-env.db", tmp_path / "from-arg.db"
    monkeypatch.setenv("HYPERO_DB", f"sqlite:///{env_db}")
    with hypero.connect(f"sqlite:///{arg_db}") as conn:
        conn.battery("from arg")
    assert arg_db.is_file()
    assert not env_db.exists() and not (clean_env / "hypero.db").exists()


def test_environment_points_at_either_backend(
    target: Target, clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var, value in target.env().items():
        monkeypatch.setenv(var, value)
    with hypero.connect() as conn:
        assert conn.db.backend == target.backend
        hid = conn.battery("via env", "v1").experiment().id
    with target.connect() as conn:
        assert conn.battery("via env").experiments() == [hid]
    assert not (clean_env / "hypero.db").exists()


def test_seed_keywords_build_the_dsn(postgresql_target: Target) -> None:
    u = urlsplit(postgresql_target.url)
    assert u.hostname and u.port and u.username
    dbname = u.path.lstrip("/")
    schema = postgresql_target.schema
    with hypero.connect(
        host=u.hostname, port=u.port, user=u.username, dbname=dbname, schema=schema
    ) as a:
        assert a.url == f"postgresql://{u.username}@{u.hostname}:{u.port}/{dbname}"
        assert whoami(a) == (dbname, u.username, schema)
        bid = a.battery("keywords", "v1").id
    with hypero.connect(  # the seed's spellings: username=, database=, a port given as text
        host=u.hostname, port=str(u.port), username=u.username, database=dbname, schema=schema
    ) as b:
        assert whoami(b) == (dbname, u.username, schema)
        assert b.battery("keywords").id == bid


def test_repr_names_the_backend_and_schema(target: Target) -> None:
    with target.connect() as conn:
        text = repr(conn)
        assert str(conn) == text
        assert text.startswith("hypero.Connection(")
        assert (f"schema={target.schema!r}" in text) == (target.backend == "postgresql")


# -- libpq: .pgpass, PG* variables, secrets --------------------------------------------------------


@dataclass
class ScramCluster:
    server: services.PostgresServer
    role: str = "hyp"

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    def url(self, password: str | None = None, dbname: str = "hyp") -> str:
        auth = self.role + (f":{password}" if password else "")
        return f"postgresql://{auth}@{self.host}:{self.port}/{dbname}"


@pytest.fixture(scope="module")
def scram(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScramCluster]:
    """A throwaway cluster that asks for passwords: role ``hyp`` owning databases hyp and hyp2."""
    try:
        server = services.start_throwaway_postgres(
            tmp_path_factory.mktemp("scram"), auth="scram", password=SUPER_PASSWORD
        )
    except services.ServiceUnavailable as e:
        services.unavailable(f"throwaway PostgreSQL: {e}")
    with psycopg.connect(libpq_url(server.url), autocommit=True) as c:
        c.execute(f"CREATE ROLE hyp LOGIN PASSWORD '{ROLE_PASSWORD}'")
        odd = pgsql.SQL("CREATE ROLE odd LOGIN PASSWORD {}").format(pgsql.Literal(ODD_PASSWORD))
        c.execute(odd)
        c.execute("CREATE DATABASE hyp OWNER hyp")
        c.execute("CREATE DATABASE hyp2 OWNER hyp")
    # role odd may not create schemas: a DBA made one for it, as teams sharing a server do
    with psycopg.connect(libpq_url(server.url_for(dbname="hyp")), autocommit=True) as c:
        c.execute("CREATE SCHEMA odd AUTHORIZATION odd")
    yield ScramCluster(server)
    server.close()


@pytest.fixture
def no_pgpass(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """libpq finds no password file and no PG* variables unless a test sets them."""
    for var in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD", "PGSERVICE"):
        monkeypatch.delenv(var, raising=False)
    missing = tmp_path / "no-such-pgpass"
    monkeypatch.setenv("PGPASSFILE", str(missing))
    return missing


@pytest.fixture
def pgpass(scram: ScramCluster, no_pgpass: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A 0600 password file for role hyp, named by PGPASSFILE."""
    path = no_pgpass.with_name("pgpass")
    path.write_text(f"{scram.host}:{scram.port}:*:{scram.role}:{ROLE_PASSWORD}\n")
    path.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(path))
    return path


def test_dsn_without_password_connects_through_pgpass(scram: ScramCluster, pgpass: Path) -> None:
    with hypero.connect(scram.url(), schema="team_a") as conn:
        assert whoami(conn) == ("hyp", "hyp", "team_a")
        bat = conn.battery("pgpass", "v1")
        assert bat.experiment().id == 1


def test_dsn_without_password_fails_without_pgpass(scram: ScramCluster, no_pgpass: Path) -> None:
    with pytest.raises(hypero.StorageError) as e:
        hypero.connect(scram.url(), schema="team_a")
    msg = str(e.value)
    assert "password" in msg
    assert msg.startswith("postgresql:")
    assert_no_secret(msg, repr(e.value))


def test_wrong_password_is_a_storage_error_without_the_password(
    scram: ScramCluster, no_pgpass: Path
) -> None:
    for url in (scram.url(WRONG_PASSWORD),
                f"host={scram.host} port={scram.port} user=hyp password={WRONG_PASSWORD} "
                "dbname=hyp"):
        with pytest.raises(hypero.StorageError) as e:
            hypero.connect(url, schema="team_a")
        assert "password authentication failed" in str(e.value)
        assert_no_secret(str(e.value), repr(e.value))
    with pytest.raises(hypero.StorageError) as e:
        hypero.connect(host=scram.host, port=scram.port, user="hyp", password=WRONG_PASSWORD,
                       dbname="hyp")
    assert_no_secret(str(e.value), repr(e.value))


def test_password_never_shows_in_repr_or_url(scram: ScramCluster, no_pgpass: Path) -> None:
    conns = [
        hypero.connect(scram.url(ROLE_PASSWORD), schema="team_a"),
        hypero.connect(scram.url(ROLE_PASSWORD).replace("postgresql:", "postgresql+psycopg:"),
                       schema="team_a"),
        hypero.connect(f"host={scram.host} port={scram.port} user=hyp password={ROLE_PASSWORD} "
                       "dbname=hyp", schema="team_a"),
        hypero.connect(host=scram.host, port=scram.port, user="hyp", password=ROLE_PASSWORD,
                       dbname="hyp", schema="team_a"),
    ]
    for conn in conns:
        with conn:
            assert whoami(conn) == ("hyp", "hyp", "team_a")
            bat = conn.battery("secret", "v1")
            texts = [repr(conn), str(conn), conn.url, repr(conn.db), repr(bat),
                     repr(bat.experiment())]
            assert_no_secret(*texts)
            assert "***" in conn.url


def test_odd_password_through_keywords_and_pgpass(
    scram: ScramCluster, no_pgpass: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with hypero.connect(host=scram.host, port=scram.port, user="odd", password=ODD_PASSWORD,
                        dbname="hyp", schema="odd") as conn:
        assert whoami(conn) == ("hyp", "odd", "odd")
        assert_no_secret(repr(conn), str(conn), conn.url, repr(conn.db))
    escaped = ODD_PASSWORD.replace("\\", "\\\\").replace(":", "\\:")  # .pgpass escapes
    no_pgpass.write_text(f"{scram.host}:{scram.port}:*:odd:{escaped}\n")
    no_pgpass.chmod(0o600)
    with hypero.connect(f"postgresql://odd@{scram.host}:{scram.port}/hyp", schema="odd") as conn:
        assert whoami(conn) == ("hyp", "odd", "odd")


def test_pg_environment_variables_are_honoured(
    scram: ScramCluster, pgpass: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGHOST", scram.host)
    monkeypatch.setenv("PGPORT", str(scram.port))  # the only way to find this cluster
    monkeypatch.setenv("PGUSER", scram.role)
    monkeypatch.setenv("PGDATABASE", "hyp2")
    with hypero.connect("postgresql:///", schema="env_vars") as conn:
        assert whoami(conn) == ("hyp2", "hyp", "env_vars")
        conn.battery("env", "v1")
    monkeypatch.delenv("PGDATABASE")
    with hypero.connect(dbname="hyp", schema="env_vars") as conn:
        assert whoami(conn) == ("hyp", "hyp", "env_vars")
        assert conn.batteries() == []  # another database
    monkeypatch.setenv("HYPERO_DB", "postgresql:///hyp2")
    with hypero.connect(schema="env_vars") as conn:
        assert conn.batteries() == ["env"]


# -- buffered writes reach the database ------------------------------------------------------------


def poll(fn: Callable[[], T], timeout: float = 3.0) -> tuple[T, float]:
    """``fn()`` until it is truthy or ``timeout`` has passed; (value, seconds waited)."""
    t0 = time.monotonic()
    while True:
        value = fn()
        if value or time.monotonic() - t0 > timeout:
            return value, time.monotonic() - t0
        time.sleep(0.05)


def test_logged_points_reach_the_database_without_close(
    conn: hypero.Connection, target: Target
) -> None:
    h = conn.battery("flush", "v1").experiment()
    lr = h.log_uniform("lr", -5.0, -1.0)
    h.log(step=1, loss=0.5)
    h.log(step=2, loss=0.25)
    with target.connect() as other:
        bat = other.battery("flush")
        got, waited = poll(lambda: bat.get_metrics([h.id])[h.id].get("loss", []) == [
            (1, 0.5), (2, 0.25)])
        assert got, bat.get_metrics([h.id])
        assert waited < 2.0
        params, _ = poll(lambda: bat.get_param([h.id]).get(h.id))
        assert params == {"lr": lr}


def test_close_and_with_block_write_at_once(conn: hypero.Connection, target: Target) -> None:
    bat = conn.battery("flush", "v1")
    h1 = bat.experiment()
    h1.log(step=0, acc=0.1)
    h1.close()
    with bat.experiment() as h2:
        h2.log(step=0, acc=0.2)
        h2.hyper_param("bs", 32)
    with target.connect() as other:  # read at once: no waiting for the flusher
        ob = other.battery("flush")
        assert ob.get_metrics([h1.id, h2.id]) == {h1.id: {"acc": [(0, 0.1)]},
                                                   h2.id: {"acc": [(0, 0.2)]}}
        assert ob.get_param([h2.id]) == {h2.id: {"bs": 32}}
        assert other.experiment(h1.id).state == other.experiment(h2.id).state == "completed"


def test_connection_close_writes_what_is_buffered(target: Target) -> None:
    conn = target.connect()
    h = conn.battery("flush", "v1").experiment()
    h.log(step=0, loss=1.0)
    h.uniform("x", 2.0, 2.0)
    conn.close()
    with target.connect() as other:
        assert other.experiment(h.id).get_metrics() == {"loss": [(0, 1.0)]}
        assert other.experiment(h.id).get_param() == {"x": 2.0}


def test_buffered_points_are_written_at_interpreter_exit(target: Target, tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import hypero

        def main():
            conn = hypero.connect()
            hex = conn.battery("at exit", "v1").experiment()
            hex.uniform("dropout", 0.25, 0.25)
            for step in range(5):
                hex.log(step=step, loss=1.0 / (step + 1))
            print(hex.id, flush=True)
            # neither hex.close() nor conn.close(): the interpreter exits with points buffered

        main()
    """)
    env = {**os.environ, **target.env()}
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    hid = int(done.stdout.strip())
    with target.connect() as conn:
        h = conn.experiment(hid)
        assert h.get_metrics() == {"loss": [(s, 1.0 / (s + 1)) for s in range(5)]}
        assert h.get_param() == {"dropout": 0.25}


def test_connection_is_a_context_manager(target: Target) -> None:
    with target.connect() as conn:
        bid = conn.battery(f"cm-{uuid.uuid4().hex[:6]}").id
    assert bid == 1
