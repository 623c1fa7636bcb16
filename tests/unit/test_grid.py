"""The result grid's kernel side: what a %sql result's display carries, and what the grid's comm answers (jupysql's
ResultSet on SQLite and pandas frames, in a real IPython shell; the comm's answers without a kernel)."""

from __future__ import annotations

import datetime as dt
import decimal
import gc
import io
import math

import pandas as pd
import pyarrow.parquet as pq
import pytest

from agp.kernels import grid, grid_data

ROWS = 5000


@pytest.fixture
def ip(tmp_path):
    from IPython.core.interactiveshell import InteractiveShell

    InteractiveShell.clear_instance()  # a shell of another test may carry the kernel's own %sql
    shell = InteractiveShell.instance()
    grid._STATE.clear()
    grid.install(shell)
    shell.run_line_magic("load_ext", "sql")
    shell.run_line_magic("sql", f"sqlite:///{tmp_path / 'results.db'}")
    shell.run_line_magic("config", "SqlMagic.autopandas = False")
    shell.run_line_magic("config", "SqlMagic.feedback = 0")
    shell.run_cell("%sql CREATE TABLE t (a INTEGER, b TEXT, c REAL)")
    shell.run_cell(
        "%sql WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r WHERE x < 5000) "
        "INSERT INTO t SELECT x, 'n' || (x % 7), x * 0.5 FROM r"
    )
    yield shell
    grid._STATE.clear()
    InteractiveShell.clear_instance()


def shown(ip, value) -> dict:
    data, _ = ip.display_formatter.format(value)
    return data


def test_a_resultset_shows_in_the_grid_and_keeps_jupysqls_table(ip):
    rs = ip.run_line_magic("sql", "SELECT * FROM t")
    data = shown(ip, rs)
    assert set(data) == {grid.MIME, "text/html", "text/plain"}
    assert "<table>" in data["text/html"] and "n1" in data["text/plain"]
    payload = data[grid.MIME]
    assert [c["name"] for c in payload["columns"]] == ["a", "b", "c"]
    # SQLite gives no types: guessed from the rows (Trino's come from its description, see the integration test).
    assert [(c["type"], c["kind"]) for c in payload["columns"]] == [
        ("bigint", "number"),
        ("varchar", "text"),
        ("double", "number"),
    ]
    assert payload["embedded"] == len(payload["rows"]) == 200
    assert payload["rows"][:2] == [[1, "n1", 0.5], [2, "n2", 1.0]]
    assert payload["total"] is None  # more rows than embedded, not read yet: the grid reads on as it scrolls
    assert len(rs._results) == 201  # what the grid read stays read in the ResultSet
    assert len(rs) == ROWS and rs[4999] == (5000, "n2", 2500.0)  # and the ResultSet is whole


def test_a_small_result_is_embedded_whole_with_its_count(ip):
    payload = shown(ip, ip.run_line_magic("sql", "SELECT a, a AS a FROM t WHERE a <= 3"))[grid.MIME]
    assert payload["total"] == payload["embedded"] == 3
    assert [c["name"] for c in payload["columns"]] == ["a", "a"]  # repeated names stay as the result has them


def test_embedded_rows_follow_the_setting(ip):
    ip.run_line_magic("config", "ResultGrid.embed_rows = 7")
    payload = shown(ip, ip.run_line_magic("sql", "SELECT * FROM t"))[grid.MIME]
    assert payload["embedded"] == 7 and payload["rows"][-1][0] == 7


def test_the_grid_can_be_turned_off(ip):
    ip.run_line_magic("config", "ResultGrid.enabled = False")
    assert grid.MIME not in shown(ip, ip.run_line_magic("sql", "SELECT * FROM t LIMIT 3"))


def test_only_frames_sql_returned_get_the_grid(ip):
    frame = pd.DataFrame({"x": [1, 2, 3], "when": pd.to_datetime(["2024-01-01", "2024-01-02", None])})
    assert grid.MIME not in shown(ip, frame)  # plain pandas: pandas' display
    assert grid.mark(frame) is frame
    data = shown(ip, frame)
    assert set(data) >= {grid.MIME, "text/html", "text/plain"}
    assert [(c["name"], c["type"]) for c in data[grid.MIME]["columns"]] == [("x", "bigint"), ("when", "timestamp(6)")]
    assert data[grid.MIME]["rows"] == [[1, "2024-01-01 00:00:00"], [2, "2024-01-02 00:00:00"], [3, None]]
    assert grid.MIME not in shown(ip, frame.head(2))  # a frame derived from it is plain pandas again
    frame.attrs["trino_types"] = ["integer", "timestamp(3) with time zone"]
    other = pd.DataFrame(frame)
    other.attrs = dict(frame.attrs)
    grid.mark(other)
    assert [c["type"] for c in shown(ip, other)[grid.MIME]["columns"]] == ["integer", "timestamp(3) with time zone"]


