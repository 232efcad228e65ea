"""Shared fixtures. Service fixtures come first; see tests/services.py for how each is found."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

import hypero
from tests import services

# -- real services (session-scoped; skip on a laptop without them, fail under CI=true) -----------


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``postgresql+psycopg://`` URL of a superuser, free to create schemas, roles, databases."""
    try:
        url, server = services.find_postgres(tmp_path_factory.mktemp("postgres"))
    except services.ServiceUnavailable as e:
        services.unavailable(f"PostgreSQL: {e}")
    yield url
    if server is not None:
        server.close()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``redis://host:port/15``: a database the tests own; ``redis_clean_url`` flushes it."""
    try:
        url, server = services.find_redis(tmp_path_factory.mktemp("redis"))
    except services.ServiceUnavailable as e:
        services.unavailable(f"Redis: {e}")
    yield url
    if server is not None:
        server.close()


@pytest.fixture
def redis_clean_url(redis_url: str) -> str:
    """``redis_url``, with its database emptied (FLUSHDB) before the test."""
    with redis.Redis.from_url(redis_url) as client:
        client.flushdb()
    return redis_url


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    """``amqp://`` URL of a running RabbitMQ (``$HYPERO_TEST_AMQP`` or the machine's)."""
    try:
        return services.find_rabbitmq()
    except services.ServiceUnavailable as e:
        services.unavailable(f"RabbitMQ: {e}")


# -- hypero stores on both backends ------------------------------------------------------------


class Target:
    """Where a test's store lives: a URL and, on PostgreSQL, a schema of its own."""

    def __init__(self, backend: str, url: str, schema: str) -> None:
        self.backend, self.url, self.schema = backend, url, schema

    def connect(self, **kw: object) -> hypero.Connection:
        return hypero.connect(self.url, schema=self.schema, **kw)  # type: ignore[arg-type]

    def env(self) -> dict[str, str]:
        """Environment variables that point a child process (worker, CLI) at this store."""
        return {"HYPERO_DB": self.url, "HYPERO_SCHEMA": self.schema}


@pytest.fixture
def postgresql_target(postgres_url: str) -> Iterator[Target]:
    """A fresh PostgreSQL schema for one test, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield Target("postgresql", postgres_url, schema)
    with psycopg.connect(postgres_url.replace("+psycopg", ""), autocommit=True) as c:
        c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def sqlite_target(tmp_path: Path) -> Target:
    return Target("sqlite", f"sqlite:///{tmp_path / 'hypero.db'}", "hyper")


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest) -> Target:
    """The contract suite's store: each test runs once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_target")  # type: ignore[no-any-return]


@pytest.fixture
def conn(target: Target) -> Iterator[hypero.Connection]:
    c = target.connect()
    yield c
    c.close()
