"""Iceberg's documented flows in a notebook of a workspace server started from the hub (issue 10): what a user
copies from pyiceberg's and Trino's pages works in the "Python 3 (Antigravity)" kernel as the pages say.

- pyiceberg's "Getting started" and its API page, cell by cell: ``load_catalog`` (the kernel's preconfigured one,
  :func:`agp.kernels.credentials.load_catalog`), ``create_table`` from a pyarrow schema, ``append``, ``overwrite``,
  ``delete`` with a filter, scans to Arrow and pandas, schema evolution (``update_schema()``: ``union_by_name``,
  ``add_column``), ``inspect.snapshots()`` and ``inspect.history()``, and time travel with ``scan(snapshot_id=...)``.
  The getting-started page reads a taxi-trip Parquet file from the internet; here the same columns are made in the
  cell with pyarrow.
- Trino's Iceberg connector page through ``%sql``: the ``$snapshots`` and ``$history`` tables, ``FOR VERSION AS OF``
  and ``FOR TIMESTAMP AS OF``, ``MERGE INTO``, ``ALTER TABLE ... EXECUTE optimize``, schema evolution (``ADD``,
  ``RENAME``, ``DROP COLUMN``) and partition evolution (``SET PROPERTIES partitioning``), then ``spark()`` reading
  the result (``VERSION AS OF`` and ``TIMESTAMP AS OF`` in Spark SQL).

One workspace of its own (alice an editor), one server, one kernel and one Spark session for the module.
"""

from __future__ import annotations

import json
import uuid

import pytest
from conftest import query_rows, remove_workspace, wait_until
from kernelclient import NotebookKernel

from agp.core import clients

pytestmark = pytest.mark.integration

MARK = "@@json "  # the line of a cell's output that carries its values


@pytest.fixture(scope="module")
def workspace(admin_api, settings):
    """A workspace of its own with alice an editor (other tests start and stop servers of ``demo``)."""
    slug = f"t-ice-{uuid.uuid4().hex[:8]}"
    try:
        r = admin_api("POST", "/workspaces", json={"slug": slug})
        assert r.status_code == 201, r.text
        namespace = r.json()["namespace"]
        r = admin_api("PUT", f"/workspaces/{slug}/members/alice", json={"role": "editor"})
        assert r.status_code == 200, r.text
        # Trino reads its rules again every 5 s: the first %sql of a test must not race the new membership.
        wait_until(lambda: query_rows(clients.trino_connect(settings, user="alice", schema=namespace), "SHOW TABLES"))
        yield slug, namespace
    finally:
        remove_workspace(settings, slug)


@pytest.fixture(scope="module")
def nb(user_api, hub_url, workspace):
    """A new notebook's kernel in alice's server of the workspace, started through the hub as JupyterLab does."""
    slug, _ = workspace
    alice = user_api("alice")
    url = f"{hub_url}/user/alice/{slug}"
    path = f"iceberg-docs-{uuid.uuid4().hex[:8]}.ipynb"
    try:
        r = alice.hub("POST", f"/users/alice/servers/{slug}")
        assert r.status_code in (201, 202), r.text
        alice.wait_server("alice", slug)
        kernel = NotebookKernel.new_notebook(alice.http, url, path)
        yield kernel
        kernel.shutdown()
        alice.http.delete(f"{url}/api/contents/{path}", timeout=30)
    finally:
        alice.hub("DELETE", f"/users/alice/servers/{slug}")


@pytest.fixture(scope="module")
def ns(workspace) -> str:
    return workspace[1]


def ok(nb: NotebookKernel, code: str) -> str:
    """Run a cell that must succeed; its text (a ``%sql`` error is an error output; other magics' UsageErrors are
    printed)."""
    reply = nb.execute(code)
    shown = reply.text + "".join(f"{e['ename']}: {e['evalue']}" for e in reply.errors)
    assert not reply.errors and "UsageError" not in reply.text, f"{code}\n---\n{shown}"
    return reply.text


def values(nb: NotebookKernel, code: str, expr: str):
    """Run ``code``, then give back ``expr`` evaluated in the kernel (through JSON)."""
    out = ok(nb, f"{code}\nimport json as _json\nprint({MARK!r} + _json.dumps({expr}, default=str))")
    assert MARK in out, out
    # Displays (Spark's UI link, progress bars) end without a newline: the mark may follow one on its line.
    return json.loads(out[out.rindex(MARK) + len(MARK) :].splitlines()[0])


