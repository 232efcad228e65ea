"""hypero.monitor: what ``hypero status`` shows of a sweep, on both backends."""

from __future__ import annotations

import math
from typing import Any

import hypero
from hypero import monitor, sweeps

SPEC = {"queue": "hypero", "metric": {"name": "valid", "goal": "maximize"}}


def _sweep(conn: hypero.Connection, results: list[tuple[str, dict[str, Any]]]) -> int:
    """A sweep whose trials end in these ``(state, result)``s."""
    bat = conn.battery("monitor", "v1")
    sid = sweeps.create_sweep(conn.store, bat.id, bat.version_id, SPEC, 1, len(results), None)
    ids = conn.store.create_experiments(bat.id, bat.version_id, [{}] * len(results),
                                        state="queued", sweep_id=sid)
    for hid, (state, res) in zip(ids, results, strict=True):
        attempt = sweeps.claim(conn.store, hid, "w", 60)
        assert attempt is not None
        sweeps.finish(conn.store, hid, attempt, state, docs={"result": (res, "update")})
    return sid


def test_best_is_the_best_number_of_a_completed_trial(conn: hypero.Connection) -> None:
    results = [
        ("completed", {"valid": 0.5}), ("completed", {"valid": math.nan}),
        ("completed", {"valid": math.inf}), ("completed", {"valid": "0.99"}),
        ("completed", {"valid": 7}), ("failed", {"valid": 100.0}), ("completed", {}),
        ("pruned", {"valid": 50.0}), ("completed", {"valid": -3.25}),
        ("completed", {"valid": None}), ("completed", {"valid": [9.0]}),
    ]
    sid = _sweep(conn, results)
    other = _sweep(conn, [("completed", {"valid": 1000.0}), ("completed", {"valid": -1000.0})])
    ids = sweeps.trial_ids(conn.store, sid)
    assert monitor.best(conn.store, sid, "valid", "maximize") == (ids[4], 7.0)
    assert monitor.best(conn.store, sid, "valid", "minimize") == (ids[8], -3.25)
    assert monitor.best(conn.store, sid, "nope", "minimize") is None
    assert monitor.best(conn.store, other, "valid", "maximize")[1] == 1000.0  # type: ignore[index]
    st = monitor.sweep_status(conn.store, sid)
    assert st.best == (ids[4], 7.0)
    assert st.counts == {"queued": 0, "running": 0, "completed": 9, "failed": 1, "pruned": 1,
                         "cancelled": 0}


def test_a_sweep_with_a_metric_has_its_result_key_indexed(postgresql_target: Any) -> None:
    target = postgresql_target  # an index on a jsonb key is PostgreSQL's
    with target.connect() as conn:
        _sweep(conn, [("completed", {"valid": 1.0})])
        with conn.db.read() as c:
            raw: Any = c.connection.driver_connection
            defs = [r[0] for r in raw.execute(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = 'result'",
                [target.schema])]
        assert any("(doc -> 'valid'::text)" in d for d in defs), defs
        assert conn.store.index_result_key("valid")  # once is enough; again is harmless
        assert conn.store.index_result_key("it's \"odd\"; DROP TABLE result")
        assert monitor.best(conn.store, 1, "valid", "maximize") is not None
