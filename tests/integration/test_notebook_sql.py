"""``%sql`` in the Antigravity kernel: jupysql on Trino as the logged-in user, with brokered credentials."""

from __future__ import annotations

import pytest
from kernelclient import WIDGET, gather, workspace_kernel

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def kernel(tmp_path_factory, user_api, hub_url):
    """A real "Python 3 (Antigravity)" kernel with the environment a demo workspace server of alice has."""
    token = user_api("alice").http.headers["Authorization"].split()[1]
    with workspace_kernel(tmp_path_factory.mktemp("jupyter-data"), hub_url, token) as kc:
        yield kc


def run(kc, code: str, messages: list | None = None, timeout: float = 120) -> tuple[str, list[dict]]:
    """Execute ``code``; return its printed text and its error outputs (and every iopub message in ``messages``)."""
    text, errors = [], []

    def hook(msg):
        if messages is not None:
            messages.append(msg)
        gather(msg, text, errors)

    kc.execute_interactive(code, output_hook=hook, timeout=timeout)
    return "".join(text), errors


def test_sql_runs_without_a_setup_cell_and_its_result_gives_a_dataframe(kernel):
    out, errors = run(
        kernel,
        "result = %sql SELECT city, reading_kwh FROM meter_readings ORDER BY meter_id, day\n"
        "df = result.DataFrame()\n"
        "print(type(df).__name__, len(df), list(df.columns), df.city.tolist()[:2])",
    )
    assert not errors, errors
    assert "DataFrame 5 ['city', 'reading_kwh'] ['Bern', 'Bern']" in out


def test_cell_magic_creates_a_table_and_reads_it_back(kernel):
    out, errors = run(
        kernel,
        "%%sql\nCREATE TABLE IF NOT EXISTS kernel_ctas AS SELECT city, sum(reading_kwh) AS kwh "
        "FROM meter_readings GROUP BY city",
    )
    assert not errors, errors
    try:
        out, errors = run(kernel, "n = %sql SELECT count(*) AS n FROM kernel_ctas\nprint(n[0][0])")
        assert not errors, errors
        assert out.strip().endswith("3")
    finally:
        run(kernel, "%sql DROP TABLE IF EXISTS kernel_ctas")


def run_cell(kc, code: str, timeout: float = 120) -> tuple[str, list[dict], dict]:
    """Execute ``code``; its printed text, its error outputs and its execute reply's content."""
    text, errors = [], []
    reply = kc.execute_interactive(code, output_hook=lambda msg: gather(msg, text, errors), timeout=timeout)
    return "".join(text), errors, reply["content"]


def shown_lines(out: str, errors: list[dict]) -> list[str]:
    """Every line the cell shows as text: its streams and its errors' tracebacks (what JupyterLab renders)."""
    return [line for line in (out + "\n".join(line for e in errors for line in e["traceback"])).splitlines() if line]


def test_a_syntax_error_points_at_the_word_without_usage_error_or_traceback(kernel):
    out, errors, reply = run_cell(kernel, "%sql SELEC 1")
    assert reply["status"] == "error", "the cell ends in error: Run all stops there"
    assert [e["ename"] for e in errors] == ["SqlError"], errors
    lines = shown_lines(out, errors)
    assert lines[0].startswith("SYNTAX_ERROR at line 1, column 1: mismatched input 'SELEC'; expecting "), lines
    assert lines[1:] == ["  SELEC 1", "  ^"], lines
    assert lines[0].count("'") <= 2 + 2 * 3 and "…" in lines[0], "three expected keywords at most, not thirty"
    shown = "\n".join(lines)
    assert "UsageError" not in shown and "Traceback" not in shown
    assert "snippets" not in shown and "sqlalche.me" not in shown, "no hints meant for other databases"

    cell = "%%sql\nSELECT city,\n       sum(reading_kwh) AS kwh\nFROM meter_readings\nGROUP BY city ORDER BY kwhh"
    out, errors, _ = run_cell(kernel, cell)
    head, line, caret = shown_lines(out, errors)
    assert head.startswith("COLUMN_NOT_FOUND at line 4, column 24: Column 'kwhh' cannot be resolved"), head
    assert line == "  GROUP BY city ORDER BY kwhh" and caret == " " * line.index("kwhh") + "^"