def sql(nb: NotebookKernel, query: str) -> list[list]:
    """Every row of a query, through ``%%sql``'s ``<<`` (jupysql's ResultSet, iterated by rows). A cell, not a line:
    IPython expands ``$name`` in a line magic, and ``"t$snapshots"`` would become the kernel's ``snapshots``."""
    ok(nb, f"%%sql _r <<\n{query}")
    return values(nb, "", "[list(row) for row in _r]")


# -- pyiceberg ----------------------------------------------------------------------------------------------------

# "Getting started with PyIceberg": the catalog, a table from a pyarrow table's schema, an append, a scan. The page
# reads January 2023's yellow taxi trips; these are six trips with the columns the page goes on to use.
GETTING_STARTED = """\
from agp.kernels.credentials import load_catalog

catalog = load_catalog()

import pyarrow as pa

df = pa.table({{
    "vendor_id": pa.array([1, 2, 1, 2, 1, 2], pa.int64()),
    "trip_distance": [1.25, 2.5, 4.0, 8.0, 0.5, 10.0],
    "tip_amount": [1.0, 0.0, 2.0, 0.0, 0.5, 5.0],
    "payment_type": ["card", "cash", "card", "cash", "card", "card"],
}})

table = catalog.create_table("{ns}.{name}", schema=df.schema)
table.append(df)
len(table.scan().to_arrow())
"""
COLUMNS = ["vendor_id", "trip_distance", "tip_amount", "payment_type"]


@pytest.fixture
def taxi(nb, ns):
    """A new table made by the getting-started cell; its name."""
    name = f"taxi_{uuid.uuid4().hex[:8]}"
    out = ok(nb, GETTING_STARTED.format(ns=ns, name=name))
    assert out.strip() == "6", out
    yield name
    nb.execute(f"catalog.drop_table('{ns}.{name}')")


def test_pyicebergs_own_load_catalog_default_is_the_workspaces(nb, ns):
    """The getting-started page's first cell, as written: ``load_catalog("default")`` (before: no configuration)."""
    got = values(
        nb,
        'from pyiceberg.catalog import load_catalog\ndocs_catalog = load_catalog("default")',
        "[list(n) for n in docs_catalog.list_namespaces()]",
    )
    assert [ns] in got, got


def test_getting_started_creates_appends_and_scans_to_arrow_and_pandas(nb, ns, taxi):
    got = values(
        nb,
        f"table = catalog.load_table('{ns}.{taxi}')\n"
        "arrow = table.scan().to_arrow()\n"
        "pdf = table.scan(row_filter=\"payment_type == 'card'\", selected_fields=('vendor_id', 'tip_amount'))"
        ".to_pandas()",
        "[arrow.num_rows, arrow.column_names, type(pdf).__name__, list(pdf.columns), "
        "sorted(pdf.tip_amount.tolist()), [f.name for f in table.schema().fields]]",
    )
    assert got == [6, COLUMNS, "DataFrame", ["vendor_id", "tip_amount"], [0.5, 1.0, 2.0, 5.0], COLUMNS]
    # Trino reads what pyiceberg wrote.
    assert sql(nb, f"SELECT count(*), sum(tip_amount) FROM {taxi}") == [[6, 8.5]]


def test_getting_started_evolves_the_schema_by_union_by_name_and_overwrites(nb, taxi):
    """The page's second half: a computed column, ``union_by_name`` of the new Arrow schema, ``overwrite``, a scan
    with a row filter on the new column."""
    ok(
        nb,
        "import pyarrow.compute as pc\n"
        "\n"
        'df = df.append_column("tip_per_mile", pc.divide(df["tip_amount"], df["trip_distance"]))\n'
        "with table.update_schema() as update_schema:\n"
        "    update_schema.union_by_name(df.schema)\n",
    )
    assert values(nb, "", "[f.name for f in table.schema().fields]") == [*COLUMNS, "tip_per_mile"]
    ok(nb, "table.overwrite(df)\nprint(table.scan().to_arrow())")
    got = values(
        nb,
        'df = table.scan(row_filter="tip_per_mile > 0").to_arrow()\nlen(df)',
        "[len(df), sorted(df['tip_per_mile'].to_pylist()), table.scan().to_arrow().num_rows]",
    )
    assert got == [4, [0.5, 0.5, 0.8, 1.0], 6], "the overwrite replaced the six rows; four have tips"


