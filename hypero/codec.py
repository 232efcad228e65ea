"""JSON documents that round-trip exactly, NaN and infinities included.

PostgreSQL's jsonb rejects bare ``NaN``/``Infinity``, so special floats are stored as the strings
``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (which cast straight to ``float8`` in SQL:
``(doc->>'valid')::float``). A genuine string with one of those spellings, or a dict whose only
key is ``"$str"``, is wrapped as ``{"$str": ...}`` so that decoding is exact. The common case, a
document without such values, takes the C encoder and decoder only.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any

_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_MARKERS = ('"NaN"', '"Infinity"', '"-Infinity"', '"$str"')
_ESC = ESCAPE = "$str"  # ESCAPE: a document holding this key is not merged by the database
# a JSON string literal (skipped) or a number with a positive exponent, such as 1e+16
_BIG = re.compile(r'"(?:[^"\\]|\\.)*"|(-?\d+(?:\.\d+)?e\+\d+)')


def _positional(text: str) -> str:
    """Write ``1e+16`` as ``10000000000000000.0``.

    jsonb stores numbers as ``numeric`` and prints ``1e+16`` back as ``10000000000000000``, which
    reads as an int (and ``3.4e+38`` as an int that differs from the float). A fraction keeps it
    a float, of the same value, on both backends.
    """
    if "e+" not in text:
        return text
    return _BIG.sub(lambda m: m[0] if m[1] is None else format(Decimal(m[1]), "f") + ".0", text)


def _default(o: Any) -> Any:
    # numpy scalars and arrays, and anything else with .tolist()/.item()
    for attr in ("tolist", "item"):
        f = getattr(o, attr, None)
        if callable(f):
            return f()
    if isinstance(o, set | frozenset | tuple):
        return list(o)
    raise TypeError(f"value of type {type(o).__name__} is not JSON serialisable: {o!r}")


def _wrap(o: Any) -> Any:
    if isinstance(o, float):
        if math.isnan(o):
            return "NaN"
        if math.isinf(o):
            return "Infinity" if o > 0 else "-Infinity"
        return o
    if isinstance(o, str):
        return {_ESC: o} if o in _SPECIAL else o
    if isinstance(o, dict):
        d = {str(k): _wrap(v) for k, v in o.items()}
        return {_ESC: d} if list(d) == [_ESC] else d
    if isinstance(o, list | tuple):
        return [_wrap(v) for v in o]
    if isinstance(o, bool | int) or o is None:
        return o
    return _wrap(_default(o))


def dumps(obj: Any) -> str:
    """Encode ``obj`` as JSON text without bare NaN/Infinity (valid for jsonb)."""
    try:
        text = json.dumps(obj, allow_nan=False, default=_default, separators=(",", ":"))
    except ValueError:  # a NaN or infinity somewhere
        text = json.dumps(_wrap(obj), allow_nan=False, separators=(",", ":"))
    else:
        if any(m in text for m in _MARKERS):
            text = json.dumps(_wrap(obj), allow_nan=False, separators=(",", ":"))
    return _positional(text)


def _unwrap(o: Any) -> Any:
    if isinstance(o, str):
        return _SPECIAL.get(o, o)
    if isinstance(o, dict):
        if len(o) == 1 and _ESC in o:
            inner = o[_ESC]
            return inner if isinstance(inner, str) else {k: _unwrap(v) for k, v in inner.items()}
        return {k: _unwrap(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_unwrap(v) for v in o]
    return o


def loads(text: str | bytes) -> Any:
    """Decode text written by :func:`dumps` (plain JSON, bare NaN included, is read as well)."""
    if isinstance(text, bytes):
        text = text.decode()
    obj = json.loads(text)
    if any(m in text for m in _MARKERS):
        return _unwrap(obj)
    return obj


def encode(obj: Any) -> Any:
    """The jsonb-safe Python value of ``obj`` (what :func:`dumps` would write)."""
    return json.loads(dumps(obj))


def decode(obj: Any) -> Any:
    """Inverse of :func:`encode` for a value already parsed by a driver."""
    return _unwrap(obj)