def test_unnamed_columns_get_readable_names_and_named_ones_keep_theirs(kernel):
    out, errors = run(
        kernel,
        "r = %sql SELECT 1, count(*), max(city) AS _col2, upper(max(city)), 1 FROM meter_readings\n"
        "df = r.DataFrame()\n"
        "print(type(df).__name__, list(df.columns), list(r.keys), df.iloc[0, 1])",
    )
    assert not errors, errors
    names = "['1', 'count(*)', '_col2', 'upper(max(city))', '1_1']"
    assert out.strip() == f"DataFrame {names} {names} 5", out


def test_a_missing_table_names_the_table(kernel):
    out, errors = run(kernel, "%sql SELECT * FROM no_such_table_here")
    shown = out + "".join(e["evalue"] for e in errors)
    assert "TABLE_NOT_FOUND" in shown and "no_such_table_here" in shown, shown
    assert len(shown.strip().splitlines()) <= 3, shown


def test_another_workspaces_table_is_an_access_error_that_says_who_decides(kernel, new_workspace, settings):
    from agp.core import clients

    other = new_workspace()["namespace"]
    with clients.trino_connect(settings) as conn:
        cur = conn.cursor()
        cur.execute(f"CREATE TABLE iceberg.\"{other}\".private AS SELECT 'not-for-alice' AS v")
        cur.fetchall()
    for statement in (
        f'SELECT * FROM iceberg."{other}".private',
        f"INSERT INTO iceberg.\"{other}\".private VALUES ('x')",
    ):
        out, errors, reply = run_cell(kernel, f"%sql {statement}")
        assert reply["status"] == "error"
        [line] = shown_lines(out, errors)
        assert line.startswith("Access denied: "), line
        assert f"Schema '{other}' belongs to another workspace, not to 'demo'" in line, line
        assert "that workspace's owners can give you access" in line and "not-for-alice" not in line


def test_a_viewer_writing_hears_their_role_and_the_owners_who_can_change_it(
    tmp_path_factory, new_workspace, admin_api, user_api, hub_url
):
    ws = new_workspace(display_name="Viewer test")
    slug = ws["slug"]
    r = admin_api("PUT", f"/workspaces/{slug}/members/bob", json={"role": "viewer"})
    assert r.status_code == 200, r.text
    token = user_api("bob").http.headers["Authorization"].split()[1]
    folder = tmp_path_factory.mktemp("jupyter-data-bob")
    with workspace_kernel(folder, hub_url, token, AGP_WORKSPACE=slug) as bob:
        out, errors, reply = run_cell(bob, "%sql CREATE TABLE bobs AS SELECT 1 AS x")
    assert reply["status"] == "error"
    [line] = shown_lines(out, errors)
    owners = sorted(
        m["username"] for m in admin_api("GET", f"/workspaces/{slug}").json()["members"] if m["role"] == "owner"
    )
    assert line.startswith("Access denied: "), line
    assert f"You are a viewer of workspace '{slug}' (Viewer test) (viewers can read but not write)" in line, line
    assert f"its owners ({', '.join(owners)}) can change your role" in line, line


# A query that runs for minutes and returns nothing until it ends: 10^12 rows counted.
LONG_QUERY = (
    "SELECT count(*) FROM UNNEST(sequence(1, 10000)) a(x) "
    "CROSS JOIN UNNEST(sequence(1, 10000)) b(y) CROSS JOIN UNNEST(sequence(1, 10000)) c(z)"
)


