"""Many workers asking for the same new battery and version at once get one row and one id."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests import procs
from tests.conftest import Target

N = 8


@pytest.mark.parametrize("version", ["fixed bug in Sequencer", None])
def test_concurrent_get_or_create_makes_one_battery_and_one_version(
    postgresql_target: Target, version: str | None
) -> None:
    target = postgresql_target
    with target.connect() as conn:  # migrated beforehand: the children race on the battery
        conn.battery("someone else's", "v1")
    name = "RNN Visual Attention"
    got = procs.run_together(procs.battery_ids, [(target.url, target.schema, name, version)] * N,
                             own_barrier=True)
    expected_version = version or "Initial battery version"
    assert len(set(got)) == 1, got
    bid, vid, desc = got[0]
    assert desc == expected_version
    with target.connect() as conn, conn.db.read() as c:
        batteries = c.execute(
            sa.text("SELECT id FROM battery WHERE name = :n"), {"n": name}
        ).scalars().all()
        versions = c.execute(
            sa.text("SELECT id, description FROM version WHERE battery_id = :b"), {"b": bid}
        ).all()
        total = c.execute(sa.text("SELECT count(*) FROM battery")).scalar_one()
    assert batteries == [bid]
    assert [tuple(v) for v in versions] == [(vid, expected_version)]
    assert total == 2


def test_concurrent_writers_of_one_hex_lose_no_key(target: Target) -> None:
    """Documents merge under a row lock: no writer's read-modify-write undoes another's."""
    with target.connect() as conn:
        h = conn.battery("shared hex", "v1").experiment()
        h.set_result({"before": True})
    procs.run_together(procs.write_same_hex,
                       [(target.url, target.schema, h.id, i) for i in range(N)], own_barrier=True)
    with target.connect() as conn:
        again = conn.experiment(h.id)
        assert again.get_result() == {"before": True, **{f"r{i}": i for i in range(N)}}
        assert again.get_meta() == {f"m{i}": i for i in range(N)}
        assert again.get_param() == {f"p{i}": i for i in range(N)}
        assert again.get_metrics() == {
            "shared": [(i, float(i)) for i in range(N)],
            **{f"own{i}": [(i, 1.0)] for i in range(N)},
        }
