"""export_table and to_dataframe, exactly as DESIGN §3 describes them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest

import hypero

nan, inf = math.nan, math.inf

#: v1's five trials and v2's two: (params, results, meta) of each, by letter.
V1: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    "A": ({"lr": 0.1, "depth": 3}, {"valid": 0.8, "test": 0.7, "lr": 0.05},
          {"name": "a", "valid": "m-b", "host": "h1"}),
    "B": ({"lr": 0.01, "depth": 5}, {"valid": nan, "test": 0.75}, {"name": "b"}),
    "C": ({"lr": 0.001}, {"test": 0.6}, {"name": "c", "x": "1"}),
    "D": ({"lr": 0.3, "depth": 2}, {"valid": 0.6, "test": inf}, {"name": "d", "valid": "m-a"}),
    "E": ({"lr": 0.05, "depth": 4}, {"valid": 0.9, "test": -inf}, {"name": "e"}),
}
V2: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    "F": ({"lr": 0.2, "depth": 1, "bs": 32}, {"valid": 0.95}, {"name": "f"}),
    "G": ({"lr": 0.3}, {"valid": 0.85}, {}),
}


@dataclass
class Exported:
    bat: hypero.Battery
    ids: dict[str, int]  # letter -> hex id
    v1: int
    v2: int

    def letters(self, rows: list[list[Any]]) -> list[str]:
        by_id = {i: k for k, i in self.ids.items()}
        return [by_id[r[0]] for r in rows]


@pytest.fixture
def ex(conn: hypero.Connection) -> Exported:
    bat = conn.battery("export", "v1")
    ids = {}
    for version, trials in (("v1", V1), ("v2", V2)):
        bat.set_version(version)
        for letter, (params, results, meta) in trials.items():
            with bat.experiment() as h:
                for k, v in params.items():
                    h.hyper_param(k, v)
                h.set_result(results)
                if meta:
                    h.set_meta(meta)
            ids[letter] = h.id
    conn.battery("other battery", "v1").experiment().set_result({"valid": 1.0})
    return Exported(bat, ids, bat.version_id_of("v1"), bat.version_id_of("v2"))


def _nan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def same(a: Any, b: Any, *, frame: bool = False) -> bool:
    """Cell equality: NaN equals NaN, and is not None (but in a DataFrame, None may become NaN)."""
    if frame and (a is None or b is None):
        return a is b or _nan(a) or _nan(b)
    if a is None or b is None or _nan(a) or _nan(b):
        return (a is None and b is None) or (_nan(a) and _nan(b))
    return bool(a == b) and isinstance(a, str) == isinstance(b, str)


def as_dicts(rows: list[list[Any]], columns: list[str]) -> list[dict[str, Any]]:
    assert all(len(r) == len(columns) for r in rows)
    return [dict(zip(columns, r, strict=True)) for r in rows]


def assert_rows(got: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g.keys() == e.keys()
        bad = {k: (g[k], e[k]) for k in g if not same(g[k], e[k])}
        assert not bad, (g["hex_id"], bad)


def expected_v1(ex: Exported) -> list[dict[str, Any]]:
    out = []
    for letter, (p, r, m) in V1.items():
        out.append({
            "hex_id": ex.ids[letter], "depth": p.get("depth"), "lr": p["lr"],
            "result:lr": r.get("lr"), "test": r.get("test"), "valid": r.get("valid"),
            "host": m.get("host"), "meta:valid": m.get("valid"), "name": m.get("name"),
            "x": m.get("x"),
        })
    return out


# -- columns and rows ------------------------------------------------------------------------------


def test_columns_group_params_results_metas_and_qualify_repeated_keys(ex: Exported) -> None:
    rows, columns = ex.bat.export_table(version="v1")
    assert columns[0] == "hex_id"
    assert set(columns[1:3]) == {"lr", "depth"}
    assert set(columns[3:6]) == {"result:lr", "test", "valid"}
    assert set(columns[6:]) == {"host", "meta:valid", "name", "x"}
    assert len(columns) == 10
    assert_rows(as_dicts(rows, columns), expected_v1(ex))


def test_default_is_the_current_version(ex: Exported) -> None:
    assert ex.bat.version == "v2"
    rows, columns = ex.bat.export_table()
    assert columns[0] == "hex_id"
    assert set(columns[1:4]) == {"bs", "depth", "lr"}
    assert columns[4:] == ["valid", "name"]
    assert_rows(as_dicts(rows, columns), [
        {"hex_id": ex.ids["F"], "bs": 32, "depth": 1, "lr": 0.2, "valid": 0.95, "name": "f"},
        {"hex_id": ex.ids["G"], "bs": None, "depth": None, "lr": 0.3, "valid": 0.85,
         "name": None},
    ])


def test_version_by_description_or_id(ex: Exported) -> None:
    by_desc = ex.bat.export_table(version="v1")
    by_id = ex.bat.export_table(version=ex.v1)
    assert by_desc[1] == by_id[1]
    assert ex.letters(by_desc[0]) == ex.letters(by_id[0]) == ["A", "B", "C", "D", "E"]
    assert ex.letters(ex.bat.export_table(version=ex.v2)[0]) == ["F", "G"]
    with pytest.raises(hypero.NotFound):
        ex.bat.export_table(version="v9")


def test_min_version_includes_later_versions(ex: Exported) -> None:
    rows, columns = ex.bat.export_table(version="v1", min_version=True)
    assert ex.letters(rows) == list("ABCDEFG")
    assert set(columns) == {"hex_id", "bs", "depth", "lr", "result:lr", "test", "valid",
                            "host", "meta:valid", "name", "x"}
    assert ex.letters(ex.bat.export_table(min_version=True)[0]) == ["F", "G"]
    assert ex.letters(ex.bat.export_table(version="v2", min_version=True)[0]) == ["F", "G"]


# -- choosing columns ------------------------------------------------------------------------------


def test_lists_and_comma_strings_choose_columns_in_the_order_given(ex: Exported) -> None:
    rows, columns = ex.bat.export_table(version="v1", params=["lr"], results="test, valid",
                                        metas=None)
    assert columns == ["hex_id", "lr", "test", "valid"]
    assert rows[0] == [ex.ids["A"], 0.1, 0.7, 0.8]
    _, columns = ex.bat.export_table(version="v1", params="depth,lr", results=None, metas="name")
    assert columns == ["hex_id", "depth", "lr", "name"]


def test_none_leaves_a_document_out(ex: Exported) -> None:
    rows, columns = ex.bat.export_table(version="v1", params=None, results=None, metas=None)
    assert columns == ["hex_id"]
    assert rows == [[ex.ids[k]] for k in "ABCDE"]
    _, columns = ex.bat.export_table(version="v1", params=None, results=["lr"], metas=None)
    assert columns == ["hex_id", "lr"]  # no param column named lr: the result keeps the name


def test_a_chosen_key_that_no_trial_has_is_an_empty_column(ex: Exported) -> None:
    rows, columns = ex.bat.export_table(version="v1", params=["lr", "nope"], results=None,
                                        metas=None)
    assert columns == ["hex_id", "lr", "nope"]
    assert [r[2] for r in rows] == [None] * 5


def test_star_takes_every_key(ex: Exported) -> None:
    _, star = ex.bat.export_table(version="v1", params="*", results="*", metas="*")
    _, default = ex.bat.export_table(version="v1")
    assert star == default


# -- ordering --------------------------------------------------------------------------------------


def last_two_missing(ex: Exported, rows: list[list[Any]], head: list[str]) -> None:
    letters = ex.letters(rows)
    assert letters[:3] == head
    assert sorted(letters[3:]) == ["B", "C"]  # B's valid is NaN, C has none: last either way


@pytest.mark.parametrize("order_by", ["valid", "result:valid"])
def test_order_by_with_missing_and_nan_last_in_both_directions(
    ex: Exported, order_by: str
) -> None:
    up, _ = ex.bat.export_table(version="v1", order_by=order_by)
    last_two_missing(ex, up, ["D", "A", "E"])
    down, _ = ex.bat.export_table(version="v1", order_by=order_by, ascending=False)
    last_two_missing(ex, down, ["E", "A", "D"])


def test_order_by_infinities_sort_as_numbers(ex: Exported) -> None:
    up, _ = ex.bat.export_table(version="v1", order_by="test")
    assert ex.letters(up) == ["E", "C", "A", "B", "D"]
    down, _ = ex.bat.export_table(version="v1", order_by="test", ascending=False)
    assert ex.letters(down) == ["D", "B", "A", "C", "E"]


def test_order_by_bare_name_is_the_first_column_of_that_name(ex: Exported) -> None:
    by_param, _ = ex.bat.export_table(version="v1", order_by="lr")
    assert ex.letters(by_param) == ["C", "B", "E", "A", "D"]
    assert ex.bat.export_table(version="v1", order_by="param:lr")[0] == by_param
    by_result, _ = ex.bat.export_table(version="v1", order_by="result:lr", ascending=False)
    assert ex.letters(by_result)[0] == "A"
    assert sorted(ex.letters(by_result)[1:]) == ["B", "C", "D", "E"]


def test_order_by_strings_and_hex_id(ex: Exported) -> None:
    by_meta, _ = ex.bat.export_table(version="v1", order_by="meta:valid")
    assert ex.letters(by_meta)[:2] == ["D", "A"]  # "m-a" < "m-b"
    by_name, _ = ex.bat.export_table(version="v1", order_by="name", ascending=False)
    assert ex.letters(by_name) == ["E", "D", "C", "B", "A"]
    down, _ = ex.bat.export_table(version="v1", order_by="hex_id", ascending=False)
    assert ex.letters(down) == ["E", "D", "C", "B", "A"]
    by_depth, _ = ex.bat.export_table(version="v1", order_by="depth", ascending=False)
    assert ex.letters(by_depth) == ["B", "E", "A", "D", "C"]


def test_order_by_an_unknown_column_names_it(ex: Exported) -> None:
    with pytest.raises((hypero.HyperoError, ValueError), match="no_such_column"):
        ex.bat.export_table(version="v1", order_by="no_such_column")


# -- pandas ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{"version": "v1"}, {"version": "v1", "min_version": True, "order_by": "valid",
                         "ascending": False}, {"params": ["lr"], "metas": None}],
)
def test_to_dataframe_has_the_same_content(ex: Exported, kwargs: dict[str, Any]) -> None:
    rows, columns = ex.bat.export_table(**kwargs)
    df = ex.bat.to_dataframe(**kwargs)
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == columns
    assert df.shape == (len(rows), len(columns))
    assert df["hex_id"].tolist() == [r[0] for r in rows]
    for i, row in enumerate(rows):
        got = df.iloc[i].tolist()
        assert all(same(g, e, frame=True) for g, e in zip(got, row, strict=True)), (got, row)


# -- CSV (streamed from PostgreSQL) ----------------------------------------------------------------

#: values whose CSV spelling a shortcut could get wrong: floats jsonb prints in another notation,
#: NaN and infinities (stored as strings), strings that look like them, nested documents, CSV
#: metacharacters, unicode
ODD: dict[str, Any] = {
    "tiny": 1.5e-05, "huge": 1.2345678901234567e20, "whole": 5.0, "int": 7, "neg": -0.25,
    "big_int": 10**20, "yes": True, "no": False, "none": None, "nan": nan, "inf": inf,
    "ninf": -inf, "s_nan": "NaN", "text": 'a, "quoted"\nline', "uni": "héllo ✓", "empty": "",
    "curve": [0.5, 0.25, 1e-07, 3, True, None], "plain_curve": [0.1, 0.30000000000000004, 2.0],
    "nested": {"a": [1, {"b": "NaN"}], "c": {"$str": "x"}}, "nan_curve": [nan, 1.0, inf],
    "lists": [[1, 2], [], [0.5]], "str_list": ["x", "y, z"], "escape": {"$str": "kept"},
}


def csv_of(ex: Exported, **kwargs: Any) -> str:
    import io

    out = io.StringIO(newline="")
    n = ex.bat.export_csv(out, **kwargs)
    assert n == len(ex.bat.export_table(**kwargs)[0])
    return out.getvalue()


def csv_via_table(ex: Exported, **kwargs: Any) -> str:
    import io

    from hypero.export import write

    out = io.StringIO(newline="")
    rows, columns = ex.bat.export_table(**kwargs)
    write(rows, columns, None, out=out)
    return out.getvalue()


@pytest.mark.parametrize("kwargs", [
    {}, {"version": "v1"}, {"version": "v1", "min_version": True},
    {"version": "v1", "order_by": "valid", "ascending": False},
    {"version": "v1", "order_by": "test"}, {"version": "v1", "order_by": "meta:valid"},
    {"version": "v1", "order_by": "hex_id", "ascending": False},
    {"version": "v1", "params": ["lr", "nope"], "results": "test, valid", "metas": None},
    {"version": "v1", "params": None, "results": None, "metas": None},
])
def test_export_csv_writes_what_write_writes_for_export_table(
    ex: Exported, kwargs: dict[str, Any]
) -> None:
    assert csv_of(ex, **kwargs) == csv_via_table(ex, **kwargs)


@pytest.mark.parametrize("order_by", ["hex_id", "curve", "tiny", "text", "nested", "yes"])
def test_export_csv_spells_odd_values_like_write(conn: hypero.Connection, order_by: str) -> None:
    bat = conn.battery("odd values", "v1")
    for i in range(3):
        with bat.experiment() as h:
            h.set_result({**ODD, "tiny": ODD["tiny"] * (i + 1), "yes": i != 1})
            h.set_param({"i": i, **({"odd": ODD["huge"]} if i else {})})
    ex = Exported(bat, {}, bat.version_id, bat.version_id)
    for ascending in (True, False):
        got = csv_of(ex, order_by=order_by, ascending=ascending)
        assert got == csv_via_table(ex, order_by=order_by, ascending=ascending)
    assert "1.5e-05" in got and "[0.1,0.30000000000000004,2.0]" in got


def test_export_csv_refuses_an_unknown_order_by_before_writing(ex: Exported) -> None:
    import io

    out = io.StringIO()
    with pytest.raises((hypero.HyperoError, ValueError), match="no_such_column"):
        ex.bat.export_csv(out, order_by="no_such_column")
    assert out.getvalue() == ""