def test_an_interrupted_query_is_one_line_with_its_history_link_and_is_cancelled_in_trino(
    kernel, settings, hub_url, user_api, login
):
    import threading
    import time

    from conftest import wait_until

    from agp.core import clients

    km = kernel.parent
    messages: list = []
    timer = threading.Timer(6.0, km.interrupt_kernel)
    timer.start()
    text, errors = [], []

    def hook(msg):
        messages.append(msg)
        gather(msg, text, errors)

    try:
        reply = kernel.execute_interactive(f"%sql {LONG_QUERY}", output_hook=hook, timeout=120)["content"]
    finally:
        timer.cancel()
    assert reply["status"] == "error", "the cell ends in error: Run all stops there"
    [line] = shown_lines("".join(text), errors)
    assert line.startswith("Cancelled in Trino: query "), line
    query_id = line.split("Cancelled in Trino: query ")[1].split()[0]
    link = f"{hub_url}/services/workspaces/w/demo/queries/{query_id}"
    assert line == f"Cancelled in Trino: query {query_id} · {link}", line

    labels = [
        m["content"]["data"]["state"].get("value", "")
        for m in messages
        if m["header"]["msg_type"] in ("comm_open", "comm_msg") and "state" in m["content"].get("data", {})
    ]
    shown = [v for v in labels if isinstance(v, str) and "Trino running" in v]
    assert shown and "rows" in shown[-1] and query_id in shown[-1], labels[-5:]
    opened = {m["content"]["comm_id"] for m in messages if m["header"]["msg_type"] == "comm_open"}
    closed = {m["content"]["comm_id"] for m in messages if m["header"]["msg_type"] == "comm_close"}
    [bar] = [
        m["content"]["data"][WIDGET]["model_id"]
        for m in messages
        if m["header"]["msg_type"] == "display_data" and WIDGET in m["content"]["data"]
    ]
    assert opened and opened <= closed and bar in closed, "the progress bar is taken away: the line says it all"

    with clients.trino_connect(settings) as conn:
        cur = conn.cursor()
        for _ in range(30):
            cur.execute(f"SELECT state, error_code FROM system.runtime.queries WHERE query_id = '{query_id}'")
            rows = cur.fetchall()
            if rows and rows[0][0] in ("FAILED", "FINISHED"):
                break
            time.sleep(0.5)
    assert rows == [["FAILED", "USER_CANCELED"]], rows

    # The link is the query's entry in the workspace's history, which alice opens.
    api = user_api("alice")

    def entry():
        r = api("GET", f"/workspaces/demo/queries/{query_id}")
        assert r.status_code == 200 and r.json()["state"] == "FAILED", r.text
        return r.json()

    assert link.endswith(wait_until(entry)["page_url"])
    page = login("alice").get(link)
    assert page.status_code == 200 and query_id in page.text

    out, errors = run(kernel, "print(1 + 1)")
    assert not errors and out.strip() == "2", "the kernel lives on"


def test_trino_stopped_mid_session_is_a_clear_error_and_the_kernel_lives(kernel, lab):
    out, errors = run(kernel, "%sql SELECT 1 AS one")
    assert not errors, errors
    lab.stop("trino")
    try:
        out, errors = run(kernel, "%sql SELECT 2 AS two")
        shown = out + "".join(e["evalue"] for e in errors)
        assert "does not answer" in shown and "the query did not run" in shown, shown
        assert "Traceback" not in shown and len(shown.strip().splitlines()) <= 3, shown
        out, errors = run(kernel, "print('alive')")
        assert not errors and out.strip() == "alive"
    finally:
        lab.restart("trino")
    out, errors = run(kernel, "x = %sql SELECT 3 AS three\nprint(int(x[0][0]))")
    assert not errors and out.strip() == "3", (out, errors)


TYPED = (
    "SELECT n, n * 0.5 AS half, CASE WHEN n % 3 = 0 THEN nan() WHEN n % 3 = 1 THEN infinity() ELSE 1.5 END AS special, "
    "CAST(n AS decimal(12, 2)) AS amount, date_add('day', n % 1000, DATE '2026-01-01') AS day, "
    "from_unixtime(n) AS ts, CAST(n AS varchar) AS label, n % 2 = 0 AS even, "
    "CASE WHEN n % 5 = 0 THEN NULL ELSE n END AS sometimes, to_utf8(CAST(n % 7 AS varchar)) AS bytes "
    "FROM (SELECT a * 1000 + b AS n FROM UNNEST(sequence(0, 249)) AS s(a) CROSS JOIN UNNEST(sequence(1, 1000)) AS t(b))"
)


