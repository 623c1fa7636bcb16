"""``%sql --persist``, ``--persist-replace`` and ``--append`` at 100,000 rows, as jupysql's documentation writes them,
in a real "Python 3 (Antigravity)" kernel of alice's demo workspace: one Iceberg commit each, jupysql's names and
messages, and a failed persist leaves no table behind."""

from __future__ import annotations

import uuid

import pytest
from kernelclient import gather, workspace_kernel

pytestmark = pytest.mark.integration

ROWS = 100_000
FRAME = "frame = lambda r: r if hasattr(r, 'iloc') else r.DataFrame()\n"  # with autopandas on or off


@pytest.fixture(scope="module")
def kernel(tmp_path_factory, user_api, hub_url):
    token = user_api("alice").http.headers["Authorization"].split()[1]
    with workspace_kernel(tmp_path_factory.mktemp("jupyter-data"), hub_url, token) as kc:
        yield kc


@pytest.fixture
def name(kernel):
    """A fresh DataFrame variable name (and so table name), dropped afterwards."""
    name = f"persisted_{uuid.uuid4().hex[:8]}"
    yield name
    run(kernel, f"%sql DROP TABLE IF EXISTS {name}")


def run(kc, code: str, timeout: float = 300) -> tuple[str, list[dict]]:
    text, errors = [], []
    kc.execute_interactive(code, output_hook=lambda msg: gather(msg, text, errors), timeout=timeout)
    return "".join(text), errors


def ok(kernel, code: str) -> str:
    out, errors = run(kernel, code, timeout=300)
    assert not errors, errors
    return out


def error(kernel, code: str) -> str:
    """What the cell shows of its error (``%sql``'s errors are error outputs of their own lines, no traceback)."""
    out, errors = run(kernel, code, timeout=300)
    shown = out + "".join(e["evalue"] for e in errors)
    assert errors or "Error" in shown, shown
    assert "Traceback (most recent call last)" not in shown
    return shown


def frame(kernel, name: str, rows: int = ROWS, extra: str = "") -> None:
    ok(
        kernel,
        f"import numpy as np, pandas as pd\n"
        f"rng = np.random.default_rng(7)\n"
        f"{name} = pd.DataFrame({{'meter_id': np.arange({rows}), "
        f"'city': rng.choice(['Bern', 'Basel', 'Genf'], {rows}), 'kwh': rng.random({rows}).round(3), "
        f"'day': pd.Timestamp('2026-01-01') + pd.to_timedelta(np.arange({rows}) % 365, unit='D'){extra}}})",
    )


def scalar(kernel, sql: str) -> str:
    code = f"_r = %sql {sql}\n_r = _r if hasattr(_r, 'iloc') else _r.DataFrame()\nprint(_r.iloc[0, 0])"
    return ok(kernel, code).strip().splitlines()[-1]


