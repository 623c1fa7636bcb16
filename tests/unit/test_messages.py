"""What the notebook shows of a failed or interrupted query (agp.kernels.messages) and Trino's unnamed columns
(agp.kernels.columns): pure formatting."""

from __future__ import annotations

import os

import pytest

from agp.kernels import messages
from agp.kernels.columns import readable_names

ENV = {
    "AGP_WORKSPACE_SERVICE_URL": "http://127.0.0.1:8000/services/workspaces",
    "AGP_WORKSPACE": "demo",
    "AGP_PUBLIC_URL": "https://agp.example.org/",
}
EXPECTING = (
    "line 1:1: mismatched input 'SELEC'. Expecting: 'ALTER', 'ANALYZE', 'CALL', 'COMMENT', 'COMMIT', 'CREATE', "
    "'DEALLOCATE', 'DELETE', 'DENY', 'DESC', 'DESCRIBE', 'DROP', 'EXECUTE', 'EXPLAIN', 'GRANT', 'INSERT', 'MERGE', "
    "'PREPARE', 'REFRESH', 'RESET', 'REVOKE', 'ROLLBACK', 'SET', 'SHOW', 'START', 'TRUNCATE', 'UPDATE', 'USE', "
    "'WITH', <query>"
)


def test_the_history_link_is_on_the_hubs_public_address():
    assert messages.history_url("20261202_1_a", ENV) == (
        "https://agp.example.org/services/workspaces/w/demo/queries/20261202_1_a"
    )
    without_public = {k: v for k, v in ENV.items() if k != "AGP_PUBLIC_URL"}
    assert messages.history_url("q", without_public) == "http://127.0.0.1:8000/services/workspaces/w/demo/queries/q"
    assert messages.history_url("q/../x", ENV).endswith("/queries/q%2F..%2Fx"), "an id is one path segment"
    assert messages.history_url("q", {}) is None


def test_an_interrupted_query_is_one_line_with_its_id_and_history_link():
    line = messages.interrupted_line(["20261202_1_a"], {"20261202_1_a": "https://h/w/demo/queries/20261202_1_a"})
    assert line == "Cancelled in Trino: query 20261202_1_a · https://h/w/demo/queries/20261202_1_a"
    assert messages.interrupted_line(["a", "b"], {}) == "Cancelled in Trino: queries a, b"
    assert messages.interrupted_line([]) == "Interrupted; no Trino query was running."


def test_the_exceptions_show_their_lines_only_and_keep_their_kinds():
    from IPython.core.error import UsageError

    err = messages.SqlError("SYNTAX_ERROR at line 1, column 1: x\n  SELEC 1\n  ^")
    assert isinstance(err, UsageError) and err._render_traceback_() == [
        "SYNTAX_ERROR at line 1, column 1: x",
        "  SELEC 1",
        "  ^",
    ]
    stop = messages.QueryInterrupted("Cancelled in Trino: query q")
    assert isinstance(stop, KeyboardInterrupt) and stop._render_traceback_() == ["Cancelled in Trino: query q"]


def test_a_syntax_error_points_at_the_word_and_keeps_three_expected_keywords():
    text = messages.positioned("SYNTAX_ERROR", EXPECTING, "SELEC 1", "q1", (1, 1))
    assert text.splitlines() == [
        "SYNTAX_ERROR at line 1, column 1: mismatched input 'SELEC'; expecting 'ALTER', 'ANALYZE', 'CALL', … "
        "(query q1)",
        "  SELEC 1",
        "  ^",
    ]


def test_the_caret_is_under_the_column_of_the_right_line():
    statement = "SELECT city,\n\tsum(kwh)\nFROM t\nORDER BY kwhh"
    text = messages.positioned("COLUMN_NOT_FOUND", "line 4:10: Column 'kwhh' cannot be resolved", statement)
    head, line, caret = text.splitlines()
    assert head == "COLUMN_NOT_FOUND at line 4, column 10: Column 'kwhh' cannot be resolved"
    assert line == "  ORDER BY kwhh" and caret.index("^") == line.index("kwhh")
    tab = messages.caret_lines(statement, 2, 2)
    assert tab[1].index("^") == tab[0].index("sum"), "a tab counts as one column"
    assert messages.caret_lines(statement, 9, 1) == [] and messages.caret_lines(statement, 1, 99) == []