def request(ip, result: str, **kwargs):
    return grid.answer(grid._STATE["registry"], {"result": result, **kwargs})


def test_the_comm_serves_later_rows_sorted_filtered_and_downloads(ip):
    rs = ip.run_line_magic("sql", "SELECT * FROM t")
    rid = shown(ip, rs)[grid.MIME]["result"]
    reply, _ = request(ip, rid, op="rows", offset=4990, limit=20)
    assert [r[0] for r in reply["rows"]] == list(range(4991, 5001)) and reply["total"] == ROWS
    sort = [{"colId": "c1", "sort": "desc"}, {"colId": "c0", "sort": "desc"}]
    filters = {
        "c2": {"filterType": "number", "type": "lessThan", "filter": 100},
        "c1": {"type": "contains", "filter": "N6"},
    }
    reply, _ = request(ip, rid, op="rows", offset=0, limit=3, sort=sort, filter=filters)
    assert reply == {"rows": [[195, "n6", 97.5], [188, "n6", 94.0], [181, "n6", 90.5]], "total": 28, "capped": False}
    reply, buffers = request(ip, rid, op="download", format="csv", sort=sort, filter=filters)
    lines = buffers[0].decode().splitlines()
    assert lines[:2] == ["a,b,c", "195,n6,97.5"] and len(lines) == 29 and reply["rows"] == 28
    reply, buffers = request(ip, rid, op="download", format="parquet")
    table = pq.read_table(io.BytesIO(buffers[0]))
    assert table.num_rows == ROWS and table.column_names == ["a", "b", "c"]
    assert table.column("a").to_pylist()[-1] == 5000
    reply, _ = request(ip, rid, op="chart", chart={"kind": "bar", "x": "c1", "y": "c2", "agg": "count"})
    assert sorted((v["x"], v["y"]) for v in reply["values"])[:2] == [("n0", 714), ("n1", 715)]


def test_the_comm_says_what_it_cannot_do(ip):
    rid = shown(ip, ip.run_line_magic("sql", "SELECT * FROM t LIMIT 5"))[grid.MIME]["result"]
    assert request(ip, rid, op="rows", sort=[{"colId": "c9", "sort": "asc"}])[0] == {
        "error": "There is no column 'c9' in this result."
    }
    assert request(ip, rid, op="download", format="xlsx")[0] == {"error": "Downloads are CSV or Parquet, not 'xlsx'."}
    assert request(ip, "nope-1", op="rows")[0] == {"error": "gone"}


def test_results_are_held_weakly_and_only_the_last_few(ip):
    ip.run_line_magic("config", "ResultGrid.keep = 2")
    registry = grid._STATE["registry"]
    frames, ids = [], []
    for i in range(3):
        frames.append(grid.mark(pd.DataFrame({"x": [i]})))
        ids.append(shown(ip, frames[-1])[grid.MIME]["result"])
    assert grid.MIME not in shown(ip, frames[0])  # let go: pandas' display again
    assert registry.get(ids[0]) is None and registry.get(ids[2]) is not None  # the oldest is let go
    del frames[2]
    gc.collect()
    assert registry.get(ids[2]) is None and request(ip, ids[2], op="rows")[0] == {"error": "gone"}


# -- grid_data, pure ---------------------------------------------------------------------------------------------


def test_values_become_what_json_and_javascript_show_as_they_are():
    j = grid_data.json_value
    assert [j(None), j(float("nan")), j(pd.NaT), j(math.inf), j(-math.inf)] == [
        None,
        None,
        None,
        "Infinity",
        "-Infinity",
    ]
    assert j(2**53) == 2**53 and j(2**53 + 1) == "9007199254740993"  # past a double's integers: text
    assert j(decimal.Decimal("12345678901234567890.12")) == "12345678901234567890.12"
    assert j(dt.datetime(2024, 5, 1, 12, 30, 1, 500)) == "2024-05-01 12:30:01.000500"
    assert j(dt.date(2024, 5, 1)) == "2024-05-01" and j(b"\x01\xff") == "0x01ff"
    assert j([1, {"a": None}]) == '[1, {"a": null}]'
    import numpy as np

    assert j(np.int64(3)) == 3 and j(np.bool_(True)) is True and j(np.float32(0.5)) == 0.5


