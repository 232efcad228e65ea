"""Fixtures of the fault suite: a broker of each test's own, its processes, its :class:`Rig`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import services
from tests.conftest import Target
from tests.faults.harness import Rig
from tests.workers import Procs


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    p = Procs(tmp_path)
    yield p
    p.stop_all()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[services.RedisServer]:
    """A throwaway redis-server without persistence (never the machine's): tests kill it,
    flush it and fill it with crafted messages without touching anyone else's queues."""
    try:
        server = services.start_throwaway_redis(tmp_path)
    except services.ServiceUnavailable as e:
        services.unavailable(f"Redis: {e}")
    yield server
    server.close()


@pytest.fixture
def rig(postgresql_target: Target, redis_server: services.RedisServer, procs: Procs,
        tmp_path: Path) -> Rig:
    """Journalled sweeps on PostgreSQL and the test's own Redis."""
    return Rig(postgresql_target, f"{redis_server.url}/0", procs, tmp_path)
