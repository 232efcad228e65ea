"""``hypero curves``: streamed learning curves (``hex.log``) of chosen or best trials as a picture.

Drawn with matplotlib (the ``hypero[plot]`` extra) on its non-interactive backend, so it works on
a head node without a display: one panel per metric name, x the step, one colour per trial, and a
legend naming each trial by its hex id and the params that differ between the trials drawn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from hypero import sweeps
from hypero.dashboard import api
from hypero.errors import ConfigError, NotFound
from hypero.schema import experiment, metric
from hypero.store import Store

FORMATS = (".png", ".svg", ".pdf")
MAX_PANELS = 12
COLORS = ["#2457c5", "#e8590c", "#22a06b", "#c2255c", "#7048e8", "#0c8599", "#a58a3a",
          "#5c940d", "#d6336c", "#495057"]


@dataclass
class Drawn:
    """What :func:`plot` drew: trials (hex ids), metric names, and trials without a curve."""

    hex_ids: list[int]
    names: list[str]
    skipped: list[int]


def choose(store: Store, battery_id: int, hex_ids: Sequence[int] | None, top: int) -> list[int]:
    """The trials to draw: ``hex_ids`` (checked to be the battery's), else the ``top`` best
    completed trials by the battery's sweep metric, else its ``top`` newest trials with curves."""
    if hex_ids:
        ids = list(dict.fromkeys(hex_ids))
        q = sa.select(experiment.c.id).where(experiment.c.id.in_(ids),
                                             experiment.c.battery_id == battery_id)
        with store.db.read() as c:
            found = set(c.execute(q).scalars())
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFound(f"--hex: trial {missing[0]} is not in battery "
                           f"{store.battery_name(battery_id)!r}")
        return ids
    goal = sweeps.latest_metric(store, battery_id)
    if goal is not None:
        page = api.trial_page(store, battery_id, state=["completed"], sort=f"result:{goal[0]}",
                              desc=goal[1] == "maximize", limit=min(top, api.MAX_LIMIT))
        if page["rows"]:
            return [r["id"] for r in page["rows"]]
    q = (
        sa.select(experiment.c.id)
        .where(experiment.c.battery_id == battery_id,
               sa.exists().where(metric.c.hex_id == experiment.c.id))
        .order_by(experiment.c.id.desc())
        .limit(top)
    )
    with store.db.read() as c:
        return [int(i) for i in c.execute(q).scalars()]


def _short(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.3g}"
    return str(v)


def labels(params: dict[int, dict[str, Any]], ids: Sequence[int], width: int = 70) -> list[str]:
    """``hex 12: lr=0.001, depth=3`` for each trial: the params whose values differ."""
    keys = sorted({k for i in ids for k in params.get(i, {})})
    differ = [k for k in keys if len({repr(params.get(i, {}).get(k, "∅")) for i in ids}) > 1]
    out = []
    for i in ids:
        doc = params.get(i, {})
        text = ", ".join(f"{k}={_short(doc[k])}" for k in differ if k in doc)
        label = f"hex {i}" + (f": {text}" if text else "")
        out.append(label if len(label) <= width else label[:width - 1] + "…")
    return out


def plot(
    store: Store, battery_id: int, path: Path, *, hex_ids: Sequence[int] | None = None,
    metric_name: str | None = None, top: int = 5,
) -> Drawn:
    """Draw the curves into ``path`` (.png, .svg or .pdf).

    Raises :class:`ConfigError` for another file type or without matplotlib, and
    :class:`NotFound` when none of the trials streamed a curve (of ``metric_name``).
    """
    if path.suffix.lower() not in FORMATS:
        raise ConfigError(f"--output: {path} must end in .png, .svg or .pdf")
    try:
        import matplotlib
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError as e:
        raise ConfigError("hypero curves needs matplotlib: pip install 'hypero[plot]'") from e
    name = store.battery_name(battery_id)
    ids = choose(store, battery_id, hex_ids, top)
    data = store.metrics(ids, [metric_name] if metric_name else None) if ids else {}
    drawn = [i for i in ids if data.get(i)]
    if not drawn:
        what = f"curve {metric_name!r}" if metric_name else "curve (hex.log)"
        raise NotFound(f"no streamed {what} in the trials of battery {name!r} "
                       f"{'chosen' if hex_ids else 'ranked best'}: {ids or 'none'}")
    names = sorted({n for i in drawn for n in data[i]})[:MAX_PANELS]
    legend = labels(store.docs("param", drawn), drawn)
    cols = 1 if len(names) == 1 else 2
    rows = math.ceil(len(names) / cols)
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # SVG text stays text
        fig = Figure(figsize=(6.4 * cols, 3.6 * rows + 0.4 + 0.22 * len(drawn)),
                     layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False).ravel()
        for ax, mname in zip(axes, names, strict=False):
            for k, (hid, label) in enumerate(zip(drawn, legend, strict=True)):
                points = data[hid].get(mname)
                if points:
                    steps, values = zip(*points, strict=True)
                    ax.plot(steps, values, color=COLORS[k % len(COLORS)], label=label,
                            marker="." if len(points) < 30 else None, linewidth=1.4)
            if all(float(s).is_integer() for i in drawn for s, _ in data[i].get(mname, ())):
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title(mname)
            ax.set_xlabel("step")
            ax.set_ylabel(mname)
            ax.grid(alpha=0.3)
        for ax in axes[len(names):]:
            ax.set_visible(False)
        handles, texts = [], []
        for ax in axes[:len(names)]:  # one entry per trial, whichever panel has it
            for hnd, txt in zip(*ax.get_legend_handles_labels(), strict=True):
                if txt not in texts:
                    handles.append(hnd)
                    texts.append(txt)
        fig.suptitle(name)
        fig.legend(handles, texts, loc="outside lower center", ncols=1, fontsize="small",
                   frameon=False)
        fig.savefig(path, dpi=110)
    return Drawn(drawn, names, [i for i in ids if i not in drawn])
