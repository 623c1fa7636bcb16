"""jupysql's documented cells, verbatim (only the connection line left out, and the tables the workspace's own), in a
fresh "Python 3 (Antigravity)" kernel each: what a user copies from its guides works as the guides say.

Cells come from jupysql's pages: the quick start and every other page (``%load_ext sql`` first), "Configuration"
(``api/configuration``), "Tables and columns" (``%sqlcmd tables``, ``%sqlcmd columns``), "Plotting" (``%sqlplot``),
"pandas" and "polars" integrations (``.DataFrame()``, ``.PolarsDataFrame()``, ``<<``).
"""

from __future__ import annotations

import pytest
from kernelclient import gather, workspace_kernel

pytestmark = pytest.mark.integration


@pytest.fixture
def fresh(tmp_path_factory, user_api, hub_url):
    """A new kernel of alice's demo workspace: the first magic of each test is the kernel's first."""
    token = user_api("alice").http.headers["Authorization"].split()[1]
    with workspace_kernel(tmp_path_factory.mktemp("jupyter-data"), hub_url, token) as kc:
        yield kc


def run(kc, code: str, timeout: float = 180) -> tuple[str, list[dict], list[dict]]:
    """Execute ``code``; its text, its errors and every IOPub message of it."""
    text: list[str] = []
    errors: list[dict] = []
    messages: list[dict] = []

    def hook(msg):
        messages.append(msg)
        gather(msg, text, errors)

    kc.execute_interactive(code, output_hook=hook, timeout=timeout)
    return "".join(text), errors, messages


def ok(kc, code: str) -> str:
    out, errors, _ = run(kc, code)
    assert not errors, (code, [e["evalue"] for e in errors])
    return out


def table_rows(text: str) -> int:
    """Data rows of a ResultSet as its text shows it (prettytable: a header row, then one line per row)."""
    return sum(1 for line in text.splitlines() if line.startswith("|")) - 1


def images(messages: list[dict]) -> list[dict]:
    return [m for m in messages if m["msg_type"] == "display_data" and "image/png" in m["content"]["data"]]


def test_load_ext_sql_first_keeps_the_workspace_connection(fresh):
    assert "already loaded" not in ok(fresh, "%load_ext sql")
    out = ok(fresh, "%%sql\nSELECT city, reading_kwh FROM meter_readings ORDER BY meter_id, day LIMIT 3")
    assert "Bern" in out and "reading_kwh" in out, out
    assert "postgresql://" not in out

    ok(fresh, "%load_ext sql")  # again: IPython says it is loaded, and nothing changes
    ok(fresh, "%reload_ext sql")
    out = ok(fresh, "%sql SELECT count(*) AS n FROM meter_readings")
    assert "5" in out, out
    out = ok(fresh, "%sql --connections")
    assert "trino" in out, out


def test_sqlcmd_tables_as_the_first_magic_connects(fresh):
    out = ok(fresh, "%sqlcmd tables")
    assert "meter_readings" in out, out
    out = ok(fresh, "%sqlcmd columns -t meter_readings")
    assert "reading_kwh" in out and "city" in out, out


def test_sqlplot_as_the_first_magic_draws_histogram_boxplot_and_bar_on_trino(fresh):
    _, errors, messages = run(fresh, "%sqlplot histogram --table meter_readings --column reading_kwh")
    assert not errors, [e["evalue"] for e in errors]
    assert images(messages), "a histogram image"
    for cell in (
        "%sqlplot boxplot --table meter_readings --column reading_kwh",
        "%sqlplot bar --table meter_readings --column city",
        "%sqlplot histogram --table meter_readings --column reading_kwh --bins 3",
        "%sqlplot histogram --table meter_readings --column city",  # categories: grouped by an alias too
    ):
        _, errors, messages = run(fresh, cell)
        assert not errors, (cell, [e["evalue"] for e in errors])
        assert images(messages), cell


