"""Fault 8: one worker host cut off from the network for longer than its lease, then healed.

The "host" is a network namespace this test makes, joined to this machine by a veth pair with
private addresses (a /30 in 10.213.0.0/16, both ends ours). PostgreSQL and Redis listen on the
host end only; one worker runs inside the namespace (``ip netns exec``), another outside. The
test cuts the link while the inside worker runs the trial, lets the outside worker take the
trial over once the lease has run out, heals the link, and checks that the cut-off attempt's
late end was refused: the result, every recorded point and the metadata are the second
attempt's. No packet goes anywhere but to the addresses of the pair made here.
"""

from __future__ import annotations

import contextlib
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from hypero import dispatcher, spec, sweeps
from hypero.db import _with_timeouts
from tests import services
from tests.conftest import Target
from tests.faults.outage import JOURNAL_ENV, SECONDS_ENV, STEADY, journal, tally, wait_for
from tests.workers import (
    Procs,
    celery_for,
    clean_env,
    unique,
    wait_final,
    wait_ready,
    write_spec,
)

pytestmark = pytest.mark.timeout(180)
LEASE = 3.0


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


@dataclass
class Link:
    """A namespace ``ns`` joined to this machine by a veth pair: ``host`` ↔ ``inside``."""

    ns: str
    outer: str  # the interface on this machine
    inner: str  # its peer, inside the namespace
    host: str  # the address of ``outer``: where the servers listen
    guest: str  # the address of ``inner``
    subnet: str

    def cut(self) -> None:
        _ip("-n", self.ns, "link", "set", self.inner, "down")

    def heal(self) -> None:
        _ip("-n", self.ns, "link", "set", self.inner, "up")


def _free_subnet() -> tuple[str, str, str]:
    """A /30 of 10.213.0.0/16 that no interface or route of this machine uses."""
    taken = _ip("-4", "-o", "addr").stdout + _ip("-4", "route").stdout
    for _ in range(100):
        a, b = random.randrange(256), random.randrange(0, 256, 4)
        if f"10.213.{a}." not in taken:
            return f"10.213.{a}.{b + 1}", f"10.213.{a}.{b + 2}", f"10.213.{a}.{b}/30"
    raise services.ServiceUnavailable("no free /30 in 10.213.0.0/16")


@pytest.fixture
def link() -> Iterator[Link]:
    with _link() as made:
        yield made