def test_large_results_match_the_raw_cursor_value_for_value(kernel):
    code = f"""
import math, pandas as pd
from agp.kernels.credentials import trino_connect
fast = %sql {TYPED}
fast = fast.DataFrame()
cur = trino_connect().cursor()
cur.execute({TYPED!r})
raw = pd.DataFrame(cur.fetchall(), columns=[d[0] for d in cur.description])
fast, raw = (d.sort_values("n").reset_index(drop=True) for d in (fast, raw))
same = all(
    (a == b) or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))
    or (a is None and b is None) or (pd.isna(a) and pd.isna(b))
    for column in raw.columns for a, b in zip(fast[column].tolist(), raw[column].tolist())
)
dtypes_match = [str(t) for t in fast.dtypes] == [str(t) for t in raw.dtypes]
print(len(fast), list(fast.columns) == list(raw.columns), same, dtypes_match)
print(type(fast.amount[0]).__name__, type(fast.day[0]).__name__, type(fast.bytes[0]).__name__)
"""
    out, errors = run(kernel, code, timeout=300)
    assert not errors, errors
    assert out.strip().splitlines() == ["250000 True True True", "Decimal date bytes"], out


def test_polars_results_and_jupysql_features_work_as_documented(kernel):
    code = """
%config SqlMagic.autopolars = True
pl_df = %sql SELECT city, reading_kwh FROM meter_readings ORDER BY meter_id, day
%config SqlMagic.autopolars = False
print(type(pl_df).__module__.split('.')[0], pl_df.shape)
%sql --save bern_only SELECT * FROM meter_readings WHERE city = 'Bern'
n = %sql --with bern_only SELECT count(*) AS n FROM bern_only
print('saved', int(n[0][0]))
"""
    out, errors = run(kernel, code)
    assert not errors, errors
    assert "polars (5, 2)" in out and "saved 2" in out, out

    out, errors = run(kernel, "%%sql rows <<\nSELECT meter_id FROM meter_readings\n")
    assert not errors, errors
    out, errors = run(kernel, "print(type(rows).__name__, len(rows))")
    assert out.strip() == "ResultSet 5", out


def test_every_kind_of_statement_still_gives_what_jupysql_gives(kernel):
    code = """
shapes = []
for q in ["SHOW TABLES LIKE 'meter_readings'", "DESCRIBE meter_readings", "SELECT * FROM meter_readings WHERE 1 = 0",
          "SELECT a, a AS a FROM (VALUES 1, 2, 3) AS v(a)",
          "SELECT ARRAY[1, 2] AS arr, MAP(ARRAY['k'], ARRAY[1]) AS m, ROW(1, 'x') AS r"]:
    df = get_ipython().run_line_magic("sql", q).DataFrame()
    shapes.append((df.shape, list(df.columns)))
print(shapes)
print(df.iloc[0].tolist())
"""
    out, errors = run(kernel, code)
    assert not errors, errors
    lines = out.strip().splitlines()
    assert lines[0] == (
        "[((1, 1), ['Table']), ((4, 4), ['Column', 'Type', 'Extra', 'Comment']), "
        "((0, 4), ['meter_id', 'city', 'reading_kwh', 'day']), ((3, 2), ['a', 'a']), ((1, 3), ['arr', 'm', 'r'])]"
    ), lines
    assert lines[1] == "[[1, 2], {'k': 1}, (1, 'x')]"


def test_a_result_shows_what_the_data_says_and_runs_none_of_it(kernel):
    """A value or column name with markup (another member's row in a shared workspace) is shown escaped in the
    cell's HTML: jupysql alone unescapes its table, and the script would run as whoever queried it."""
    messages: list = []
    _, errors = run(
        kernel,
        "%sql SELECT '<img src=x onerror=alert(1)>' AS \"<b>c</b>\", 'https://ok.example/a' AS link",
        messages,
    )
    assert not errors, errors
    (html,) = [m["content"]["data"]["text/html"] for m in messages if m["header"]["msg_type"] == "execute_result"]
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<b>c</b>" not in html and "&lt;b&gt;c&lt;/b&gt;" in html
    assert '<a href="https://ok.example/a"' in html
