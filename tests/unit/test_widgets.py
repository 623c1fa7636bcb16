"""The catalog browser's tree, selection and SELECT statement, on a catalog given as plain data."""

from __future__ import annotations

from agp.kernels.widgets import CatalogBrowser, detail_html, select_statement

DETAIL = {
    "identifier": ["demo", "meter_readings"],
    "location": "s3://agp-ws-demo/meter_readings",
    "schema": [
        {"id": 1, "name": "meter_id", "type": "long", "required": True, "doc": None},
        {"id": 2, "name": "city", "type": "string", "required": False, "doc": None},
    ],
    "partition_spec": [{"source_id": 2, "name": "city", "transform": "identity"}],
    "snapshots": [
        {"snapshot_id": 1, "timestamp_ms": 1764115200000, "operation": "append"},
        {"snapshot_id": 2, "timestamp_ms": 1764118800000, "operation": "overwrite"},
    ],
    "current_snapshot_id": 2,
    "properties": {},
}


class Catalog:
    def __init__(self):
        self.calls = []

    def namespaces(self):
        return ["demo", "energy"]

    def tables(self, ns):
        self.calls.append(("tables", ns))
        return {"demo": ["meter_readings", "tariffs"], "energy": ["grid_load"]}[ns]

    def table(self, ns, t):
        self.calls.append(("table", ns, t))
        return {**DETAIL, "identifier": [ns, t]}


def keys(browser):
    return [key for _, key in browser.tree.options]


def test_namespaces_open_into_tables_and_tables_into_columns():
    cat = Catalog()
    b = CatalogBrowser(source=cat)
    assert keys(b) == [("ns", "demo"), ("ns", "energy")] and cat.calls == [], "tables load when opened"
    b.tree.value = ("ns", "demo")  # a click
    assert keys(b) == [
        ("ns", "demo"),
        ("table", "demo", "meter_readings"),
        ("table", "demo", "tariffs"),
        ("ns", "energy"),
    ]
    b.tree.value = ("table", "demo", "meter_readings")
    assert ("column", "demo", "meter_readings", "city") in keys(b)
    assert b.query.value == 'SELECT * FROM "demo"."meter_readings" LIMIT 100'
    assert not b.copy.disabled
    assert "identity(city)" in b.detail.value and "overwrite" in b.detail.value and "2025-11-26" in b.detail.value
    b.tree.value = ("column", "demo", "meter_readings", "city")
    assert b.query.value == 'SELECT "city" FROM "demo"."meter_readings" LIMIT 100'
    b.tree.value = ("ns", "demo")
    assert keys(b) == [("ns", "demo"), ("ns", "energy")], "a second click closes it"
    assert cat.calls.count(("table", "demo", "meter_readings")) == 1, "details are read once"


def test_search_shows_matching_tables_in_every_namespace():
    b = CatalogBrowser(source=Catalog())
    b.search.value = "GRID"
    assert keys(b) == [("ns", "energy"), ("table", "energy", "grid_load")]
    b.search.value = "nothing-matches"
    assert keys(b) == [] and "0 tables" in b.status.value


def test_an_unreadable_catalog_is_a_message_not_an_exception():
    class Broken(Catalog):
        def namespaces(self):
            raise RuntimeError("The workspace server could not list /namespaces: HTTP 503")

    b = CatalogBrowser(source=Broken())
    assert "HTTP 503" in b.status.value


def test_select_statement_quotes_identifiers():
    assert select_statement('we"ird', "t", limit=5) == 'SELECT * FROM "we""ird"."t" LIMIT 5'


def test_detail_lists_snapshots_newest_first_and_escapes_names():
    text = detail_html({**DETAIL, "identifier": ["demo", "<b>x</b>"]})
    assert text.index("overwrite") < text.index("append")
    assert "<b>x</b>" not in text and "&lt;b&gt;x&lt;/b&gt;" in text
