"""The seed's export: every trial of a battery as one table, and writers for CSV/JSON/Parquet.

:func:`table` builds the table in Python from the documents; :func:`write_csv` writes the same
table as CSV and, on PostgreSQL, has the database pick the columns out of the documents and
streams the rows (about 5x faster on 100,000 trials, with the same output).
"""

from __future__ import annotations

import csv
import json
import math
import queue
import re
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa

from hypero import codec
from hypero.errors import ConfigError
from hypero.schema import DOCS, experiment
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
        # strict JSON: NaN and infinities as "NaN"/"Infinity"/"-Infinity", as in the database
        text = codec.dumps([dict(zip(columns, r, strict=True)) for r in rows])
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


# -- CSV straight from PostgreSQL ---------------------------------------------------------------


def write_csv(
    store: Store, battery_id: int, version_ids: Sequence[int], params: Names, results: Names,
    metas: Names, order_by: str, ascending: bool, out: IO[str],
) -> int:
    """Write the table :func:`table` makes for these versions of the battery as CSV to ``out``
    (what :func:`write` would write); how many rows.

    On PostgreSQL the database takes each cell out of its document and streams the rows in id
    order (``COPY … TO STDOUT``); they are sorted in memory only for another ``order_by``.
    Elsewhere this is :func:`table` and :func:`write`.
    """
    if store.db.backend != "postgresql":
        rows, columns = table(store, store.experiment_ids(battery_id, version_ids), params,
                              results, metas, order_by, ascending)
        write(rows, columns, None, out=out)
        return len(rows)
    where = sa.and_(experiment.c.battery_id == battery_id,
                    experiment.c.version_id.in_(list(version_ids)))
    wanted = {"param": _wanted(params), "result": _wanted(results), "meta": _wanted(metas)}
    with store.db.read() as c:
        cols = columns_of(_keys_in_db(c, wanted, where))
        sort_col = resolve_column(cols, order_by)
        out.write(_line(["hex_id", *(_quote(name) for name, _, _ in cols)]))
        chunks = _copy_rows(c, _cells(cols, where))
        if sort_col == 0 and ascending:
            n = 0
            for rows in chunks:
                out.write("".join(_lines(rows)))
                n += len(rows)
            return n
        keyed = [[_sort_value(r, sort_col), line] for rows in chunks
                 for r, line in zip(rows, _lines(rows), strict=True)]
    keyed = sort_rows(keyed, 0, ascending)
    out.write("".join([line for _, line in keyed]))
    return len(keyed)


def _keys_in_db(c: sa.Connection, wanted: dict[str, list[str] | None],
                where: Any) -> dict[str, list[str]]:
    """The keys :func:`table` makes columns of, found by the database for ``"*"``."""
    keys: dict[str, list[str]] = {}
    for kind in KINDS:
        chosen = wanted[kind]
        if chosen is None:
            doc = DOCS[kind]
            q = (sa.select(sa.func.jsonb_object_keys(doc.c.doc))
                 .join(experiment, experiment.c.id == doc.c.hex_id).where(where).distinct())
            chosen = sorted(c.execute(q).scalars())
        keys[kind] = chosen
    return keys


def _cells(cols: list[tuple[str, str, str]], where: Any) -> sa.Select[Any]:
    """Each experiment's id and its cells as jsonb text (NULL where a document lacks the key)."""
    joined: Any = experiment
    for kind in dict.fromkeys(kind for _, kind, _ in cols):
        joined = joined.outerjoin(DOCS[kind], DOCS[kind].c.hex_id == experiment.c.id)
    cells = [sa.cast(DOCS[kind].c.doc[key], sa.Text) for _, kind, key in cols]
    return (sa.select(experiment.c.id, *cells).select_from(joined).where(where)
            .order_by(experiment.c.id))