def test_a_long_line_is_cut_around_the_position():
    statement = "SELECT " + ", ".join(f"c{i}" for i in range(200)) + " FRM t"
    column = statement.index("FRM") + 1
    line, caret = messages.caret_lines(statement, 1, column, width=40)
    assert len(line) <= 2 + 42 and line.startswith("  …")
    assert line[caret.index("^") :].startswith("FRM")


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("mismatched input 'x'. Expecting: ',', 'AS'", "mismatched input 'x'; expecting ',', 'AS'"),
        ("mismatched input 'x'. Expecting: <expression>", "mismatched input 'x'; expecting <expression>"),
        ("Column 'x' cannot be resolved", "Column 'x' cannot be resolved"),
    ],
)
def test_short_expected_lists_are_kept(message, expected):
    assert messages.shorten_expecting(message) == expected


INFO = {
    "slug": "grid-ops",
    "display_name": "Grid operations",
    "namespace": "grid_ops",
    "your_role": "viewer",
    "members": [
        {"username": "carol", "role": "owner"},
        {"username": "alice", "role": "owner"},
        {"username": "bob", "role": "viewer"},
    ],
}


def test_a_viewer_writing_hears_their_role_and_who_can_change_it():
    text = messages.permission_sentence("Access Denied: Cannot insert into table iceberg.grid_ops.t", "grid-ops", INFO)
    assert text == (
        "Access denied: Cannot insert into table iceberg.grid_ops.t. You are a viewer of workspace 'grid-ops' "
        "(Grid operations) (viewers can read but not write); its owners (alice, carol) can change your role."
    )


def test_another_workspaces_table_names_its_schema_and_its_owners_as_deciders():
    text = messages.permission_sentence(
        "Access Denied: Cannot select from columns [v] in table or view iceberg.t_abc.private", "grid-ops", INFO
    )
    assert "Schema 't_abc' belongs to another workspace, not to 'grid-ops' (Grid operations)" in text
    assert "that workspace's owners" in text


def test_without_the_services_answer_the_sentence_still_says_what_to_do():
    text = messages.permission_sentence("Access Denied: Cannot create table iceberg.demo.t", "demo", None)
    assert text.startswith("Access denied: Cannot create table iceberg.demo.t. Your role in workspace 'demo'")
    assert "owners" in text and "\n" not in text


@pytest.mark.parametrize(
    ("statement", "names", "expected"),
    [
        (
            "SELECT 1, count(*), 'a' AS x, upper('b') FROM t",
            ["_col0", "_col1", "x", "_col3"],
            ["1", "count(*)", "x", "upper('b')"],
        ),
        # a user's own _colN stays; a generated name never takes a name already there
        ("SELECT a AS _col0, 1 FROM t", ["_col0", "_col1"], ["_col0", "1"]),
        ('SELECT 1 AS "1", 1', ["1", "_col1"], ["1", "1_1"]),
        ("SELECT 1, 1", ["_col0", "_col1"], ["1", "1_1"]),
        # CTEs, set operations, DISTINCT, windows, typed literals, lines and spaces as written
        (
            "WITH a AS (SELECT 1 x) SELECT DISTINCT x + 1, sum(x) OVER (PARTITION BY x) FROM a",
            ["_col0", "_col1"],
            ["x + 1", "sum(x) OVER (PARTITION BY x)"],
        ),
        ("(SELECT DATE '2026-01-01') UNION ALL SELECT current_date", ["_col0"], ["DATE '2026-01-01'"]),
        ("SELECT\n  a  +  b\nFROM t;", ["_col0"], ["a + b"]),
        # after a star the positions are unknown; non-SELECT statements and what sqlglot cannot read: Trino's names
        ("SELECT *, 1 FROM t", ["a", "_col1"], ["a", "_col1"]),
        ("VALUES (1, 2)", ["_col0", "_col1"], ["_col0", "_col1"]),
        ("SELEC 1", ["_col0"], ["_col0"]),
        ("SHOW TABLES", ["Table"], ["Table"]),
    ],
)
def test_unnamed_columns_get_their_expressions_text(statement, names, expected):
    assert readable_names(statement, names) == expected


