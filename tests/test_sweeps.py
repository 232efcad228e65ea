"""hypero.sweeps: a trial's claim, end and lease in SQL, on both backends."""

from __future__ import annotations

import math
from datetime import timedelta

import hypero
from hypero import sweeps
from hypero.db import now


def _queued(conn: hypero.Connection, params: list[dict[str, object]]) -> list[int]:
    bat = conn.battery("sweeps", "v1")
    sid = sweeps.create_sweep(conn.store, bat.id, bat.version_id, {}, 1, len(params), None)
    return conn.store.create_experiments(bat.id, bat.version_id, params, state="queued",
                                         sweep_id=sid)


def test_take_claims_once_and_hands_over_the_row_and_params(conn: hypero.Connection) -> None:
    hid, other = _queued(conn, [{"lr": 0.1, "act": "relu"}, {}])
    got = sweeps.take(conn.store, hid, "w1", 30)
    assert got is not None
    row, params = got
    assert params == {"lr": 0.1, "act": "relu"}
    assert (row["id"], row["state"], row["attempt"], row["worker"]) == (hid, "running", 1, "w1")
    assert row == conn.store.experiment(hid)
    assert sweeps.take(conn.store, hid, "w2", 30) is None  # running: not claimable again
    assert sweeps.claim(conn.store, other, "w2", 30) == 1


def test_finish_is_fenced_by_the_attempt_and_merges_documents(conn: hypero.Connection) -> None:
    (hid,) = _queued(conn, [{"lr": 0.1}])
    attempt = sweeps.claim(conn.store, hid, "w", 30)
    assert attempt == 1
    docs = {"param": ({"lr": 0.5, "depth": 3}, "keep"), "result": ({"v": math.nan}, "update")}
    assert sweeps.finish(conn.store, hid, attempt, "queued", docs=docs, failed_attempt=True,
                         error="boom")
    assert not sweeps.finish(conn.store, hid, attempt, "completed")  # no longer running
    assert sweeps.claim(conn.store, hid, "w", 30) == 2
    assert not sweeps.finish(conn.store, hid, 1, "completed")  # the stale attempt
    assert sweeps.finish(conn.store, hid, 2, "completed", docs={"result": ({"w": 1}, "update")},
                         metrics=[("loss", 0, 0.5), ("loss", 0, 0.25)])
    row = conn.store.experiment(hid)
    assert (row["state"], row["failures"], row["error"]) == ("completed", 1, None)
    assert row["finished_at"] is not None and row["lease_until"] is None
    assert conn.store.docs("param", [hid])[hid] == {"lr": 0.1, "depth": 3}  # kept, not replaced
    result = conn.store.docs("result", [hid])[hid]
    assert math.isnan(result["v"]) and result["w"] == 1
    assert conn.store.metrics([hid])[hid] == {"loss": [(0, 0.25)]}


def test_next_expiry_is_the_first_running_lease(conn: hypero.Connection) -> None:
    a, b, _ = _queued(conn, [{}, {}, {}])
    assert sweeps.next_expiry(conn.store) is None
    t = now()
    sweeps.claim(conn.store, a, "w", 60)
    sweeps.claim(conn.store, b, "w", 5)
    first = sweeps.next_expiry(conn.store)
    assert first is not None
    assert t + timedelta(seconds=4) < first < now() + timedelta(seconds=6)
    sweeps.finish(conn.store, b, 1, "completed")
    later = sweeps.next_expiry(conn.store)
    assert later is not None and later > first + timedelta(seconds=50)