@contextlib.contextmanager
def _link() -> Iterator[Link]:
    """A fresh namespace and veth pair, removed afterwards."""
    if shutil.which("ip") is None:
        services.unavailable("network namespaces: the ip command (iproute2) is not installed")
    tag = secrets.token_hex(3)
    ns, outer, inner = f"hypero-{tag}", f"hv{tag}a", f"hv{tag}b"
    made = _ip("netns", "add", ns, check=False)
    if made.returncode != 0:
        services.unavailable(f"network namespaces: ip netns add failed: {made.stderr.strip()}")
    try:
        host, guest, subnet = _free_subnet()
        _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", ns)
        _ip("addr", "add", f"{host}/30", "dev", outer)
        _ip("link", "set", outer, "up")
        _ip("-n", ns, "addr", "add", f"{guest}/30", "dev", inner)
        _ip("-n", ns, "link", "set", inner, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        yield Link(ns, outer, inner, host, guest, subnet)
    finally:
        _ip("netns", "del", ns, check=False)  # takes the pair with it once its processes end
        _ip("link", "del", outer, check=False)


class AuthRedis(services.RedisServer):
    """A throwaway Redis that asks for a password (it listens on a non-loopback address)."""

    password = secrets.token_hex(12)

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@{self.host}:{self.port}"

    def _command(self) -> list[str]:
        return [*super()._command(), "--requirepass", self.password]


@pytest.fixture
def servers(link: Link, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """PostgreSQL and Redis listening on the host end of the pair: ``(db url, broker url)``."""
    try:
        pg = services.start_throwaway_postgres(tmp_path)
        binary = services.ensure_program("redis-server", "redis-server")
    except services.ServiceUnavailable as e:
        services.unavailable(f"throwaway PostgreSQL/Redis: {e}")
    pg.stop()  # again on the pair's address, open to the namespace's end
    pg.host = link.host
    with open(pg.datadir / "pg_hba.conf", "a") as hba:
        hba.write(f"\nhost all all {link.subnet} trust\n")
    rs = AuthRedis(Path(tempfile.mkdtemp(prefix="hypero-redis-", dir=tmp_path)),
                   services.free_port(), binary=binary, remove_workdir=False)
    rs.host = link.host
    try:
        pg.start()
        rs.start()
        yield pg.url, f"{rs.url}/0"
    finally:
        rs.close()
        pg.close()


def test_a_host_cut_off_longer_than_its_lease_is_fenced_when_it_comes_back(
    link: Link, servers: tuple[str, str], procs: Procs, tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    db, broker = servers
    target, queue = Target("postgresql", db, "hyper"), unique("q")
    journal_path, spool = tmp_path / "journal", tmp_path / "spool-inside"
    env = clean_env({**target.env(), JOURNAL_ENV: str(journal_path), SECONDS_ENV: "4"})
    inside = f"{unique('inside')}@localhost"
    procs.start(["ip", "netns", "exec", link.ns, sys.executable, "-m", "hypero", "worker",
                 "--broker", broker, "--queues", queue, "--concurrency", "1", "--name", inside],
                {**env, "HYPERO_SPOOL": str(spool)}, "inside")
    celery = celery_for(broker, queue, target)
    wait_ready(celery, [inside], procs)
    path = write_spec(tmp_path, f"""
battery: partition
trial: {STEADY}
method: grid
queue: {queue}
lease: {LEASE}s
parameters:
  i: {{values: [0]}}
""")
    conn = target.connect()
    request.addfinalizer(conn.close)
    sid = dispatcher.dispatch(conn, spec.load(path), celery)
    (hid,) = sweeps.trial_ids(conn.store, sid)
    wait_for(lambda: journal(journal_path) == [(hid, 1)], 30, "the trial inside")
    outside = procs.worker(broker, queue, {**env, "HYPERO_SPOOL": str(tmp_path / "spool-out")})
    wait_ready(celery, [outside], procs)
    assert conn.store.experiment(hid)["worker"] == inside

    cut = time.time()
    link.cut()
    try:
        # the inside attempt ends while cut off: its end waits in its spool
        wait_for(lambda: (hid, 1) in journal(journal_path, "end"), 30, "attempt 1 to return")
        wait_for(lambda: list(spool.rglob("*.json")), 30, "attempt 1's end in the spool")
        # the outside worker takes the trial over once the lease has run out
        row = wait_for(lambda: _running(conn, hid, 2), 30, "attempt 2 on the outside worker")
    finally:
        link.heal()
    healed = time.time() - cut
    taken_over = row["started_at"].timestamp() - cut
    # the late end is tried again, refused (fenced) and dropped from the spool
    wait_for(lambda: not list(spool.rglob("*.json")), 60, "the inside spool to empty")
    counts = wait_final(conn, sid, procs, timeout=60)
    t = tally(conn, sid, journal_path)
    final = conn.store.experiment(hid)
    meta = conn.store.docs("meta", [hid])[hid]
    pids = {v for _, v in conn.store.metrics([hid], ["pid"])[hid]["pid"]}
    print(f"\npartition: cut {healed:.1f}s (lease {LEASE:g}s), taken over after "
          f"{taken_over:.1f}s; trials={t.trials} executions={t.executions} lost={t.lost} "
          f"duplicated={t.duplicated} nonfinal={t.nonfinal}")

    assert row["worker"] == outside and healed > LEASE
    assert counts["completed"] == 1, counts
    assert (t.trials, t.executions, t.lost, t.duplicated, t.nonfinal) == (1, 2, 0, 0, 0)
    assert journal(journal_path, "end")[0] == (hid, 1)  # the cut-off attempt did finish...
    res = t.results[hid]
    assert (final["attempt"], final["worker"], res["attempt"]) == (2, outside, 2)  # ...but lost
    assert meta["hypero.attempt"] == 2 and meta["hypero.worker"] == outside
    assert pids == {res["pid"]}, "a point of the cut-off attempt landed after the takeover"
    assert "hypero: database away, spooling trial" in procs.logs(tail=1000)


def _running(conn: object, hid: int, attempt: int) -> dict[str, object] | None:
    row = conn.store.experiment(hid)  # type: ignore[attr-defined]
    return row if row["state"] in ("running", "completed") and row["attempt"] == attempt else None


def test_a_connection_gives_up_instead_of_hanging_unless_the_dsn_says_otherwise() -> None:
    # a worker cut off from PostgreSQL must fail its heartbeat, not hang in it for ~15 minutes
    info = conninfo_to_dict(_with_timeouts("postgresql://u@10.213.0.1:5432/db"))
    assert info["connect_timeout"] == "10" and info["tcp_user_timeout"] == "10000"
    mine = "postgresql://u@10.213.0.1/db?connect_timeout=3&tcp_user_timeout=0"
    assert _with_timeouts(mine) == mine
    assert conninfo_to_dict(_with_timeouts("host=/tmp connect_timeout=2"))["connect_timeout"] == "2"


def test_the_namespace_and_its_pair_are_removed_afterwards() -> None:
    with _link() as made:
        assert made.ns in _ip("netns", "list").stdout
        assert made.outer in _ip("-o", "link").stdout
        inner = _ip("-n", made.ns, "-o", "addr").stdout
        assert f"{made.guest}/30" in inner and made.inner in inner
    assert made.ns not in _ip("netns", "list").stdout
    assert made.outer not in _ip("-o", "link").stdout
