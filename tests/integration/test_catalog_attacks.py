"""Attacks on the Iceberg REST catalog that replaced Nessie (AgpRestCatalog.java: Iceberg's RESTCatalogServlet over a
JDBC catalog) and on the proxy's handling of it, by a member of workspace A against workspace B.

Each test below that fails documents an open hole, named FINDING n in its docstring, with the fix it needs:

FINDING 1  A view whose dialect Java reads as Trino's ("tr\u0131no", "TR\u0130NO") passes the proxy's Python check
           (``"trino" in dialect.casefold()``); Trino runs it (Iceberg's ``sqlFor``/``equalsIgnoreCase``), so
           alice swaps the SQL of a view that a definer view (made by the platform or an admin) selects from,
           and reads B's rows through it.
FINDING 2  ``DELETE .../tables/{t}?purgeRequested=true`` (and Trino's DROP TABLE, which always purges) makes the
           catalog delete every file the table's manifests name, with its own S3 user that reaches every
           workspace bucket: a manifest list alice writes into A's bucket (the proxy checks its location only)
           names B's objects, and the catalog deletes them.
FINDING 3  A body the catalog cannot parse comes back as Jetty's HTML error page with the server's full stack
           trace (versions, classes, the upstream path): the proxy strips ``stack`` from JSON errors only.
FINDING 4  Table properties that pyiceberg reads as client configuration (``py-io-impl``, ``s3.endpoint``,
           ``s3.signer.uri``, ...) are accepted: an editor chooses the Python class every other reader's kernel
           imports and instantiates for the table, and where its S3 requests (with their vended session token)
           go; the reader's hub token sits in the same FileIO properties.

The module makes its own two workspaces and removes them after.
"""

from __future__ import annotations

import http.client
import json
import time

import pytest
import trino
from conftest import query_rows, two_workspaces

from agp.core import clients
from agp.kernels.credentials import load_catalog as broker_catalog
from agp.kernels.credentials import s3_client as broker_s3
from agp.kernels.credentials import trino_connect as broker_trino

pytestmark = pytest.mark.integration

