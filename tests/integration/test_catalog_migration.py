"""A Nessie lab's catalog moves into Apache Iceberg's REST catalog (``compose/catalog_migration.py``).

The source is a real Nessie 0.99 started here (``tests/catalogs.py``: the lab's jar and configuration, authentication
off, a temporary database), holding a namespace with properties and a ``location`` in a workspace-like bucket made
here, two tables written by several pyiceberg appends (Nessie 0.99 keeps each table's current snapshot only, so that
one is the history there is to move), a view with a Spark representation (made through the
REST API, as Spark makes it) and a table whose metadata file is gone (Nessie answers an error for it). The target is
the lab's own catalog, under a unique namespace removed afterwards (without purging: the files are the source's).
"""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pyarrow as pa
import pytest
from catalogs import CatalogServer, delete_prefix, nessie
from pyiceberg.schema import Schema
from pyiceberg.types import LongType, NestedField, StringType

from agp.compose.catalog_migration import Endpoint, Migration, Report
from agp.core import clients

pytestmark = pytest.mark.integration

SCHEMA = Schema(
    NestedField(1, "id", LongType(), required=False),
    NestedField(2, "city", StringType(), required=False),
)
ARROW = pa.schema([pa.field("id", pa.int64()), pa.field("city", pa.string())])
BATCHES = {  # table -> the rows of each append (one snapshot each)
    "a_meters": [[(1, "Lyon"), (2, "Nice")], [(3, "Metz")], [(4, "Caen"), (5, "Pau")]],
    "z_readings": [[(10, "Brest")], [(11, "Dijon")], [(12, "Lille")], [(13, "Reims")]],
}
LOST = "m_lost"  # listed by Nessie between the two tables, its metadata file missing
VIEW = "v_north"
VIEW_SQL = "SELECT id, city FROM a_meters WHERE city IN ('Metz', 'Caen')"


def _rows(table) -> list[tuple]:
    arrow = table.scan().to_arrow()
    return sorted(zip(arrow.column("id").to_pylist(), arrow.column("city").to_pylist(), strict=True))


def _make_view(server: CatalogServer, ns: str) -> None:
    """A view as Spark makes it through the Iceberg REST API: one SQL representation, dialect ``spark``."""
    schema = json.loads(SCHEMA.model_dump_json())
    body = {
        "name": VIEW,
        "schema": schema,
        "view-version": {
            "version-id": 1,
            "schema-id": 0,
            "timestamp-ms": int(time.time() * 1000),
            "summary": {"engine-name": "spark", "engine-version": "3.5.6"},
            "representations": [{"type": "sql", "sql": VIEW_SQL, "dialect": "spark"}],
            "default-namespace": [ns],
        },
        "properties": {"comment": "northern cities"},
    }
    r = httpx.post(f"{server.uri}/v1/{server.prefix}/namespaces/{ns}/views", json=body, headers=server.headers())
    assert r.status_code == 200, r.text


def _lose_a_table(server: CatalogServer, ns: str, location: str) -> None:
    """A table in Nessie whose metadata file does not exist (committed with Nessie's own API, as a table whose
    files were deleted behind the catalog's back looks)."""
    api = server.uri.removesuffix("/iceberg") + "/api/v2"
    head = httpx.get(f"{api}/trees/main").json()["reference"]["hash"]
    content = {
        "type": "ICEBERG_TABLE",
        "metadataLocation": f"{location}/{LOST}/metadata/00001-{uuid.uuid4()}.metadata.json",
        "snapshotId": 1,
        "schemaId": 0,
        "specId": 0,
        "sortOrderId": 0,
    }
    op = {"type": "PUT", "key": {"elements": [ns, LOST]}, "content": content}
    r = httpx.post(
        f"{api}/trees/main@{head}/history/commit",
        json={"commitMeta": {"message": "a table whose metadata is gone"}, "operations": [op]},
    )
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def moved(lab, s3, catalog, tmp_path_factory, request):
    """The source Nessie with its namespace, tables, view and lost table; both migration reports; the target."""
    settings = lab.settings
    if settings.catalog == "nessie":
        pytest.skip("the lab runs Nessie (AGP_CATALOG=nessie): there is no Iceberg REST catalog to migrate into")
    tag = uuid.uuid4().hex[:8]
    ns, bucket = f"migt_{tag}", f"agp-ws-migt-{tag}"
    location = f"s3://{bucket}/{ns}"
    properties = {"location": location, "comment": "moved from Nessie", "owner": "migration-test"}
    s3.create_bucket(Bucket=bucket)
    failed_before = request.session.testsfailed
    try:
        with nessie(settings, tmp_path_factory.mktemp("nessie")) as server:
            try:
                src = server.pyiceberg()
                src.create_namespace(ns, properties)
                for name, batches in BATCHES.items():
                    table = src.create_table(f"{ns}.{name}", SCHEMA)
                    for rows in batches:
                        table.append(pa.Table.from_pylist([dict(zip(ARROW.names, r, strict=True)) for r in rows]))
                _make_view(server, ns)
                _lose_a_table(server, ns, location)

                source = Endpoint(server.uri, server.prefix, lambda: "unused")  # Nessie runs without authentication
                token = clients.catalog_token(settings)
                target = Endpoint(settings.catalog_uri, settings.catalog_upstream_prefix, lambda: token)
                t0 = time.perf_counter()
                first = Migration(source, target).run()
                second = Migration(source, target).run()
                print(f"migrations: {first} / {second} in {time.perf_counter() - t0:.1f} s")
                yield {
                    "ns": ns,
                    "properties": properties,
                    "source": src,
                    "source_server": server,
                    "first": first,
                    "second": second,
                }
            finally:
                if request.session.testsfailed > failed_before:
                    print(f"--- tail of the test's Nessie log ({server.log}):\n{server.log_tail()}")
    finally:
        if (ns,) in catalog.list_namespaces():
            for view in catalog.list_views(ns):
                catalog.drop_view(view)
            for table in catalog.list_tables(ns):
                catalog.drop_table(table)  # not purged: its files are under the bucket removed next
            catalog.drop_namespace(ns)
        delete_prefix(s3, bucket, "")
        s3.delete_bucket(Bucket=bucket)


