"""The torch7 seed's README example, written in Python against hypero, then exported."""

from __future__ import annotations

import math
from typing import Any

import hypero
from tests.conftest import Target

N_HEX = 50


def build_and_run(opt: dict[str, Any], i: int) -> tuple[list[float], list[float], list[float]]:
    """Stands in for ``buildExperiment(opt); xp:run(ds)``: curves that depend on the options."""
    epochs = 5
    base = min(0.99, 0.5 + 10 * opt["learningRate"])
    train = [round(base * (e + 1) / epochs, 6) for e in range(epochs)]
    valid = [round(t - 0.05 - i / 1000, 6) for t in train]
    test = [round(v - 0.01, 6) for v in valid]
    return train, valid, test


def run_seed_example(conn: hypero.Connection) -> dict[int, dict[str, Any]]:
    bat = conn.battery("RNN Visual Attention", "fixed bug in Sequencer")
    seen: dict[int, dict[str, Any]] = {}
    for i in range(N_HEX):
        hex = bat.experiment()
        opt: dict[str, Any] = {"channelSize": 16 * (1 + i % 2), "hiddenSize": 256,
                               "batchSize": 32}
        opt["learningRate"] = hex.log_uniform("lr", math.log(0.00001), math.log(0.1))
        opt["lrDecay"] = hex.categorical("lr decay", ["linear", "adaptive"], probs=[0.8, 0.2])
        if opt["lrDecay"] == "linear":
            opt["minLR"] = hex.log_uniform("min lr", math.log(opt["learningRate"] / 1000),
                                           math.log(opt["learningRate"] / 10))
            opt["saturateEpoch"] = hex.normal("saturate", 600, 200)
        hex.hyper_param("channel", opt["channelSize"])
        hex.hyper_param("hidden", opt["hiddenSize"])
        hex.hyper_param("bs", opt["batchSize"])

        train, valid, test = build_and_run(opt, i)

        hex.result_maxima(max(train), max(valid), max(test))
        hex.result_learning_curve(train, valid, test)
        hex.meta_name(f"rnn-va-{i}")
        hex.meta_hostname("gpu-host-1")
        hex.meta_dataset("TranslatedMnist")
        hex.meta_savepath(f"/save/rnn-va-{i}.dat")
        hex.close()
        seen[hex.id] = {**opt, "train": train, "valid": valid, "test": test}
    return seen


def test_seed_readme_example(conn: hypero.Connection, target: Target) -> None:
    seen = run_seed_example(conn)
    with target.connect() as other:  # what another process (the export script) finds
        bat = other.battery("RNN Visual Attention")
        assert bat.version == "fixed bug in Sequencer"
        assert bat.experiments() == sorted(seen)
        rows, columns = bat.export_table(order_by="valid", ascending=False)

    params = {"lr", "lr decay", "min lr", "saturate", "channel", "hidden", "bs"}
    results = {"train", "valid", "test", "train_curve", "valid_curve", "test_curve"}
    metas = {"name", "hostname", "dataset", "savepath"}
    assert columns[0] == "hex_id"
    assert set(columns[1:8]) == params
    assert set(columns[8:14]) == results
    assert set(columns[14:]) == metas
    assert len(rows) == N_HEX

    table = [dict(zip(columns, r, strict=True)) for r in rows]
    valids = [r["valid"] for r in table]
    assert valids == sorted(valids, reverse=True)
    linear = 0
    for r in table:
        opt = seen[r["hex_id"]]
        assert r["lr"] == opt["learningRate"]
        assert 1e-5 * (1 - 1e-9) <= r["lr"] <= 0.1 * (1 + 1e-9)
        assert r["lr decay"] == opt["lrDecay"]
        if r["lr decay"] == "linear":
            linear += 1
            assert r["min lr"] == opt["minLR"]
            assert r["lr"] / 1000 * (1 - 1e-9) <= r["min lr"] <= r["lr"] / 10 * (1 + 1e-9)
            assert r["saturate"] == opt["saturateEpoch"]
        else:  # conditional parameters exist only where they were asked for
            assert r["min lr"] is None and r["saturate"] is None
        assert (r["channel"], r["hidden"], r["bs"]) == (opt["channelSize"], 256, 32)
        assert r["train_curve"] == opt["train"] and r["valid_curve"] == opt["valid"]
        assert r["test_curve"] == opt["test"]
        assert (r["train"], r["valid"], r["test"]) == (max(opt["train"]), max(opt["valid"]),
                                                       max(opt["test"]))
        i = int(r["name"].rsplit("-", 1)[1])
        assert r["savepath"] == f"/save/rnn-va-{i}.dat"
        assert (r["hostname"], r["dataset"]) == ("gpu-host-1", "TranslatedMnist")
    assert 0 < linear < N_HEX  # P(all 50 linear) ~ 1e-5: both branches ran