def test_delete_with_a_filter(nb, taxi):
    got = values(
        nb,
        "table.delete(delete_filter=\"payment_type == 'cash'\")",
        "[len(table.scan().to_arrow()), sorted(table.scan().to_pandas().payment_type.unique().tolist())]",
    )
    assert got == [4, ["card"]]


def test_add_column_then_append_with_it(nb, taxi):
    """The API page's ``add_column`` (with a doc string), then rows that fill it; the old rows read it as null."""
    ok(
        nb,
        "from pyiceberg.types import IntegerType\n"
        "\n"
        "with table.update_schema() as update:\n"
        '    update.add_column("passenger_count", IntegerType(), "Passengers on the trip")\n',
    )
    got = values(
        nb,
        "table = catalog.load_table(table.name())\n"
        "more = pa.table({'vendor_id': pa.array([3], pa.int64()), 'trip_distance': [3.0], 'tip_amount': [0.75],\n"
        "                 'payment_type': ['card'], 'passenger_count': pa.array([2], pa.int32())})\n"
        "table.append(more)\n"
        "counts = table.scan().to_pandas().passenger_count",
        "[[f.name for f in table.schema().fields], table.schema().find_field('passenger_count').doc, "
        "len(counts), int(counts.isna().sum()), counts.dropna().tolist()]",
    )
    assert got == [[*COLUMNS, "passenger_count"], "Passengers on the trip", 7, 6, [2]]


def test_snapshots_history_and_time_travel(nb, taxi):
    """Every write is a snapshot in ``inspect.snapshots()`` and ``inspect.history()``; ``scan(snapshot_id=...)``
    reads a table as it was."""
    counts = [values(nb, "", "len(table.inspect.snapshots())")]
    ok(nb, "table.append(df)")
    counts.append(values(nb, "", "len(table.inspect.snapshots())"))
    ok(nb, "table.delete(delete_filter=\"payment_type == 'cash'\")")
    counts.append(values(nb, "", "len(table.inspect.snapshots())"))
    assert counts == [1, 2, 3], "one snapshot per write, kept"

    got = values(
        nb,
        "snapshots = table.inspect.snapshots().sort_by('committed_at')\n"
        "history = table.inspect.history().sort_by('made_current_at')\n"
        "first, second, third = snapshots['snapshot_id'].to_pylist()\n"
        "old = table.scan(snapshot_id=first).to_arrow()\n"
        "mid = table.scan(snapshot_id=second).to_arrow()",
        # Arrow's lists, not pandas': a parent_id column with a null is float64 there, and ids lose digits.
        "[snapshots['operation'].to_pylist(), history['snapshot_id'].to_pylist() == [first, second, third], "
        "history['parent_id'].to_pylist() == [None, first, second], all(history['is_current_ancestor'].to_pylist()), "
        "old.num_rows, old['payment_type'].to_pylist().count('cash'), mid.num_rows, len(table.scan().to_arrow())]",
    )
    assert got[0][:2] == ["append", "append"] and got[0][2] in ("delete", "overwrite"), got
    assert got[1:] == [True, True, True, 6, 2, 12, 8], "time travel reads the rows the delete removed"


# -- Trino's Iceberg connector through %sql, then Spark -----------------------------------------------------------

READINGS = "readings"
first: dict = {}  # READINGS' first INSERT: its snapshot's id and commit time; the snapshot counts before and after


def snapshot_count(nb) -> int:
    return sql(nb, f'SELECT count(*) FROM "{READINGS}$snapshots"')[0][0]