def test_a_long_expression_is_cut():
    statement = "SELECT " + " + ".join(f"column_number_{i}" for i in range(20)) + " FROM t"
    [name] = readable_names(statement, ["_col0"])
    assert len(name) == 80 and name.endswith("…") and name.startswith("column_number_0 + ")


def test_the_sql_magic_shows_an_interrupt_and_its_errors_as_short_lines(monkeypatch, capsys):
    """The kernel's wrapper of jupysql's magic (agp.kernels.sql.wrap_magic) around a stand-in for jupysql: what the
    cell shows, and that the cell ends in error (IPython's run_cell result)."""
    from IPython import get_ipython
    from IPython.core.error import UsageError
    from IPython.testing.globalipapp import start_ipython

    from agp.kernels import sql as agp_sql
    from agp.kernels.credentials import BrokerClient

    ip = start_ipython() or get_ipython()  # one shell per process: the first call makes it
    saved = {kind: dict(ip.magics_manager.magics[kind]) for kind in ("line", "cell")}

    def jupysql(line="", cell=None, local_ns=None):
        if "slow" in line:
            raise KeyboardInterrupt
        if "usage" in line:
            raise UsageError("Unrecognized argument --x")
        raise ValueError("boom\nsecond line")

    monkeypatch.setattr(agp_sql, "connect", lambda broker: None)
    monkeypatch.setattr(agp_sql.TRACKER, "cancel_running", lambda: ["20261202_1_a"])
    monkeypatch.setitem(os.environ, "AGP_WORKSPACE_SERVICE_URL", "http://hub:8000/services/workspaces")
    monkeypatch.setitem(os.environ, "AGP_WORKSPACE", "demo")
    monkeypatch.delitem(os.environ, "AGP_PUBLIC_URL", raising=False)
    try:
        ip.register_magic_function(jupysql, magic_kind="line_cell", magic_name="sql")
        agp_sql.wrap_magic(ip, BrokerClient("http://hub:8000/services/workspaces", "t", "demo"), "sql")
        capsys.readouterr()
        shown = {}
        for line in ("slow", "usage", "other"):
            result = ip.run_cell(f"%sql {line}")
            assert result.error_in_exec is not None, "the cell ends in error"
            out = capsys.readouterr()
            shown[line] = (type(result.error_in_exec).__name__, out.out + out.err)
    finally:
        for kind, magics in saved.items():
            ip.magics_manager.magics[kind].clear()
            ip.magics_manager.magics[kind].update(magics)
    assert shown == {
        "slow": (
            "QueryInterrupted",
            "Cancelled in Trino: query 20261202_1_a · http://hub:8000/services/workspaces/w/demo/queries/20261202_1_a\n",
        ),
        "usage": ("SqlError", "Unrecognized argument --x\n"),
        "other": ("SqlError", "ValueError: boom\n"),
    }


def test_a_refused_credential_request_is_a_sentence_never_the_proxys_page():
    from agp.kernels.credentials import refusal

    page = "<!DOCTYPE HTML>\n<html lang='en'><head><title>Antigravity</title>"
    assert refusal("trino", "demo", 503, "text/html", page) == (
        "The workspace service is not available right now (HTTP 503); no credentials were issued. "
        "Try again in a moment."
    )
    assert refusal("s3", "demo", 403, "application/json", '{"detail": "You are not a member of demo."}') == (
        "No s3 credentials for workspace 'demo': You are not a member of demo. (HTTP 403)"
    )
    assert refusal("s3", "demo", 500, "text/html", page) == "No s3 credentials for workspace 'demo': refused (HTTP 500)"