def test_persist_writes_100000_rows_in_one_commit(kernel, name):
    frame(kernel, name)
    out = ok(kernel, f"%sql --persist {name}")
    assert f"Success! Persisted {name} to the database." in out
    assert scalar(kernel, f"SELECT count(*) FROM {name}") == str(ROWS)
    assert scalar(kernel, f"SELECT sum(meter_id) FROM {name}") == str(ROWS * (ROWS - 1) // 2)
    assert scalar(kernel, f'SELECT count(*) FROM "{name}$snapshots"') == "1", "one commit, not one per row"
    columns = ok(
        kernel, f"{FRAME}_c = %sql DESCRIBE {name}\n_c = frame(_c)\nprint(list(zip(_c.iloc[:, 0], _c.iloc[:, 1])))"
    )
    assert (
        "[('index', 'bigint'), ('meter_id', 'bigint'), ('city', 'varchar'), ('kwh', 'double'), "
        "('day', 'timestamp(6)')]" in columns
    ), "the index is a column, as jupysql documents it; types as Trino would have made them"
    # A second --persist of the same name is jupysql's error, and the table stays as it was.
    shown = error(kernel, f"%sql --persist {name}")
    assert f"Table '{name}' already exists. Consider using --persist-replace" in shown
    assert scalar(kernel, f"SELECT count(*) FROM {name}") == str(ROWS)


def test_persist_replace_writes_100000_rows_in_place_of_the_table(kernel, name):
    frame(kernel, name, rows=10)
    ok(kernel, f"%sql --persist {name}")
    frame(kernel, name, extra=", 'tariff': 'night'")
    out = ok(kernel, f"%sql --persist-replace {name}")
    assert f"Success! Persisted {name} to the database." in out
    assert scalar(kernel, f"SELECT count(*) FROM {name} WHERE tariff = 'night'") == str(ROWS)
    assert scalar(kernel, f'SELECT count(*) FROM "{name}$snapshots"') == "1"


def test_persist_replace_makes_a_missing_table(kernel, name):
    frame(kernel, name, rows=5)
    ok(kernel, f"%sql --persist-replace {name}")
    assert scalar(kernel, f"SELECT count(*) FROM {name}") == "5"


def test_append_adds_100000_rows_in_one_commit(kernel, name):
    frame(kernel, name)
    ok(kernel, f"%sql --append {name}")  # makes the table, as jupysql documents
    out = ok(kernel, f"%sql --append {name}")
    assert f"Success! Persisted {name} to the database." in out
    assert scalar(kernel, f"SELECT count(*) FROM {name}") == str(2 * ROWS)
    # Each --append is one commit that adds all 100,000 rows: the table's history holds both.
    adding = f"SELECT count(*) FROM \"{name}$snapshots\" WHERE summary['added-records'] = '{ROWS}'"
    assert scalar(kernel, adding) == "2"
    assert scalar(kernel, f'SELECT count(*) FROM "{name}$snapshots"') == "2"


def test_no_index_and_a_schema_prefix(kernel, name):
    frame(kernel, name, rows=3)
    ok(kernel, f"%sql --persist demo.{name} --no-index")
    columns = ok(kernel, f"{FRAME}_c = %sql DESCRIBE demo.{name}\n_c = frame(_c)\nprint(list(_c.iloc[:, 0]))")
    assert "['meter_id', 'city', 'kwh', 'day']" in columns


def test_a_frame_no_table_can_hold_is_refused_and_leaves_no_table(kernel, name):
    ok(kernel, f"import pandas as pd\n{name} = pd.DataFrame({{'x': pd.Series([1, 2**64 - 1], dtype='uint64')}})")
    shown = error(kernel, f"%sql --persist {name}")
    assert "Column 'x' holds unsigned 64-bit integers, which no SQL table can store." in shown
    assert len(shown.strip().splitlines()) <= 2, shown
    assert scalar(kernel, f"SELECT count(*) FROM information_schema.tables WHERE table_name = '{name}'") == "0"


def test_an_append_the_table_cannot_take_changes_nothing(kernel, name):
    frame(kernel, name, rows=4)
    ok(kernel, f"%sql --persist {name}")
    ok(kernel, f"{name} = pd.DataFrame({{'meter_id': ['not a number']}})")
    shown = error(kernel, f"%sql --append {name}")
    assert f"The DataFrame does not fit table {name}: meter_id is int64 in the table but string here." in shown
    assert len(shown.strip().splitlines()) <= 2, shown
    assert scalar(kernel, f"SELECT count(*) FROM {name}") == "4"
    assert scalar(kernel, f'SELECT count(*) FROM "{name}$snapshots"') == "1"


def test_a_viewer_cannot_persist_and_no_table_is_left(kernel, name, new_workspace, admin_api, user_api, hub_url):
    """A persist the catalog refuses (alice only reads this workspace) fails with the reason; no table appears."""
    ws = new_workspace()
    assert admin_api("PUT", f"/workspaces/{ws['slug']}/members/alice", json={"role": "viewer"}).status_code == 200
    frame(kernel, name, rows=3)
    shown = error(kernel, f"%sql --persist {ws['namespace']}.{name}")
    assert f"Could not persist '{name}': ForbiddenException: Your role in the workspace" in shown
    assert (
        scalar(
            kernel,
            f"SELECT count(*) FROM information_schema.tables WHERE table_schema = '{ws['namespace']}' "
            f"AND table_name = '{name}'",
        )
        == "0"
    )
