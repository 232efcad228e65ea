"""hypero.runner: one trial run by a worker's supervisor, in this process (the trial forked)."""

from __future__ import annotations

from pathlib import Path

from hypero import dispatcher, spec
from hypero.config import Settings
from hypero.runner import Supervisor
from tests.conftest import Target
from tests.workers import trial, write_spec


def test_a_trial_keeps_its_declared_params_and_its_own_overrides(
    target: Target, tmp_path: Path
) -> None:
    path = write_spec(tmp_path, f"""
trial: {trial("params.py:resample_and_override")}
run_cap: 3
parameters:
  lr: {{distribution: log_uniform_values, min: 1.0e-5, max: 0.1}}
  depth: {{distribution: int_uniform, min: 1, max: 8}}
""")
    with target.connect() as conn:
        _, ids = dispatcher.create(conn, spec.load(path), seed=3)
        planned = conn.store.docs("param", ids)
        sup = Supervisor(conn.store, Settings(db=target.url, schema=target.schema), "inline")
        assert [sup.run(h, [], lambda _: None) for h in ids] == ["completed"] * 3
        params, results = conn.store.docs("param", ids), conn.store.docs("result", ids)
    for h in ids:
        lr, depth = planned[h]["lr"], planned[h]["depth"]
        assert results[h] == {"lr_seen": lr, "depth_seen": depth}  # the dispatcher's values
        assert params[h]["lr"] == lr
        assert params[h]["depth"] == depth + 100  # update=True wins over the declared value
        assert 0.0 <= params[h]["extra"] <= 1.0  # sampled by the trial, recorded as well
        assert set(params[h]) == {"lr", "depth", "extra"}