def test_result_sets_convert_as_documented(fresh):
    out = ok(
        fresh,
        "result = %sql SELECT city, reading_kwh FROM meter_readings ORDER BY meter_id, day\n"
        "df = result.DataFrame()\n"
        "print(type(result).__name__, type(df).__name__, df.shape, df.city.iloc[0])\n"
        "print(len(result), result[0], result.dict()['city'][:2])",
    )
    assert "ResultSet DataFrame (5, 2) Bern" in out, out
    assert "5 ('Bern', " in out and "('Bern', 'Bern')" in out, out

    polars = pytest.importorskip("polars")  # the kernel runs this Python: where polars is installed
    assert polars
    out = ok(fresh, "pl_df = result.PolarsDataFrame()\nprint(type(pl_df).__module__.split('.')[0], pl_df.shape)")
    assert "polars (5, 2)" in out, out

    ok(fresh, "%%sql rows <<\nSELECT meter_id, city FROM meter_readings ORDER BY meter_id")
    out = ok(fresh, "print(type(rows).__name__, len(rows), rows.DataFrame().shape)")
    assert out.strip() == "ResultSet 5 (5, 2)", out

    out = ok(fresh, "%config SqlMagic.autopandas = True\ndf = %sql SELECT * FROM meter_readings\nprint(type(df))")
    assert "pandas" in out and "DataFrame" in out, out


def test_autolimit_displaylimit_and_feedback_behave_as_documented(fresh):
    out = ok(fresh, "%config SqlMagic.autolimit = 1\n%sql SELECT * FROM meter_readings")
    assert table_rows(out) == 1, out
    out = ok(fresh, "res = %sql SELECT * FROM meter_readings\nprint(len(res), len(res.DataFrame()))")
    assert out.strip().splitlines()[-1] == "1 1", out
    ok(fresh, "%config SqlMagic.autolimit = 0")

    out = ok(fresh, "%config SqlMagic.displaylimit = 1\nres = %sql SELECT * FROM meter_readings\nres")
    assert "Truncated to displaylimit of 1" in out and table_rows(out) == 1, out
    out = ok(fresh, "len(res)")
    assert out.strip() == "5", "one displayed, but all results fetched"
    ok(fresh, "%config SqlMagic.displaylimit = 10")

    out = ok(fresh, "%config SqlMagic.feedback = 2\nres = %sql SELECT * FROM meter_readings\nprint(res)")
    assert "ResultSet: to convert to pandas, call .DataFrame()" in out, out
    out = ok(fresh, "%config SqlMagic.feedback = 0\nres = %sql SELECT * FROM meter_readings\nprint(res)")
    assert ".DataFrame()" not in out, out


def test_named_parameters_as_documented(fresh):
    ok(fresh, '%config SqlMagic.named_parameters="enabled"')
    ok(fresh, "rating = 7.3")
    out = ok(fresh, "%%sql\nSELECT *\nFROM meter_readings\nWHERE reading_kwh > :rating")
    assert "meter_id" in out, out
    out = ok(
        fresh,
        "res = %sql SELECT meter_id FROM meter_readings WHERE reading_kwh > :rating ORDER BY meter_id\n"
        "print(len(res), len(res.DataFrame()), res.DataFrame().meter_id.tolist())",
    )
    assert out.strip() == "3 3 [101, 101, 102]", out


def test_jinja_parameters_as_documented(fresh):
    """jupysql's "Parameterizing SQL queries": ``{{variable}}`` in a line and in a cell (IPython's own expansion of
    ``{…}`` in magic lines once turned ``{{n}}`` into ``{n}``, which reached Trino as a syntax error)."""
    ok(fresh, "threshold = 7.3\nmeter = 101")
    out = ok(fresh, "res = %sql SELECT count(*) AS n FROM meter_readings WHERE reading_kwh > {{threshold}}\nprint(res)")
    assert "| 3 |" in out, out
    out = ok(fresh, "%%sql\nSELECT count(*) AS n FROM meter_readings WHERE meter_id = {{meter}}")
    assert "| 2 |" in out or "n" in out, out


def test_displaycon_is_the_one_changed_default_and_turns_on_as_documented(fresh):
    out = ok(fresh, "%sql SELECT 1 AS one")
    assert "Running query in" not in out, out
    out = ok(fresh, "%config SqlMagic.displaycon = True\n%sql SELECT 1 AS one")
    assert "Running query in 'trino'" in out, out
