"""JSON documents round-trip exactly on both backends: NaN, ±inf, nested lists, look-alikes."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import sqlalchemy as sa

import hypero
from hypero import codec
from tests.conftest import Target

nan, inf = math.nan, math.inf

#: Everything a diverged run, a learning curve or a hostile user can put in a document.
DOC: dict[str, Any] = {
    "nan": nan,
    "inf": inf,
    "-inf": -inf,
    "curve": [0.5, 0.25, nan, inf, -inf],
    "nested": [[1, 2.5, [nan, [inf, []]]], [], [[-inf]], {"a": [nan]}],
    "str NaN": "NaN",
    "str Infinity": "Infinity",
    "str -Infinity": "-Infinity",
    "strs": ["NaN", "Infinity", "-Infinity", "nan", "inf"],
    "only $str": {"$str": "x"},
    "$str of NaN string": {"$str": "NaN"},
    "$str of NaN": {"$str": nan},
    "$str nested": {"$str": {"$str": "Infinity"}},
    "$str and more": {"$str": 1, "b": "NaN"},
    "unicode": "héllo wörld — 日本語 — Ελληνικά — 🙂🚀",
    "quote \" and \\ backslash": "'; DROP TABLE experiment; --",
    "🙂": "emoji key",
    "bool": True,
    "none": None,
    "int": 3,
    "big int": 2**64,
    "negative": -17,
    "float": 0.1,
    "one": 1.0,
    "tiny": 5e-324,
    "big float": 1e16,
    "huge float": 3.4e38,
    "max float": 1.7976931348623157e308,
    "small": 1e-7,
}


def same(a: Any, b: Any) -> bool:
    """Exact equality with NaN equal to NaN and types compared (1.0 is not 1, "NaN" not NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def differences(a: dict[str, Any], b: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    keys = a.keys() | b.keys()
    return {k: (a.get(k), b.get(k)) for k in keys if not same(a.get(k), b.get(k))}


# -- the codec itself ------------------------------------------------------------------------------


def test_same_helper_is_strict() -> None:
    assert same([nan, {"a": 1.0}], [nan, {"a": 1.0}])
    assert not same(1.0, 1)
    assert not same("NaN", nan)
    assert not same({"$str": "x"}, "x")


def test_dumps_is_strict_json_and_round_trips() -> None:
    text = codec.dumps(DOC)

    def no_bare(token: str) -> Any:
        raise AssertionError(f"bare {token} in {text[:80]}")

    json.loads(text, parse_constant=no_bare)  # valid for jsonb: no bare NaN/Infinity
    assert differences(DOC, codec.loads(text)) == {}
    assert differences(DOC, codec.decode(codec.encode(DOC))) == {}


@pytest.mark.parametrize("value", [nan, inf, -inf, "NaN", "Infinity", {"$str": "x"}, [nan], 1e300])
def test_top_level_values_round_trip(value: Any) -> None:
    assert same(codec.loads(codec.dumps(value)), value)


def test_plain_documents_stay_plain_json() -> None:
    doc = {"lr": 0.001, "name": "adam", "curve": [1, 2.5]}
    assert json.loads(codec.dumps(doc)) == doc


def test_exponent_inside_a_string_is_left_alone() -> None:
    doc = {"s": "1e+16", "x": 1e16, 'k "1e+20"': [2e+20]}
    assert same(codec.loads(codec.dumps(doc)), doc)


def test_loads_reads_bare_nan_written_by_others() -> None:
    assert math.isnan(codec.loads('{"x": NaN}')["x"])


# -- through the database, on both backends -------------------------------------------------------


def test_documents_round_trip_in_params_meta_results(
    conn: hypero.Connection, target: Target
) -> None:
    h = conn.battery("codec", "v1").experiment()
    h.set_param(DOC)
    h.set_meta(DOC)
    h.set_result(DOC)
    h.close()
    with target.connect() as other:  # a second connection reads what the database holds
        back = other.experiment(h.id)
        assert differences(DOC, back.get_param()) == {}
        assert differences(DOC, back.get_meta()) == {}
        assert differences(DOC, back.get_result()) == {}
        bat = other.battery("codec")
        assert differences(DOC, bat.get_result([h.id])[h.id]) == {}


def test_sampled_and_hyper_param_values_round_trip(
    conn: hypero.Connection, target: Target
) -> None:
    h = conn.battery("codec", "v1").experiment()
    for key, value in DOC.items():
        assert same(h.hyper_param(key, value), value)
    h.close()
    with target.connect() as other:
        assert differences(DOC, other.experiment(h.id).get_param()) == {}


def test_learning_curves_with_nan_and_inf_round_trip(conn: hypero.Connection) -> None:
    h = conn.battery("codec", "v1").experiment()
    train = [0.1, 0.2, nan, inf]
    valid = [[1, 2], [nan], [-inf, "NaN"]]
    h.result_learning_curve(train, valid, [])
    h.result_maxima(nan, inf, -inf)
    h.close()
    got = conn.experiment(h.id).get_result()
    assert same(got, {
        "train_curve": train, "valid_curve": valid, "test_curve": [],
        "train": nan, "valid": inf, "test": -inf,
    })


def test_metric_points_keep_nan_and_infinities(conn: hypero.Connection, target: Target) -> None:
    h = conn.battery("codec", "v1").experiment()
    values = [0.5, nan, inf, -inf, 1e300, -0.25]
    for step, v in enumerate(values):
        h.log(step=step, loss=v)
    h.close()
    with target.connect() as other:
        got = other.experiment(h.id).get_metrics()
    assert list(got) == ["loss"]
    assert [s for s, _ in got["loss"]] == list(range(len(values)))
    assert same([v for _, v in got["loss"]], values)


def test_postgresql_special_floats_cast_in_sql(postgresql_target: Target) -> None:
    """What the codec docstring promises SQL users: ``(doc->>'k')::float`` works."""
    with postgresql_target.connect() as conn:
        h = conn.battery("codec", "v1").experiment()
        h.set_result({"nan": nan, "inf": inf, "-inf": -inf, "big": 3.4e38, "s": "NaN"})
        with conn.db.read() as c:
            row = c.execute(
                sa.text(
                    "SELECT (doc->>'nan')::float, (doc->>'inf')::float, (doc->>'-inf')::float, "
                    "(doc->>'big')::float, jsonb_typeof(doc->'big'), jsonb_typeof(doc->'s') "
                    "FROM result WHERE hex_id = :h"
                ),
                {"h": h.id},
            ).one()
    assert math.isnan(row[0])
    assert row[1:4] == (inf, -inf, 3.4e38)
    assert row[4] == "number"
    assert row[5] == "object"  # the string "NaN" is wrapped so that it is not read as a float
