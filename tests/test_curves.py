"""``hypero curves``: streamed curves of chosen or best trials as PNG, SVG or PDF pictures."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import hypero
from hypero import sweeps
from hypero.cli import main
from hypero.curves import Drawn, labels, plot
from tests.conftest import Target
from tests.workers import clean_env, hypero_cli

BATTERY = "curves <demo> & co"


@pytest.fixture
def recorded(target: Target) -> Iterator[tuple[hypero.Connection, hypero.Battery, list[int]]]:
    """Four trials: three with curves (lr differs, depth does not), one without any."""
    conn = target.connect()
    bat = conn.battery(BATTERY, "v1")
    sweeps.create_sweep(conn.store, bat.id, bat.version_id,
                        {"metric": {"name": "valid", "goal": "maximize"}}, 0, 0, None)
    ids = []
    for k, lr in enumerate([0.1, 0.01, 0.001]):
        with bat.experiment() as hex:
            hex.hyper_param("lr", lr)
            hex.hyper_param("depth", 3)
            for step in range(5):
                loss = math.nan if (k == 2 and step == 2) else lr * (5 - step)
                hex.log(step=step, loss=loss, acc=0.5 + k * 0.1 + step / 100)
            hex.set_result({"valid": 0.5 + k * 0.1})
            ids.append(hex.id)
    with bat.experiment() as hex:  # the worst, and no curve at all
        hex.hyper_param("lr", 1.0)
        hex.set_result({"valid": 0.1})
        ids.append(hex.id)
    yield conn, bat, ids
    conn.close()


def _texts(svg: Path) -> list[str]:
    return [t.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
            for t in re.findall(r">([^<>]+)</text>", svg.read_text())]


def test_best_trials_by_sweep_metric_with_labelled_axes_and_legend(recorded, tmp_path: Path):
    conn, bat, ids = recorded
    out = tmp_path / "c.svg"
    drawn = plot(conn.store, bat.id, out, top=3)
    assert drawn == Drawn(hex_ids=ids[2::-1], names=["acc", "loss"], skipped=[])
    texts = _texts(out)
    assert BATTERY in texts  # the title, verbatim
    assert texts.count("step") == 2 and "acc" in texts and "loss" in texts
    # the legend names each trial by hex id and the params that differ (lr), not depth
    assert f"hex {ids[2]}: lr=0.001" in texts and f"hex {ids[0]}: lr=0.1" in texts
    assert not any("depth" in t for t in texts)


def test_chosen_trials_one_metric_and_trials_without_curves(recorded, tmp_path: Path):
    conn, bat, ids = recorded
    out = tmp_path / "c.svg"
    drawn = plot(conn.store, bat.id, out, hex_ids=[ids[0], ids[3]], metric_name="loss")
    assert drawn == Drawn(hex_ids=[ids[0]], names=["loss"], skipped=[ids[3]])
    texts = _texts(out)
    assert "loss" in texts and "acc" not in texts
    assert f"hex {ids[0]}" in texts  # alone: no param differs from another drawn trial
    with pytest.raises(hypero.NotFound, match="no streamed curve 'nope'"):
        plot(conn.store, bat.id, out, metric_name="nope")
    with pytest.raises(hypero.NotFound, match=f"trial {ids[3] + 100} is not in battery"):
        plot(conn.store, bat.id, out, hex_ids=[ids[3] + 100])
    with pytest.raises(hypero.ConfigError, match=r"\.png, \.svg or \.pdf"):
        plot(conn.store, bat.id, tmp_path / "c.jpg")


def test_labels_show_only_the_params_that_differ() -> None:
    params = {1: {"lr": 0.1, "depth": 3, "act": "relu"}, 2: {"lr": 0.01, "depth": 3},
              3: {"lr": math.nan, "depth": 3, "act": "relu"}}
    assert labels(params, [1, 2, 3]) == [
        "hex 1: act=relu, lr=0.1", "hex 2: lr=0.01", "hex 3: act=relu, lr=nan"]
    assert labels(params, [1]) == ["hex 1"]
    assert len(labels({1: {"x" * 200: 1}, 2: {}}, [1, 2])[0]) == 70


@pytest.mark.parametrize("target", ["sqlite"], indirect=True)  # the CLI over one store is enough
def test_cli_writes_png_and_pdf_and_fails_in_one_line(recorded, target: Target, tmp_path: Path):
    _, _, ids = recorded
    env = clean_env(target.env())
    png, pdf = tmp_path / "c.png", tmp_path / "c.pdf"
    r = hypero_cli(["curves", BATTERY, "--top", "2", "-o", str(png)], env)
    assert r.returncode == 0, r.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"of trials {ids[2]}, {ids[1]} to {png}" in r.stderr
    r = hypero_cli(["curves", BATTERY, "--hex", f"{ids[0]},{ids[1]}", "--hex", str(ids[3]),
                    "--metric", "acc", "-o", str(pdf)], env)
    assert r.returncode == 0, r.stderr
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert f"note: no curve for trials {ids[3]}" in r.stderr
    for args, message in [  # in this process: the same code, without a Python start each
        (["nope", "-o", str(png)], "no battery named 'nope'"),
        ([BATTERY, "-o", str(tmp_path / "c.gif")], "must end in .png, .svg or .pdf"),
        ([BATTERY, "--hex", "x", "-o", str(png)], "--hex: trial ids are integers"),
        ([BATTERY, "--hex", str(ids[3]), "-o", str(png)], "no streamed curve (hex.log)"),
    ]:
        r = CliRunner().invoke(main, ["curves", *args], env=target.env())
        assert r.exit_code == 2, (args, r.output)
        assert message in r.stderr and r.stderr.count("\n") == 1, r.stderr
