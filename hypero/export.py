"""The seed's export: every trial of a battery as one table, and writers for CSV/JSON/Parquet."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hypero import codec
from hypero.errors import ConfigError
from hypero.store import Store

KINDS = ("param", "result", "meta")
Names = str | Sequence[str] | None


def _wanted(names: Names) -> list[str] | None:
    """None for every key ("*"); else the listed keys (a comma-separated string or a list)."""
    if names == "*":
        return None
    if names is None:
        return []
    if isinstance(names, str):
        return [n.strip() for n in names.split(",") if n.strip()]
    return list(names)


def _keys(docs: dict[int, dict[str, Any]], wanted: list[str] | None) -> list[str]:
    if wanted is not None:
        return wanted
    # sorted: jsonb does not keep insertion order, and both backends must agree
    return sorted({k for doc in docs.values() for k in doc})


def columns_of(keys: dict[str, list[str]]) -> list[tuple[str, str, str]]:
    """``(column name, kind, key)``: a key seen in an earlier document gets ``kind:key``."""
    out, used = [], {"hex_id"}
    for kind in KINDS:
        for key in keys[kind]:
            name = key if key not in used else f"{kind}:{key}"
            used.add(key)
            out.append((name, kind, key))
    return out


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _sort_key(v: Any) -> tuple[int, Any]:
    if isinstance(v, bool):
        return (0, int(v))
    if isinstance(v, int | float):
        return (0, v)
    if isinstance(v, str):
        return (1, v)
    return (2, json.dumps(v, sort_keys=True, default=str))


def sort_rows(rows: list[list[Any]], col: int, ascending: bool) -> list[list[Any]]:
    """Rows ordered by column ``col``; missing and NaN values last in either direction."""
    present = [r for r in rows if not _missing(r[col])]
    absent = [r for r in rows if _missing(r[col])]
    present.sort(key=lambda r: _sort_key(r[col]), reverse=not ascending)
    return present + absent


def resolve_column(columns: list[tuple[str, str, str]], order_by: str) -> int:
    """Index (in the table, hex_id being 0) of a bare or ``kind:key`` qualified column name."""
    if order_by == "hex_id":
        return 0
    for i, (name, kind, key) in enumerate(columns, start=1):
        if order_by in (name, f"{kind}:{key}"):
            return i
    known = ", ".join(["hex_id", *(n for n, _, _ in columns)])
    raise ConfigError(f"order_by: no column {order_by!r} (columns: {known})")


def table(
    store: Store, hex_ids: list[int], params: Names, results: Names, metas: Names,
    order_by: str, ascending: bool,
) -> tuple[list[list[Any]], list[str]]:
    """``(rows, column names)`` for the experiments ``hex_ids``."""
    wanted = {"param": _wanted(params), "result": _wanted(results), "meta": _wanted(metas)}
    docs = {
        k: (store.docs(k, hex_ids) if wanted[k] != [] else {}) for k in KINDS
    }
    cols = columns_of({k: _keys(docs[k], wanted[k]) for k in KINDS})
    rows = [
        [hid, *(docs[kind].get(hid, {}).get(key) for _, kind, key in cols)] for hid in hex_ids
    ]
    rows = sort_rows(rows, resolve_column(cols, order_by), ascending)
    return rows, ["hex_id", *(n for n, _, _ in cols)]


def _cell(v: Any) -> Any:
    if isinstance(v, dict | list):
        return codec.dumps(v)
    return v


def write(rows: list[list[Any]], columns: list[str], path: Path | None, out: Any = None) -> None:
    """Write the table to ``path`` (.csv, .json or .parquet) or as CSV to ``out``."""
    suffix = path.suffix.lower() if path is not None else ".csv"
    if suffix == ".json":
        text = json.dumps([dict(zip(columns, r, strict=True)) for r in rows], allow_nan=True)
        Path(path).write_text(text + "\n")  # type: ignore[arg-type]
    elif suffix == ".parquet":
        _write_parquet(rows, columns, path)  # type: ignore[arg-type]
    elif suffix == ".csv":
        fh = open(path, "w", newline="") if path is not None else out
        try:
            w = csv.writer(fh)
            w.writerow(columns)
            w.writerows([_cell(v) for v in r] for r in rows)
        finally:
            if path is not None:
                fh.close()
    else:
        raise ConfigError(f"output: unknown file type {suffix!r} (use .csv, .json or .parquet)")


def _write_parquet(rows: list[list[Any]], columns: list[str], path: Path) -> None:
    try:
        import pandas as pd
    except ImportError as e:
        raise ConfigError("Parquet output needs: pip install 'hypero[parquet]'") from e
    cols = {c: [_cell(r[i]) for r in rows] for i, c in enumerate(columns)}
    try:
        pd.DataFrame(cols).to_parquet(path)
    except ImportError as e:
        raise ConfigError("Parquet output needs: pip install 'hypero[parquet]'") from e
