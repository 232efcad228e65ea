"""Batteries and versions: get-or-create, the current version, the seed's query API."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

import hypero
from tests.conftest import Target

#: Names a user may type, or an attacker may try; all are data, never SQL.
HOSTILE = [
    "it's",
    'say "hi"',
    "'; DROP TABLE experiment; --",
    '"); DROP TABLE battery; --',
    "back\\slash \\' \\\\",
    "percent % and _ underscore",
    "new\nline\ttab",
    "ünïcødé — 日本語 — Ελληνικά",
    "emoji 🙂🚀👩‍🔬",
    "$str",
    "NaN",
    " leading and trailing ",
    "x" * 5000,
    "".join(chr(0x4E00 + i * 7) + chr(0x1F600 + i % 80) for i in range(1500)),  # ~9 kB
]
IDS = [f"hostile{i}" for i in range(len(HOSTILE))]


def count(conn: hypero.Connection, sql: str) -> int:
    with conn.db.read() as c:
        return int(c.execute(sa.text(sql)).scalar_one())


# -- get-or-create ---------------------------------------------------------------------------------


def test_battery_is_get_or_create(conn: hypero.Connection, target: Target) -> None:
    a = conn.battery("RNN Visual Attention", "fixed bug in Sequencer")
    assert (a.name, a.version) == ("RNN Visual Attention", "fixed bug in Sequencer")
    b = conn.battery("RNN Visual Attention", "fixed bug in Sequencer")
    assert (b.id, b.version_id) == (a.id, a.version_id)
    c = conn.battery("RNN Visual Attention", "another version")
    assert c.id == a.id and c.version_id != a.version_id
    d = conn.battery("Another battery", "fixed bug in Sequencer")
    assert d.id != a.id and d.version_id not in (a.version_id, c.version_id)
    with target.connect() as other:
        e = other.battery("RNN Visual Attention", "fixed bug in Sequencer")
        assert (e.id, e.version_id) == (a.id, a.version_id)
        assert other.batteries() == ["RNN Visual Attention", "Another battery"]
    assert count(conn, "SELECT count(*) FROM battery") == 2
    assert count(conn, "SELECT count(*) FROM version") == 3


def test_no_version_gives_the_initial_one_then_the_latest(conn: hypero.Connection) -> None:
    first = conn.battery("fresh")
    assert first.version == "Initial battery version"
    assert conn.battery("fresh").version_id == first.version_id
    v2 = conn.battery("fresh", "v2")
    v3 = conn.battery("fresh", "v3")
    latest = conn.battery("fresh")
    assert (latest.version, latest.version_id) == ("v3", v3.version_id)
    assert first.version_id < v2.version_id < v3.version_id
    conn.battery("fresh", "v2")  # asking for an older version again does not make it latest
    assert conn.battery("fresh").version == "v3"


def test_version_never_given_is_initial_then_named_ones(conn: hypero.Connection) -> None:
    bat = conn.battery("named first", "v1")
    assert conn.battery("named first").version == "v1"
    assert bat.versions() == [bat.version_id]


def test_set_version_gets_or_creates_and_becomes_current(conn: hypero.Connection) -> None:
    bat = conn.battery("sv", "v1")
    v1 = bat.version_id
    h1 = bat.experiment()
    v2 = bat.set_version("fixed another bug")
    assert (bat.version_id, bat.version) == (v2, "fixed another bug")
    assert v2 != v1
    h2 = bat.experiment()
    assert (h1.version_id, h2.version_id) == (v1, v2)
    assert bat.experiments() == [h2.id]
    assert bat.set_version("v1") == v1  # an existing one: the same id, nothing created
    assert bat.experiments() == [h1.id]
    assert bat.versions() == [v1, v2]
    assert conn.battery("sv").version == "fixed another bug"  # the latest


# -- queries ---------------------------------------------------------------------------------------


@pytest.fixture
def three_versions(conn: hypero.Connection) -> tuple[hypero.Battery, list[int], list[list[int]]]:
    bat = conn.battery("queries", "v1")
    vids, hexes = [], []
    for v in ("v1", "v2", "v3"):
        vids.append(bat.set_version(v))
        hexes.append([bat.experiment().id for _ in range(2)])
    conn.battery("unrelated", "v1").experiment()  # another battery's hexes never show up
    return bat, vids, hexes


def test_versions_from_min_version(three_versions: tuple[hypero.Battery, list[int],
                                                         list[list[int]]]) -> None:
    bat, (v1, v2, v3), _ = three_versions
    assert bat.versions() == [v1, v2, v3]
    assert bat.versions(min_version=v2) == [v2, v3]
    assert bat.versions(min_version="v2") == [v2, v3]
    assert bat.versions(min_version="v3") == [v3]
    assert bat.versions(min_version=v1) == [v1, v2, v3]
    with pytest.raises(hypero.NotFound, match="no such"):
        bat.versions(min_version="no such")
    with pytest.raises(hypero.NotFound):
        bat.versions(min_version=v3 + 1000)


def test_experiments_of_versions(three_versions: tuple[hypero.Battery, list[int],
                                                       list[list[int]]]) -> None:
    bat, (v1, v2, _), (h1, h2, h3) = three_versions
    assert bat.version == "v3"
    assert bat.experiments() == h3
    assert bat.experiments(versions=["v1"]) == h1
    assert bat.experiments(versions=[v2]) == h2
    assert bat.experiments(versions=["v3", v1]) == sorted(h1 + h3)
    assert bat.experiments(versions=bat.versions(min_version="v2")) == h2 + h3
    with pytest.raises(hypero.NotFound):
        bat.experiments(versions=["nope"])


def test_experiment_and_reopening(conn: hypero.Connection, target: Target) -> None:
    bat = conn.battery("hexes", "v1")
    h = bat.experiment()
    assert (h.battery_id, h.version_id) == (bat.id, bat.version_id)
    assert h.state == "running"
    with target.connect() as other:
        again = other.experiment(h.id)
        assert (again.id, again.battery_id, again.version_id) == (h.id, bat.id, bat.version_id)
        assert again.state == "running"
    for bad in (h.id + 1000, 0, -1):
        with pytest.raises(hypero.NotFound, match=str(bad)):
            conn.experiment(bad)
    assert issubclass(hypero.NotFound, LookupError) and issubclass(hypero.NotFound,
                                                                   hypero.HyperoError)


def test_battery_queries_documents_and_metrics(conn: hypero.Connection) -> None:
    bat = conn.battery("docs", "v1")
    a, b = bat.experiment(), bat.experiment()
    a.hyper_param("lr", 0.1)
    a.hyper_param("bs", 32)
    b.hyper_param("lr", 0.2)
    a.meta_data("host", "gpu1")
    b.result_maxima(0.9, 0.8, 0.7)
    for step in range(3):
        a.log(step=step, loss=1.0 - step / 10, acc=step / 10)
    b.log(step=5, loss=0.5)
    ids = [a.id, b.id]
    assert bat.get_param(ids) == {a.id: {"lr": 0.1, "bs": 32}, b.id: {"lr": 0.2}}
    assert bat.get_param(ids, names=["bs"]) == {a.id: {"bs": 32}, b.id: {}}
    assert bat.get_meta(ids) == {a.id: {"host": "gpu1"}, b.id: {}}
    assert bat.get_result(ids, names=["valid", "nope"]) == {a.id: {}, b.id: {"valid": 0.8}}
    assert bat.get_metrics(ids) == {
        a.id: {"loss": [(0, 1.0), (1, 0.9), (2, 0.8)], "acc": [(0, 0.0), (1, 0.1), (2, 0.2)]},
        b.id: {"loss": [(5, 0.5)]},
    }
    assert bat.get_metrics(ids, names=["acc"]) == {
        a.id: {"acc": [(0, 0.0), (1, 0.1), (2, 0.2)]}, b.id: {},
    }
    assert bat.get_param([]) == {}


@pytest.mark.parametrize("name", ["", None, 42])
def test_battery_name_must_be_a_non_empty_string(conn: hypero.Connection, name: object) -> None:
    with pytest.raises(ValueError, match="battery name"):
        conn.battery(name)  # type: ignore[arg-type]
    assert conn.batteries() == []


# -- hostile names ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", HOSTILE, ids=IDS)
def test_hostile_battery_names_and_versions_are_data(
    conn: hypero.Connection, target: Target, name: str
) -> None:
    bat = conn.battery(name, name)
    bat2 = conn.battery(name, name + " (2)")
    h = bat2.experiment()
    assert conn.battery(name, name).version_id == bat.version_id
    with target.connect() as other:
        assert other.batteries() == [name]
        again = other.battery(name)
        assert (again.id, again.version, again.version_id) == (bat.id, name + " (2)",
                                                               bat2.version_id)
        assert again.experiments() == [h.id]
        assert again.versions(min_version=name) == [bat.version_id, bat2.version_id]
        assert count(other, "SELECT count(*) FROM experiment") == 1  # nothing was dropped
        assert count(other, "SELECT count(*) FROM battery") == 1