def test_kinds_of_trino_types():
    kinds = [grid_data.kind_of(t) for t in ("bigint", "decimal(10,2)", "timestamp(3) with time zone", "date")]
    assert kinds == ["number", "number", "date", "date"]
    assert [grid_data.kind_of(t) for t in ("boolean", "varchar(5)", "array(integer)", "row(a int)")] == [
        "boolean",
        "text",
        "text",
        "text",
    ]


FRAME = pd.DataFrame(
    {
        "name": ["b", None, "A", "c", ""],
        "n": [3, 1, None, 2, 5],
        "day": [dt.date(2024, 1, 3), dt.date(2024, 1, 1), None, dt.date(2024, 1, 2), dt.date(2024, 2, 1)],
    }
)


def test_sorting_puts_missing_values_last_either_way():
    assert list(grid_data.view(FRAME, [{"colId": "c1", "sort": "asc"}])) == [1, 3, 0, 4, 2]
    assert list(grid_data.view(FRAME, [{"colId": "c1", "sort": "desc"}])) == [4, 0, 3, 1, 2]
    assert list(grid_data.view(FRAME, [{"colId": "c0", "sort": "asc"}])) == [4, 2, 0, 3, 1]


def test_filters_as_ag_grid_sends_them():
    def rows(filters):
        return list(grid_data.view(FRAME, None, filters))

    assert rows({"c0": {"filterType": "text", "type": "contains", "filter": "a"}}) == [2]  # case does not matter
    assert rows({"c0": {"filterType": "text", "type": "notEqual", "filter": "b"}}) == [1, 2, 3, 4]
    assert rows({"c0": {"filterType": "text", "type": "blank"}}) == [1, 4]
    assert rows({"c1": {"filterType": "number", "type": "inRange", "filter": 2, "filterTo": 3}}) == [0, 3]
    either = {"filterType": "number", "operator": "OR", "conditions": [
        {"filterType": "number", "type": "lessThan", "filter": 2},
        {"filterType": "number", "type": "greaterThan", "filter": 4},
    ]}  # fmt: skip
    assert rows({"c1": either}) == [1, 4]
    assert rows({"c2": {"filterType": "date", "type": "greaterThan", "dateFrom": "2024-01-02 00:00:00"}}) == [0, 4]
    with pytest.raises(ValueError, match="'abc' is not a number"):
        rows({"c1": {"filterType": "number", "type": "equals", "filter": "abc"}})
    with pytest.raises(ValueError, match="'regex' is not known"):
        rows({"c0": {"filterType": "text", "type": "regex", "filter": "."}})


def test_charts_aggregate_bin_and_sample_the_whole_result():
    frame = pd.DataFrame({"k": [f"g{i % 300}" for i in range(3000)], "v": range(3000)})
    bars = grid_data.chart_data(frame, {"kind": "bar", "x": "c0", "y": "c1", "agg": "sum"})
    assert len(bars["values"]) == grid_data.CHART_GROUPS and bars["note"] == "The 200 largest of 300 groups."
    assert bars["values"][0] == {"x": "g299", "y": sum(range(299, 3000, 300))}
    hist = grid_data.chart_data(frame, {"kind": "histogram", "x": "c1", "bins": 3})["values"]
    assert [h["count"] for h in hist] == [1000, 1000, 1000] and hist[0]["bin0"] == 0 and hist[-1]["bin1"] == 2999
    big = pd.DataFrame({"x": range(20_000, 0, -1), "y": range(20_000)})
    line = grid_data.chart_data(big, {"kind": "line", "x": "c0", "y": "c1"})
    assert len(line["values"]) == grid_data.CHART_POINTS and line["values"][0] == {"x": 1, "y": 19_999}
    with pytest.raises(ValueError, match="needs a column for y"):
        grid_data.chart_data(big, {"kind": "scatter", "x": "c0"})


def test_parquet_keeps_repeated_names_apart_and_writes_mixed_columns_as_text():
    frame = pd.DataFrame([[1, {"a": 1}], [2, "x"]], columns=["a", "a"])
    table = pq.read_table(io.BytesIO(grid_data.to_parquet(frame)))
    assert table.column_names == ["a", "a_1"] and table.column("a_1").to_pylist() == ['{"a": 1}', "x"]


def test_a_polars_frame_sql_returned_gets_the_grid_too(ip):
    pl = pytest.importorskip("polars")
    frame = pl.DataFrame({"a": [1, 2], "b": ["x", None]})
    assert grid.MIME not in shown(ip, frame)
    grid.mark(frame)
    payload = shown(ip, frame)[grid.MIME]
    assert [(c["name"], c["type"]) for c in payload["columns"]] == [("a", "bigint"), ("b", "varchar")]
    assert payload["rows"] == [[1, "x"], [2, None]] and payload["total"] == 2