@pytest.fixture(scope="module")
def readings(nb):
    """The connector page's table: made, then written twice; the first write's snapshot is kept in ``first``."""
    ok(
        nb,
        f"%%sql\nCREATE TABLE {READINGS} (meter_id bigint, city varchar, day date, kwh double)\n"
        "WITH (format = 'PARQUET', partitioning = ARRAY['city'])",
    )
    first["counts"] = [snapshot_count(nb)]  # Trino's CREATE TABLE may commit an empty snapshot already
    ok(
        nb,
        f"%%sql\nINSERT INTO {READINGS} VALUES (1, 'Bern', DATE '2026-01-01', 1.5), (2, 'Basel', DATE '2026-01-01', "
        "2.0), (3, 'Genf', DATE '2026-01-01', 3.0)",
    )
    [[first["id"], first["at"], first["ms"]]] = sql(
        nb,
        f"SELECT snapshot_id, CAST(committed_at AS varchar), CAST(to_unixtime(committed_at) * 1000 AS bigint) "
        f'FROM "{READINGS}$snapshots" ORDER BY committed_at DESC LIMIT 1',
    )
    first["counts"].append(snapshot_count(nb))
    ok(nb, f"%%sql\nINSERT INTO {READINGS} VALUES (4, 'Bern', DATE '2026-01-02', 4.0)")
    yield READINGS
    nb.execute(f"%sql DROP TABLE IF EXISTS {READINGS}")


def test_trino_snapshots_history_and_time_travel(nb, readings):
    made, after_first = first["counts"]
    assert after_first == made + 1 and snapshot_count(nb) == made + 2, "each INSERT is a snapshot, and all are kept"
    history = sql(
        nb, f'SELECT snapshot_id, parent_id, is_current_ancestor FROM "{readings}$history" ORDER BY made_current_at'
    )
    snapshots = sql(nb, f'SELECT snapshot_id, parent_id FROM "{readings}$snapshots" ORDER BY committed_at')
    assert [h[:2] for h in history] == snapshots and all(h[2] for h in history), (history, snapshots)
    assert history[-2][0] == first["id"] and history[-1][1] == first["id"], history

    assert sql(nb, f"SELECT count(*) FROM {readings}") == [[4]]
    assert sql(nb, f"SELECT meter_id FROM {readings} FOR VERSION AS OF {first['id']} ORDER BY meter_id") == [
        [1],
        [2],
        [3],
    ]
    assert sql(nb, f"SELECT count(*) FROM {readings} FOR TIMESTAMP AS OF TIMESTAMP '{first['at']}'") == [[3]]


def test_trino_merge_into(nb, readings):
    before = snapshot_count(nb)
    ok(
        nb,
        f"%%sql\nMERGE INTO {readings} t USING (VALUES (1, 10.0), (5, 5.0)) AS s (meter_id, kwh)\n"
        "ON t.meter_id = s.meter_id\n"
        "WHEN MATCHED THEN UPDATE SET kwh = s.kwh\n"
        "WHEN NOT MATCHED THEN INSERT (meter_id, city, day, kwh) VALUES (s.meter_id, 'Lima', DATE '2026-01-03', s.kwh)",
    )
    assert sql(nb, f"SELECT meter_id, kwh FROM {readings} ORDER BY meter_id") == [
        [1, 10.0],
        [2, 2.0],
        [3, 3.0],
        [4, 4.0],
        [5, 5.0],
    ]
    assert snapshot_count(nb) == before + 1
    assert sql(nb, f"SELECT count(*) FROM {readings} FOR VERSION AS OF {first['id']} WHERE kwh = 1.5") == [[1]]


def test_trino_optimize_compacts_files_and_keeps_the_rows(nb, readings):
    files = f'SELECT content, count(*) FROM "{readings}$files" GROUP BY content ORDER BY content'
    before = dict(map(tuple, sql(nb, files)))
    assert before.get(0, 0) > 4 and before.get(1, 0) >= 1, f"data files of 3 writes, the MERGE's deletes: {before}"
    snapshots = snapshot_count(nb)
    ok(nb, f"%%sql\nALTER TABLE {readings} EXECUTE optimize")
    after = dict(map(tuple, sql(nb, files)))
    assert after == {0: 4}, f"one data file per partition (4 cities), no delete files: {after}"
    assert snapshot_count(nb) == snapshots + 1
    assert sql(nb, f'SELECT operation FROM "{readings}$snapshots" ORDER BY committed_at DESC LIMIT 1') == [["replace"]]
    assert sql(nb, f"SELECT count(*), sum(kwh) FROM {readings}") == [[5, 24.0]]


