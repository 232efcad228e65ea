"""The test-service helpers themselves: fixtures, throwaway servers, stop/kill/restart."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from tests import services
from tests.services import libpq_url


def _query(url: str, sql: str) -> object:
    with psycopg.connect(libpq_url(url), connect_timeout=5) as conn:
        row = conn.execute(sql).fetchone()
    return row[0] if row else None


# -- helpers --------------------------------------------------------------------------------------


def test_free_port_can_be_bound() -> None:
    port = services.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
    assert not services.port_open("127.0.0.1", port)


@pytest.mark.parametrize("ci", [True, False])
def test_unavailable_fails_under_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch, ci: bool
) -> None:
    monkeypatch.setattr(services, "CI", ci)
    expected = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(expected, match="no such service"):
        services.unavailable("no such service")


def test_libpq_url_drops_the_driver() -> None:
    assert libpq_url("postgresql+psycopg://u:p@h:1/d") == "postgresql://u:p@h:1/d"
    assert libpq_url("postgresql://u@h/d") == "postgresql://u@h/d"


def test_redact_hides_only_the_password() -> None:
    assert services.redact("redis://:pw@h:1/0") == "redis://:***@h:1/0"
    assert services.redact("postgresql://u:pw@h/d") == "postgresql://u:***@h/d"
    assert services.redact("postgresql://u@h/d") == "postgresql://u@h/d"


# -- the session fixtures -------------------------------------------------------------------------


def test_postgres_url_is_a_superuser(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+psycopg://")
    assert _query(postgres_url, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")


def test_redis_clean_url_starts_empty(redis_clean_url: str) -> None:
    if not os.environ.get("HYPERO_TEST_REDIS"):
        assert redis_clean_url.endswith(f"/{services.REDIS_TEST_DB}")
    with redis.Redis.from_url(redis_clean_url) as client:
        assert client.dbsize() == 0
        client.set("hypero-test:left-behind", "1")  # the next test's flush removes it


def test_redis_clean_url_flushes_between_tests(redis_clean_url: str) -> None:
    with redis.Redis.from_url(redis_clean_url) as client:
        assert client.get("hypero-test:left-behind") is None


def test_rabbitmq_url_accepts_connections(rabbitmq_url: str) -> None:
    assert rabbitmq_url.startswith("amqp://")


# -- throwaway PostgreSQL -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scram_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.PostgresServer]:
    try:
        server = services.start_throwaway_postgres(
            tmp_path_factory.mktemp("pg-scram"), auth="scram", password="s3cret pass/word"
        )
    except services.ServiceUnavailable as e:
        services.unavailable(f"throwaway PostgreSQL: {e}")
    yield server
    server.close()


def test_scram_postgres_accepts_only_the_right_password(scram_pg: services.PostgresServer) -> None:
    assert _query(scram_pg.url, "SELECT current_user") == "postgres"
    assert _query(scram_pg.url, "SHOW password_encryption") == "scram-sha-256"
    for wrong in ("wrong", ""):
        with pytest.raises(psycopg.OperationalError, match="password"):
            _query(scram_pg.url_for(password=wrong), "SELECT 1")


def test_postgres_restarts_on_the_same_port_with_its_data(
    scram_pg: services.PostgresServer,
) -> None:
    url, port = scram_pg.url, scram_pg.port
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (v int)")
        conn.execute("INSERT INTO kept VALUES (1)")

    scram_pg.stop()
    assert not scram_pg.running
    assert not services.port_open("127.0.0.1", port)
    with pytest.raises(psycopg.OperationalError):
        _query(url, "SELECT 1")

    scram_pg.start()
    assert scram_pg.port == port and scram_pg.url == url
    assert _query(url, "SELECT count(*) FROM kept") == 1

    # A crash: the committed row survives recovery.
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("INSERT INTO kept VALUES (2)")
    scram_pg.kill()
    assert not services.port_open("127.0.0.1", port)
    scram_pg.start()
    assert _query(url, "SELECT count(*) FROM kept") == 2


def test_find_postgres_falls_back_to_a_throwaway_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HYPERO_TEST_PG", raising=False)
    dead = f"postgresql+psycopg://postgres@127.0.0.1:{services.free_port()}/test"
    try:
        url, server = services.find_postgres(tmp_path, machine_url=dead)
    except services.ServiceUnavailable as e:
        services.unavailable(f"throwaway PostgreSQL: {e}")
    assert server is not None
    with server:
        assert url == server.url
        assert _query(url, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        pid = server.pid
    assert not server.running and pid is not None
    assert not services._group_alive(pid)  # the postmaster's children are gone too
    assert server.workdir.exists() == (not server._remove_workdir)


# -- throwaway Redis ------------------------------------------------------------------------------


def test_redis_restarts_empty_on_the_same_port(tmp_path: Path) -> None:
    try:
        server = services.start_throwaway_redis(tmp_path)
    except services.ServiceUnavailable as e:
        services.unavailable(f"throwaway Redis: {e}")
    with server, redis.Redis.from_url(f"{server.url}/3") as client:
        client.set("k", "v")
        port = server.port

        server.stop()
        assert not services.port_open("127.0.0.1", port)
        with pytest.raises(redis.ConnectionError):
            client.ping()

        server.start()
        assert server.port == port
        assert client.get("k") is None  # no persistence: queued messages would be gone

        client.set("k", "v")
        server.kill()
        assert not services.port_open("127.0.0.1", port)
        server.start()
        assert client.get("k") is None
    assert not server.running
    assert not list(Path(server.workdir).glob("*.rdb"))


def test_find_redis_falls_back_to_a_throwaway_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HYPERO_TEST_REDIS", raising=False)
    dead = f"redis://127.0.0.1:{services.free_port()}"
    try:
        url, server = services.find_redis(tmp_path, machine_url=dead)
    except services.ServiceUnavailable as e:
        services.unavailable(f"throwaway Redis: {e}")
    assert server is not None
    with server:
        assert url == f"{server.url}/{services.REDIS_TEST_DB}"
        assert services.redis_answers(url)


def test_start_reports_a_server_that_cannot_start(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))  # taken, but refusing connections: redis cannot bind it
        port = busy.getsockname()[1]
        with pytest.raises(services.ServiceUnavailable, match="exited"):
            services.start_throwaway_redis(tmp_path, port=port)
