"""A new notebook in a workspace server started from the hub, with no set-up cell: %sql, the catalog, Spark.

The kernel is the server's default, started through the server's sessions API and driven over its websocket, as
JupyterLab does it.
"""

from __future__ import annotations

import uuid

import pytest
from kernelclient import NotebookKernel

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(user_api, hub_url):
    alice = user_api("alice")
    r = alice.hub("POST", "/users/alice/servers/demo")
    assert r.status_code in (201, 202, 400), r.text  # 400: already running
    alice.wait_server("alice", "demo")
    yield alice.http, f"{hub_url}/user/alice/demo"
    alice.hub("DELETE", "/users/alice/servers/demo")


@pytest.fixture(scope="module")
def nb(server):
    http, url = server
    path = f"e2e-{uuid.uuid4().hex[:8]}.ipynb"
    kernel = NotebookKernel.new_notebook(http, url, path)
    yield kernel
    kernel.shutdown()
    http.delete(f"{url}/api/contents/{path}", timeout=30)


@pytest.fixture(scope="module")
def table(nb):
    name = f"nb_{uuid.uuid4().hex[:8]}"
    yield name
    nb.execute(f"%sql DROP TABLE IF EXISTS {name}")


def test_the_new_notebook_runs_the_antigravity_kernel(nb):
    assert nb.kernel["name"] == "agp"


def test_sql_on_the_demo_table_gives_a_dataframe(nb):
    reply = nb.execute(
        "df = %sql SELECT city, reading_kwh FROM meter_readings ORDER BY meter_id, day\n"
        "df = df.DataFrame()\n"
        "print(type(df).__name__, len(df), df.city.iloc[0])"
    )
    assert not reply.errors, reply.errors
    assert reply.text.strip() == "DataFrame 5 Bern"


def test_create_table_as_shows_in_the_catalog_at_once(nb, server, table):
    http, url = server
    tables = f"{url}/agp/catalog/namespaces/demo/tables"
    assert table not in http.get(tables, timeout=60).json()["items"]  # now cached by the server
    reply = nb.execute(f"%%sql\nCREATE TABLE {table} AS SELECT city, reading_kwh FROM meter_readings")
    assert not reply.errors, reply.errors
    assert table in http.get(tables, timeout=60).json()["items"], "the kernel's write cleared the server's cache"
    detail = http.get(f"{tables}/{table}", timeout=60).json()
    assert [c["name"] for c in detail["schema"]] == ["city", "reading_kwh"]
    assert detail["snapshots"] and detail["snapshots"][-1]["operation"] == "append"
    preview = http.get(f"{tables}/{table}/preview", params={"limit": 1}, timeout=60).json()
    assert preview["columns"] == ["city", "reading_kwh"] and len(preview["rows"]) == 1


def test_the_catalog_browser_after_a_click_on_a_table(nb, table):
    reply = nb.execute("from agp.kernels import CatalogBrowser\nbrowser = CatalogBrowser()\nbrowser")
    assert not reply.errors, reply.errors
    (tree_id, opened_state), *_ = reply.comms("SelectModel").items()
    tree = {**opened_state, **reply.updates(tree_id)}
    assert "▸ demo" in tree["_options_labels"]

    opened = nb.comm_update(tree_id, {"index": tree["_options_labels"].index("▸ demo")})
    labels = opened.updates(tree_id)["_options_labels"]
    assert f"    ▸ {table}" in labels and "    ▸ meter_readings" in labels

    clicked = nb.comm_update(tree_id, {"index": labels.index(f"    ▸ {table}")})
    assert not any(m["msg_type"] == "error" for m in clicked.messages)
    texts = [s.get("value", "") for s in clicked.comms().values()] + [
        m["content"]["data"]["state"].get("value", "")
        for m in clicked.messages
        if m["msg_type"] == "comm_msg" and "state" in m["content"]["data"]
    ]
    assert f'SELECT * FROM "demo"."{table}" LIMIT 100' in texts
    assert any("<h4>Schema</h4>" in t and "reading_kwh" in t and "append" in t for t in texts if isinstance(t, str))

    state = nb.execute("print(browser.tree.value, browser.query.value, browser.copy.disabled)")
    assert state.text.strip() == f"('table', 'demo', '{table}') SELECT * FROM \"demo\".\"{table}\" LIMIT 100 False"


def test_spark_writes_what_sql_reads_and_reads_what_sql_wrote(nb, table, server):
    reply = nb.execute(
        "from agp.kernels import spark\n"
        "session = spark()\n"
        f"print('sql-rows', session.table('{table}').count())\n"
        f"session.sql(\"INSERT INTO {table} VALUES ('Spark', 1.5)\")\n"
        "print('same', spark() is session)"
    )
    assert not reply.errors, reply.errors
    assert "sql-rows 5" in reply.text and "same True" in reply.text
    reply = nb.execute(f"n = %sql SELECT count(*) AS n FROM {table} WHERE city = 'Spark'\nprint(int(n[0][0]))")
    assert not reply.errors, reply.errors
    assert reply.text.strip() == "1"

    http, url = server
    tables = f"{url}/agp/catalog/namespaces/demo/tables"
    made = f"{table}_by_spark"
    assert made not in http.get(tables, timeout=60).json()["items"]  # cached by the server now
    try:
        reply = nb.execute(f"session.sql('CREATE TABLE {made} AS SELECT * FROM {table}').collect()")
        assert not reply.errors, reply.errors
        assert made in http.get(tables, timeout=60).json()["items"], "Spark's commit cleared the server's cache"
    finally:
        nb.execute(f"session.sql('DROP TABLE IF EXISTS {made}').collect()")


def test_the_runtime_has_the_readmes_libraries_and_sqlplot_draws_on_trino(nb):
    reply = nb.execute(
        "import matplotlib, seaborn, pandas, polars, scipy, sklearn\n"
        "%sqlplot histogram --table meter_readings --column reading_kwh"
    )
    assert not reply.errors, reply.errors
    shown = [m for m in reply.messages if m["msg_type"] == "display_data" and "image/png" in m["content"]["data"]]
    assert shown, [m["msg_type"] for m in reply.messages]