def test_trino_schema_evolution(nb, readings):
    ok(nb, f"%%sql\nALTER TABLE {readings} ADD COLUMN tariff varchar")
    ok(nb, f"%%sql\nINSERT INTO {readings} VALUES (6, 'Bern', DATE '2026-02-01', 6.0, 'night')")
    ok(nb, f"%%sql\nALTER TABLE {readings} RENAME COLUMN kwh TO reading_kwh")
    ok(nb, f"%%sql\nALTER TABLE {readings} ADD COLUMN note varchar")
    ok(nb, f"%%sql\nALTER TABLE {readings} DROP COLUMN note")
    assert [r[0] for r in sql(nb, f"DESCRIBE {readings}")] == ["meter_id", "city", "day", "reading_kwh", "tariff"]
    assert sql(nb, f"SELECT meter_id, reading_kwh, tariff FROM {readings} WHERE meter_id IN (1, 6) ORDER BY 1") == [
        [1, 10.0, None],
        [6, 6.0, "night"],
    ]


def test_trino_partition_evolution(nb, readings):
    ok(nb, f"%%sql\nALTER TABLE {readings} SET PROPERTIES partitioning = ARRAY['city', 'month(day)']")
    shown = sql(nb, f"SHOW CREATE TABLE {readings}")[0][0]
    assert "partitioning = ARRAY['city','month(day)']" in shown, shown
    ok(nb, f"%%sql\nINSERT INTO {readings} VALUES (7, 'Oslo', DATE '2026-03-15', 7.0, 'day')")
    # Files written before keep the old spec (no month); the new one is partitioned by both.
    parts = sql(
        nb, f'SELECT partition.city, partition.day_month, record_count FROM "{readings}$partitions" ORDER BY 1, 2'
    )
    assert ["Oslo", 674, 1] in parts and ["Bern", None, 3] in parts, parts  # 674: months since 1970-01
    assert sql(nb, f"SELECT count(*) FROM {readings} WHERE day >= DATE '2026-03-01'") == [[1]]


def test_spark_reads_what_trino_wrote(nb, readings):
    got = values(
        nb,
        "from agp.kernels import spark\n"
        "session = spark()\n"
        f"t = session.table('{readings}')\n"
        f"kwh = session.sql('SELECT reading_kwh FROM {readings} WHERE meter_id = 1').collect()[0][0]\n"
        f"night = session.sql(\"SELECT meter_id FROM {readings} WHERE tariff = 'night'\").collect()\n"
        f"old = session.sql('SELECT count(*) FROM {readings} VERSION AS OF {first['id']}').collect()[0][0]\n"
        f"then = session.sql('SELECT count(*) FROM {readings} TIMESTAMP AS OF timestamp_millis({first['ms']})')"
        ".collect()[0][0]",
        "[t.count(), t.columns, kwh, [r[0] for r in night], old, then]",
    )
    assert got == [7, ["meter_id", "city", "day", "reading_kwh", "tariff"], 10.0, [6], 3, 3]


def test_spark_reads_the_metadata_tables(nb, ns, readings):
    """Iceberg's Spark page: ``db.table.snapshots`` and ``db.table.history`` (Spark asks the catalog for a table
    ``snapshots`` in namespace ``db.table`` first, and takes the metadata table when the catalog says there is no
    such table)."""
    got = values(
        nb,
        "from agp.kernels import spark\n"
        "session = spark()\n"
        f"snaps = session.sql('SELECT snapshot_id, operation FROM {ns}.{readings}.snapshots ORDER BY committed_at')"
        ".collect()\n"
        f"hist = session.sql('SELECT snapshot_id FROM {ns}.{readings}.history ORDER BY made_current_at').collect()",
        "[[r[0] for r in snaps], [r[1] for r in snaps], [r[0] for r in hist]]",
    )
    trino = sql(nb, f'SELECT snapshot_id, operation FROM "{readings}$snapshots" ORDER BY committed_at')
    assert got == [[t[0] for t in trino], [t[1] for t in trino], [t[0] for t in trino]]
    made = first["counts"][0]
    assert len(trino) == made + 6, "two inserts, the MERGE, optimize, an insert, an insert after the new spec"