SCHEMA_V = {"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "v", "type": "string", "required": False}]}
SCHEMA_X = {"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "x", "type": "long", "required": False}]}


@pytest.fixture(scope="module")
def ab(admin_api, user_api, settings, hub_url):
    """Workspaces A (alice, editor) and B (bob, editor), each with a table `secrets` holding its own value."""
    with two_workspaces("ca", admin_api, user_api, settings, hub_url) as ws:
        try:
            yield ws
        finally:
            with clients.trino_connect(settings) as conn:
                cur = conn.cursor()
                for view in ("report", "feed", "peek"):
                    try:
                        cur.execute(f'DROP VIEW IF EXISTS iceberg."{ws["sa"]}".{view}')
                        cur.fetchall()
                    except trino.exceptions.TrinoQueryError:
                        pass  # the schema was never made


def proxy(settings, token: str, method: str, path: str, body: dict | None = None) -> tuple[int, str, str]:
    """One call to the catalog proxy on the service's own port, as a notebook would send it."""
    conn = http.client.HTTPConnection(settings.host, settings.ports.workspaces, timeout=60)
    data = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    conn.request(method, "/services/workspaces/iceberg/" + path, body=data, headers=headers)
    r = conn.getresponse()
    out = (r.status, r.read().decode(errors="replace"), r.getheader("content-type") or "")
    conn.close()
    return out


def _version(version_id: int, namespace: str, sql: str, dialect: str) -> dict:
    return {
        "version-id": version_id,
        "timestamp-ms": int(time.time() * 1000),
        "schema-id": 0,
        "summary": {"engine-name": "spark"},
        "default-namespace": [namespace],
        "default-catalog": "iceberg",
        "representations": [{"type": "sql", "sql": sql, "dialect": dialect}],
    }


# -- FINDING 1


@pytest.mark.parametrize("dialect", ["tr\u0131no", "TR\u0130NO"])  # dotless i; capital I with dot
def test_a_dialect_that_java_reads_as_trino_is_refused(ab, settings, dialect):
    """FINDING 1 (part): Java's ``"trino".equalsIgnoreCase(dialect)`` holds for these, Python's casefold does not.
    Fix: ``check_view_version`` refuses a dialect that is not plain ASCII (or allowlists ``spark``, ...)."""
    sql = f'SELECT v FROM iceberg."{ab["sb"]}".secrets'
    body = {"name": "peek", "schema": SCHEMA_V, "view-version": _version(1, ab["sa"], sql, dialect), "properties": {}}
    status, text, _ = proxy(settings, ab["token"], "POST", f"v1/agp/namespaces/{ab['sa']}/views", body)
    if status == 200:
        proxy(settings, ab["token"], "DELETE", f"v1/agp/namespaces/{ab['sa']}/views/peek")
    assert status in (400, 403), (
        f"FINDING 1: a view in Trino's dialect spelt {dialect!r} was made: HTTP {status} {text[:150]}"
    )


def test_a_definer_view_over_alices_view_never_reads_b(ab, settings):
    """FINDING 1: alice's invoker view `feed` (harmless, made with Trino); the platform makes `report`, a definer
    view over it, in A; alice swaps feed's SQL through the catalog with a "tr\u0131no" representation and reads B's
    table through `report`, with the definer's rights."""
    alice = broker_trino(ab["alice"])
    sa, sb = ab["sa"], ab["sb"]
    query_rows(alice, f"CREATE VIEW \"{sa}\".feed SECURITY INVOKER AS SELECT 'harmless' AS v")
    with clients.trino_connect(settings) as conn:  # an admin or the platform publishes a report in A
        cur = conn.cursor()
        cur.execute(f'CREATE VIEW iceberg."{sa}".report SECURITY DEFINER AS SELECT v FROM iceberg."{sa}".feed')
        cur.fetchall()
    assert query_rows(broker_trino(ab["alice"]), f'SELECT * FROM "{sa}".report') == [["harmless"]]
    _, text, _ = proxy(settings, ab["token"], "GET", f"v1/agp/namespaces/{sa}/views/feed")
    meta = json.loads(text)["metadata"]
    swap = {
        "requirements": [{"type": "assert-view-uuid", "uuid": meta["view-uuid"]}],
        "updates": [
            {"action": "set-properties", "updates": {"replace.drop-dialect.allowed": "true"}},
            {
                "action": "add-view-version",
                "view-version": _version(2, sa, f'SELECT v FROM iceberg."{sb}".secrets', "tr\u0131no"),
            },
            {"action": "set-current-view-version", "view-version-id": -1},
        ],
    }
    proxy(settings, ab["token"], "POST", f"v1/agp/namespaces/{sa}/views/feed", swap)
    try:
        rows = query_rows(broker_trino(ab["alice"]), f'SELECT * FROM "{sa}".report')
    except Exception as e:  # a refusal of any kind is the right outcome
        rows = str(e)
    assert f"{ab['b']}-secret" not in str(rows), f"FINDING 1: alice read B's table through a definer view: {rows}"


# -- FINDING 2


def test_a_purge_deletes_nothing_outside_the_tables_workspace(ab, settings):
    """FINDING 2: the catalog purges with its own S3 user, deleting what the table's manifest list names.
    Fix: the proxy never forwards ``purgeRequested`` (it drops, then deletes the table's files under its location
    with the namespace's own bucket-scoped credential), or AgpRestCatalog overrides ``dropTable(ident, true)`` to
    delete through a FileIO that refuses every path outside the table's own bucket; Trino's DROP TABLE purges too."""
    from pyiceberg.manifest import ManifestContent, ManifestFile, write_manifest_list

    a_bucket, b_bucket = f"agp-ws-{ab['a']}", f"agp-ws-{ab['b']}"
    root = clients.s3_client(settings)
    key = "known/part-00000.parquet"  # any key of B's that alice has learnt (a former member, a shared notebook)
    root.put_object(Bucket=b_bucket, Key=key, Body=b"B's data")
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError):  # alice's own credential cannot delete it
        broker_s3(ab["alice"]).delete_object(Bucket=b_bucket, Key=key)
    sa, token = ab["sa"], ab["token"]
    made = proxy(settings, token, "POST", f"v1/agp/namespaces/{sa}/tables", {"name": "decoy", "schema": SCHEMA_X})
    assert made[0] == 200, made[1]
    table = broker_catalog(ab["alice"]).load_table(f"{sa}.decoy")
    manifest_list = f"s3://{a_bucket}/decoy/metadata/snap-666.avro"
    with write_manifest_list(2, table.io.new_output(manifest_list), 666, None, 1, "null") as writer:
        writer.add_manifests(
            [
                ManifestFile.from_args(
                    manifest_path=f"s3://{b_bucket}/{key}",
                    manifest_length=8,
                    partition_spec_id=0,
                    content=ManifestContent.DATA,
                    sequence_number=1,
                    min_sequence_number=1,
                    added_snapshot_id=666,
                    added_files_count=1,
                    existing_files_count=0,
                    deleted_files_count=0,
                    added_rows_count=1,
                    existing_rows_count=0,
                    deleted_rows_count=0,
                )
            ]
        )
    snapshot = {
        "snapshot-id": 666,
        "sequence-number": 1,
        "timestamp-ms": int(time.time() * 1000),
        "manifest-list": manifest_list,
        "summary": {"operation": "append"},
        "schema-id": 0,
    }
    commit = {
        "requirements": [],
        "updates": [
            {"action": "add-snapshot", "snapshot": snapshot},
            {"action": "set-snapshot-ref", "ref-name": "main", "type": "branch", "snapshot-id": 666},
        ],
    }
    proxy(settings, token, "POST", f"v1/agp/namespaces/{sa}/tables/decoy", commit)
    proxy(settings, token, "DELETE", f"v1/agp/namespaces/{sa}/tables/decoy?purgeRequested=true")
    proxy(settings, token, "DELETE", f"v1/agp/namespaces/{sa}/tables/decoy")  # in case the purge was refused
    try:
        found = root.head_object(Bucket=b_bucket, Key=key)["ContentLength"] == 8
    except Exception:  # gone
        found = False
    root.delete_object(Bucket=b_bucket, Key=key)
    assert found, f"FINDING 2: a purge of A's table deleted s3://{b_bucket}/{key}"


# -- FINDING 3


def test_a_body_the_catalog_cannot_read_comes_back_without_its_stack(ab, settings):
    """FINDING 3. Fix: AgpRestCatalog sets an ErrorHandler that writes an Iceberg error object without stacks
    (``setShowStacks(false)``, ``setShowServlet(false)``), and the proxy answers a non-JSON upstream error with an
    error object of its own (the body to the service's log)."""
    bad = {"name": "bad", "schema": {"type": "struct", "fields": [{"id": 1, "name": "x", "type": "nope"}]}}
    status, text, ctype = proxy(settings, ab["token"], "POST", f"v1/agp/namespaces/{ab['sa']}/tables", bad)
    assert status >= 400
    assert "\tat org." not in text and "Jetty" not in text, f"FINDING 3: HTTP {status} {ctype}: {text[:300]}"
    assert ctype.startswith("application/json"), f"FINDING 3: the error is {ctype}, not an Iceberg error object"


# -- FINDING 4


@pytest.mark.parametrize(
    "key, value",
    [
        ("py-io-impl", "pyiceberg.io.fsspec.FsspecFileIO"),
        ("s3.endpoint", "http://127.0.0.1:9/"),
        ("s3.signer.uri", "http://127.0.0.1:9/"),
        ("s3.proxy-uri", "http://127.0.0.1:9/"),
    ],
)
def test_table_properties_do_not_configure_other_readers_clients(ab, settings, key, value):
    """FINDING 4: pyiceberg builds a loaded table's FileIO from {catalog properties, table properties, the
    answer's config}. Fix: ``check_properties`` refuses the client-configuration namespaces (``py-``, ``s3.``,
    ``client.``, ``header.``, ``gcs.``, ``adls.``, ``hf.``, ``oss.``, ``io-impl``, ``token``, ``uri``,
    ``credential``) in table and view properties, or the proxy drops them from load answers."""
    path = f"v1/agp/namespaces/{ab['sa']}/tables/secrets"
    body = {"requirements": [], "updates": [{"action": "set-properties", "updates": {key: value}}]}
    status, _, _ = proxy(settings, ab["token"], "POST", path, body)
    if status == 200:
        undo = {"requirements": [], "updates": [{"action": "remove-properties", "removals": [key]}]}
        proxy(settings, ab["token"], "POST", path, undo)
    assert status == 403, f"FINDING 4: table property {key}={value} accepted: HTTP {status}"
