"""Shared fixtures. Service fixtures come first; see tests/services.py for how each is found."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

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