def test_first_run_copies_everything_and_reports_the_table_the_source_cannot_load(moved):
    first: Report = moved["first"]
    listed = [t[1] for t in moved["source"].list_tables(moved["ns"])]
    assert listed.index(LOST) < listed.index("z_readings")  # the run went on past the failure
    assert (first.namespaces, first.tables, first.views, first.kept) == (1, 2, 1, 0), str(first)
    assert [f.split(" (")[0] for f in first.failed] == [f"{moved['ns']}.{LOST}"], first.failed
    assert first.failed[0].startswith(f"{moved['ns']}.{LOST} (source answered 4"), first.failed  # Nessie: 400


def test_namespace_properties_are_the_same(moved, catalog):
    ns = moved["ns"]
    copied = catalog.load_namespace_properties(ns)
    assert copied == moved["source"].load_namespace_properties(ns)
    assert {k: copied.get(k) for k in moved["properties"]} == moved["properties"]


def test_tables_read_the_same_rows_with_their_snapshots(moved, catalog):
    ns, src = moved["ns"], moved["source"]
    assert sorted(t[1] for t in catalog.list_tables(ns)) == sorted(BATCHES)
    for name, batches in BATCHES.items():
        old, new = src.load_table(f"{ns}.{name}"), catalog.load_table(f"{ns}.{name}")
        assert new.metadata_location == old.metadata_location  # registered by reference, nothing copied
        assert [s.snapshot_id for s in new.snapshots()] == [s.snapshot_id for s in old.snapshots()]
        assert new.current_snapshot().snapshot_id == old.current_snapshot().snapshot_id
        assert _rows(new) == _rows(old) == sorted(r for rows in batches for r in rows)


def test_view_has_the_same_sql(moved, settings):
    ns = moved["ns"]
    r = httpx.get(
        f"{settings.catalog_uri}/v1/namespaces/{ns}/views/{VIEW}",
        headers={"Authorization": f"Bearer {clients.catalog_token(settings)}"},
    )
    assert r.status_code == 200, r.text
    meta = r.json()["metadata"]
    version = next(v for v in meta["versions"] if v["version-id"] == meta["current-version-id"])
    assert version["representations"] == [{"type": "sql", "sql": VIEW_SQL, "dialect": "spark"}]
    assert version["default-namespace"] == [ns]
    assert meta["properties"].get("comment") == "northern cities"
    schema = next(s for s in meta["schemas"] if s["schema-id"] == version["schema-id"])
    assert [f["name"] for f in schema["fields"]] == ["id", "city"]


def test_second_run_copies_nothing_new(moved):
    second: Report = moved["second"]
    assert (second.namespaces, second.tables, second.views) == (0, 0, 0), str(second)
    assert second.kept == 4, str(second)  # the namespace, both tables, the view
    assert [f.split(" (")[0] for f in second.failed] == [f"{moved['ns']}.{LOST}"]


def test_moved_table_takes_new_commits_in_the_new_catalog(moved, catalog):
    """Last: it writes. The catalog's own MinIO user writes the next metadata file beside Nessie's."""
    ns = moved["ns"]
    table = catalog.load_table(f"{ns}.a_meters")
    before = [s.snapshot_id for s in table.snapshots()]
    table.append(pa.Table.from_pylist([{"id": 6, "city": "Laon"}]))
    again = catalog.load_table(f"{ns}.a_meters")
    assert [s.snapshot_id for s in again.snapshots()][: len(before)] == before and len(again.snapshots()) == len(
        before
    ) + 1
    assert again.metadata_location.startswith(moved["properties"]["location"] + "/a_meters")
    assert _rows(again) == sorted([*(r for rows in BATCHES["a_meters"] for r in rows), (6, "Laon")])