def _copy_rows(c: sa.Connection, q: sa.Select[Any]) -> Iterator[list[list[str]]]:
    """The rows of ``q`` through ``COPY (q) TO STDOUT``, in chunks; each row its fields as
    COPY's text format spells them (``\\N`` for NULL, backslashes doubled).

    A thread reads the stream while the caller works on the previous chunk, so the database
    and this process run at once rather than by turns.
    """
    from psycopg import sql

    compiled = q.compile(dialect=c.dialect, compile_kwargs={"render_postcompile": True})
    copy = sql.SQL("COPY ({}) TO STDOUT").format(sql.SQL(str(compiled)))
    raw: Any = c.connection.driver_connection  # psycopg's, inside this read transaction
    chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=16)

    def read() -> None:
        try:
            with raw.cursor() as cur, cur.copy(copy, compiled.params) as cp:
                parts: list[bytes] = []
                size = 0
                for data in cp:
                    parts.append(bytes(data))
                    size += len(data)
                    if size >= 1 << 20:
                        chunks.put(b"".join(parts))
                        parts, size = [], 0
                chunks.put(b"".join(parts))
        except BaseException as e:
            chunks.put(e)
        finally:
            chunks.put(None)

    reader = threading.Thread(target=read, name="hypero-export", daemon=True)
    reader.start()
    try:
        item: bytes | BaseException | None = b""
        while (item := chunks.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield _split(item)
    finally:
        while item is not None:  # the caller stopped early: let the reader finish the stream
            item = chunks.get()
        reader.join()


def _split(data: bytes) -> list[list[str]]:
    # each CopyData message holds whole rows; tabs and newlines inside jsonb text are escaped
    return [line.split("\t") for line in data.decode().split("\n")[:-1]]


def _sort_value(row: list[str], col: int) -> Any:
    if col == 0:
        return int(row[0])
    cell = row[col]
    return None if cell == "\\N" else codec.loads(cell.replace("\\\\", "\\"))


def _line(fields: Sequence[str]) -> str:
    return ",".join(fields) + "\r\n"


def _lines(rows: list[list[str]]) -> list[str]:
    """CSV lines of COPY rows, converted column by column (most columns hold one kind)."""
    if not rows:
        return []
    columns = [list(col) for col in zip(*rows, strict=True)]
    return [_line(fields) for fields in zip(*map(_column, columns), strict=True)]


_DECIMALS = re.compile(r"-?\d+\.\d+(?:\t-?\d+\.\d+)*")
_INTEGERS = re.compile(r"-?\d+(?:\t-?\d+)*")


def _column(cells: list[str]) -> list[str]:
    """:func:`_csv_field` of each cell; whole columns of plain numbers or of lists of plain
    numbers are done at once."""
    first = cells[0][:1]
    if first in "-0123456789":
        joined = "\t".join(cells)
        if _INTEGERS.fullmatch(joined):
            return cells
        if _DECIMALS.fullmatch(joined):
            return list(map(repr, map(float, cells)))
    elif first == "[":
        joined = "\t".join(cells)
        if '"' not in joined:  # see _csv_field
            compact = [c.replace(", ", ",") if "0.0000" not in c else "" for c in cells]
            return [_csv_field(c) if not k else '"' + k + '"' if "," in k else k
                    for c, k in zip(cells, compact, strict=True)]
    elif first == '"':
        joined = "\t".join(cells)
        if "\\" not in joined and not any(s in joined for s in _SPECIAL_CELLS):
            texts = [c[1:-1] for c in cells]  # strings without escapes, so without quotes
            return ['"' + t + '"' if "," in t else t for t in texts]
    return list(map(_csv_field, cells))


_SPECIAL_CELLS = ('"NaN"', '"Infinity"', '"-Infinity"')


def _quote(text: str) -> str:
    """A CSV field as :mod:`csv` writes it (quoted when it holds a comma, quote or newline)."""
    if '"' in text:
        return '"' + text.replace('"', '""') + '"'
    if "," in text or "\n" in text or "\r" in text:
        return '"' + text + '"'
    return text


def _field(value: Any) -> str:
    """``value`` as :func:`write` puts it in a CSV field."""
    if value is None:
        return ""
    return _quote(str(_cell(value)))  # str: floats by repr, booleans True/False


def _csv_field(cell: str) -> str:
    """The CSV field :func:`write` would write for a cell that PostgreSQL printed as jsonb
    text in a COPY row (``\\N``: the document has no such key)."""
    if cell == "\\N":
        return ""
    if "\\" in cell:
        cell = cell.replace("\\\\", "\\")
        return _field(codec.loads(cell))  # JSON escapes: let the decoder read them
    first = cell[0]
    if first == '"':
        return _field(codec.decode(cell[1:-1]))  # NaN and ±inf are stored as strings
    if first == "[" and '"' not in cell and "0.0000" not in cell:
        # numbers, booleans, nulls and lists of them: jsonb prints the digits hypero wrote
        # (the shortest repr) with ", " between items; tiny numbers it spells 0.0000…, not 1e-05
        compact = cell.replace(", ", ",")
        return '"' + compact + '"' if "," in compact else compact
    if first in "[{":
        return _field(codec.loads(cell))
    if first in "tfn":
        return _LITERALS[cell]
    return repr(float(cell)) if "." in cell else cell  # jsonb never prints an exponent


_LITERALS = {"true": "True", "false": "False", "null": ""}
