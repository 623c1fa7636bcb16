"""The adversarial suite: alice, an editor of workspace A, attacks workspace B (bob's) through every door with what a
notebook has (her server's hub token, her own brokered credentials), by the paths and bodies the penetration test
used and their variants. Every attempt that lets her read, change or delete anything of B's counts as a leak; the
module prints attempts, denials and leaks, and fails on one leak.

Doors here: the catalog proxy through the hub and on the service's own port (paths that normalize differently in
two layers, bodies that point elsewhere, view owners), Trino (views, schemas, tables whose files lie elsewhere), and
the workspace service's own checks. Nessie, Keycloak, PostgreSQL and the files a kernel can read have their own
tests beside this one.
"""

from __future__ import annotations

import http.client
import json
import time
from urllib.parse import urlsplit

import pytest
import trino
from conftest import query_rows

from agp.core import clients
from agp.kernels.credentials import trino_connect as broker_trino

pytestmark = pytest.mark.integration

COUNTS = {"attempts": 0, "denials": 0, "leaks": 0}
LEAKS: list[str] = []


def _leak(what: str) -> None:
    COUNTS["leaks"] += 1
    LEAKS.append(what)
    pytest.fail(f"LEAK: {what}")


@pytest.fixture(scope="module")
def ab(admin_api, user_api, settings, hub_url):
    """Workspaces A (alice, editor) and B (bob, editor), each with a table `secrets` holding its own value."""
    from conftest import two_workspaces

    with two_workspaces("bd", admin_api, user_api, settings, hub_url) as ws:
        catalog = clients.load_catalog(settings)
        ws["b_metadata"] = catalog.load_table(f"{ws['sb']}.secrets").metadata_location
        ws["b_location"] = catalog.load_table(f"{ws['sb']}.secrets").location()
        yield ws
        with clients.trino_connect(settings) as conn:
            cur = conn.cursor()
            for view in ("peek", "owned"):
                cur.execute(f'DROP VIEW IF EXISTS iceberg."{ws["sa"]}".{view}')
                cur.fetchall()
    print(f"\nboundary suite: {COUNTS['attempts']} attempts, {COUNTS['denials']} denials, {COUNTS['leaks']} leaks")
    for leak in LEAKS:
        print(f"  LEAK: {leak}")


def _b_is_intact(settings, ab) -> None:
    """B's table still exists, with its one row, where it was."""
    table = clients.load_catalog(settings).load_table(f"{ab['sb']}.secrets")
    assert table.scan().to_arrow().to_pydict() == {"v": [f"{ab['b']}-secret"]}, "B's table changed"
    assert table.location() == ab["b_location"]


def _bases(settings, hub_url) -> dict[str, str]:
    return {
        "through the hub": f"{hub_url}/services/workspaces/iceberg",
        "on the service's own port": f"http://{settings.host}:{settings.ports.workspaces}/services/workspaces/iceberg",
    }


def raw_request(base: str, path: str, token: str, method: str = "GET", body: dict | None = None):
    """Send ``path`` byte for byte (no client-side normalization of dot segments or encodings)."""
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    conn.request(method, url.path + "/" + path, body=data, headers=headers)
    r = conn.getresponse()
    out = (r.status, r.read().decode(errors="replace"))
    conn.close()
    return out


def attempt(status_body, secret: str, what: str, ok_status: frozenset[int] = frozenset()) -> None:
    """A refusal is any 4xx/5xx that carries nothing of B; a 2xx (or ``secret`` in the answer) is a leak."""
    COUNTS["attempts"] += 1
    status, body = status_body
    if secret in body or (200 <= status < 300 and status not in ok_status):
        _leak(f"{what}: HTTP {status} {body[:200]}")
    COUNTS["denials"] += 1


# -- 1. the path the proxy authorizes is the path it forwards


PATH_TRICKS = [
    "v1/main/namespaces/{A}/../{B}/tables/secrets",
    "v1/main/namespaces/{A}/%2E%2E/{B}/tables/secrets",
    "v1/main/namespaces/{A}/%2e%2e/{B}/tables/secrets",
    "v1/main/namespaces/{A}/.%2E/{B}/tables/secrets",
    "v1/main/namespaces/{A}/%252E%252E/{B}/tables/secrets",
    "v1/main/namespaces/{A}/./../{B}/tables/secrets",
    "v1/main/namespaces/{A}%2F..%2F{B}/tables/secrets",
    "v1/main/namespaces/{A}%2f%2e%2e%2f{B}/tables/secrets",
    "v1/main/namespaces/{A}%5C..%5C{B}/tables/secrets",
    "v1/main/namespaces/{A}\\..\\{B}/tables/secrets",
    "v1/main/namespaces/{A}/tables/..%2F..%2F{B}%2Ftables%2Fsecrets",
    "v1/main/namespaces/{A}/tables/../../{B}/tables/secrets",
    "v1/main/namespaces//{B}/tables/secrets",
    "v1/main/namespaces/{A}//../{B}/tables/secrets",
    "v1/main/namespaces/{B}%00/tables/secrets",
    "v1/main/namespaces/{A}%1F..%1F{B}/tables/secrets",
    "v1/main/namespaces/{A}/../../../../api/v2/trees/main/entries",
    "v1/main/namespaces/{A}/%2E%2E/%2E%2E/%2E%2E/%2E%2E/api/v2/trees",
    "v1/../../api/v2/trees",
    "v1/main/namespaces/{A}/tables/secrets/../../../{B}/tables/secrets",
]


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
@pytest.mark.parametrize("where", ["through the hub", "on the service's own port"])
def test_catalog_paths_that_normalize_elsewhere_are_refused(ab, settings, hub_url, method, where):
    base = _bases(settings, hub_url)[where]
    body = {"requirements": [], "updates": [{"action": "set-properties", "updates": {"owned-by": "alice"}}]}
    for template in PATH_TRICKS:
        path = template.format(A=ab["sa"], B=ab["sb"])
        got = raw_request(base, path, ab["token"], method, body if method == "POST" else None)
        attempt(got, f"{ab['b']}-secret", f"{method} {path} {where}")
        assert got[0] in (400, 401, 403, 404, 405), f"{method} {path}: HTTP {got[0]}"
        answer = json.loads(got[1]) if got[1].startswith("{") else {}
        # The hub's proxy resolves some dot segments itself: those land outside the catalog (a plain 404).
        assert "error" in answer or answer.get("detail") == "Not Found" or got[0] == 401, got[1]
    _b_is_intact(settings, ab)


def test_refusals_are_iceberg_error_objects_that_pyiceberg_prints(ab):
    from pyiceberg.exceptions import ForbiddenError, RESTError

    from agp.kernels.credentials import load_catalog

    catalog = load_catalog(ab["alice"])
    with pytest.raises((ForbiddenError, RESTError)) as e:
        catalog.create_namespace("not_provisioned")
    assert "provisioning" in str(e.value) and "Field required" not in str(e.value)


# -- 2. bodies that point elsewhere


def _post(ab, base: str, path: str, body: dict, method: str = "POST"):
    return raw_request(base, path, ab["token"], method, body)


def test_catalog_bodies_that_point_into_another_bucket_are_refused(ab, settings, hub_url):
    base = _bases(settings, hub_url)["on the service's own port"]
    a, b = ab["sa"], ab["sb"]
    b_bucket = f"s3://agp-ws-{ab['b']}/"
    schema = {"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "x", "type": "long", "required": False}]}
    attacks = {
        "register B's metadata in A": (
            f"v1/main/namespaces/{a}/register",
            {"name": "stolen", "metadata-location": ab["b_metadata"]},
        ),
        "register a traversing metadata path": (
            f"v1/main/namespaces/{a}/register",
            {"name": "stolen2", "metadata-location": f"s3://agp-ws-{ab['a']}/../agp-ws-{ab['b']}/x.metadata.json"},
        ),
        "create a table in A located in B": (
            f"v1/main/namespaces/{a}/tables",
            {"name": "inb", "schema": schema, "location": b_bucket + "inb"},
        ),
        "create a table in A writing data to B": (
            f"v1/main/namespaces/{a}/tables",
            {"name": "inb2", "schema": schema, "properties": {"write.data.path": b_bucket + "d"}},
        ),
        "move A's table into B's bucket": (
            f"v1/main/namespaces/{a}/tables/secrets",
            {"requirements": [], "updates": [{"action": "set-location", "location": b_bucket + "x"}]},
        ),
        "point A's writes into B's bucket": (
            f"v1/main/namespaces/{a}/tables/secrets",
            {"updates": [{"action": "set-properties", "updates": {"write.metadata.path": b_bucket + "m"}}]},
        ),
        "a snapshot whose manifest list is B's": (
            f"v1/main/namespaces/{a}/tables/secrets",
            {
                "updates": [
                    {
                        "action": "add-snapshot",
                        "snapshot": {
                            "snapshot-id": 9,
                            "timestamp-ms": 1,
                            "manifest-list": b_bucket + "m.avro",
                            "summary": {"operation": "append"},
                        },
                    }
                ]
            },
        ),
        "move A's namespace into B's bucket": (
            f"v1/main/namespaces/{a}/properties",
            {"updates": {"location": b_bucket}, "removals": []},
        ),
        "remove A's namespace location": (
            f"v1/main/namespaces/{a}/properties",
            {"updates": {}, "removals": ["location"]},
        ),
        "rename B's table into A": (
            "v1/main/tables/rename",
            {"source": {"namespace": [b], "name": "secrets"}, "destination": {"namespace": [a], "name": "stolen"}},
        ),
        "rename A's table into B": (
            "v1/main/tables/rename",
            {"source": {"namespace": [a], "name": "secrets"}, "destination": {"namespace": [b], "name": "planted"}},
        ),
        "commit to B in a transaction": (
            "v1/main/transactions/commit",
            {
                "table-changes": [
                    {"identifier": {"namespace": [b], "name": "secrets"}, "requirements": [], "updates": []}
                ]
            },
        ),
        "commit to B hidden behind A in a transaction": (
            "v1/main/transactions/commit",
            {
                "table-changes": [
                    {"identifier": {"namespace": [a], "name": "secrets"}, "requirements": [], "updates": []},
                    {"identifier": {"namespace": [b], "name": "secrets"}, "requirements": [], "updates": []},
                ]
            },
        ),
        "a commit whose body names B's table": (
            f"v1/main/namespaces/{a}/tables/secrets",
            {"identifier": {"namespace": [b], "name": "secrets"}, "requirements": [], "updates": []},
        ),
        "create a namespace": ("v1/main/namespaces", {"namespace": ["planted"], "properties": {}}),
    }
    for what, (path, body) in attacks.items():
        got = _post(ab, base, path, body)
        attempt(got, f"{ab['b']}-secret", what)
        assert got[0] in (400, 403, 404), f"{what}: HTTP {got[0]} {got[1][:200]}"
    attempt(
        raw_request(base, f"v1/main/namespaces/{a}", ab["token"], "DELETE"), f"{ab['b']}-secret", "drop A's namespace"
    )
    _b_is_intact(settings, ab)
    catalog = clients.load_catalog(settings)
    a_table = catalog.load_table(f"{a}.secrets")
    assert a_table.location().startswith(f"s3://agp-ws-{ab['a']}/")
    assert not any(k.endswith((".path", "location")) for k in a_table.properties), a_table.properties
    assert catalog.load_namespace_properties(a)["location"] == f"s3://agp-ws-{ab['a']}/"
    assert {t[1] for t in catalog.list_tables(a)} == {"secrets"}


def test_a_registered_metadata_file_must_keep_the_table_in_the_bucket(ab, settings, hub_url):
    """alice may write any file into A's bucket: one that names B's bucket as the table's location is refused, as
    the catalog would write the table's next metadata files there; A's own metadata registers."""
    from agp.kernels.credentials import s3_client

    base = _bases(settings, hub_url)["on the service's own port"]
    s3 = s3_client(ab["alice"])
    own = clients.load_catalog(settings).load_table(f"{ab['sa']}.secrets").metadata_location
    bucket, _, key = own.removeprefix("s3://").partition("/")
    metadata = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    for what, change in {
        "location": {"location": ab["b_location"]},
        "write path": {"properties": {**metadata.get("properties", {}), "write.metadata.path": ab["b_location"]}},
    }.items():
        crafted = f"crafted/{what.replace(' ', '-')}.metadata.json"
        s3.put_object(Bucket=bucket, Key=crafted, Body=json.dumps({**metadata, **change}).encode())
        got = _post(
            ab,
            base,
            f"v1/main/namespaces/{ab['sa']}/register",
            {"name": "crafted", "metadata-location": f"s3://{bucket}/{crafted}"},
        )
        attempt(got, f"{ab['b']}-secret", f"register metadata whose {what} is B's bucket")
        assert got[0] == 403 and "bucket" in got[1], got
    got = _post(ab, base, f"v1/main/namespaces/{ab['sa']}/register", {"name": "again", "metadata-location": own})
    assert got[0] == 200, got
    clients.load_catalog(settings).drop_table(f"{ab['sa']}.again")
    _b_is_intact(settings, ab)


def test_catalog_writes_and_refusals_are_audited(ab, admin_api, settings, hub_url):
    import pyarrow as pa

    from agp.kernels.credentials import load_catalog

    base = _bases(settings, hub_url)["through the hub"]
    load_catalog(ab["alice"]).create_table(f"{ab['sa']}.audited", schema=pa.schema([("x", pa.int64())]))
    _post(ab, base, f"v1/main/namespaces/{ab['sa']}/properties", {"updates": {"location": "s3://elsewhere/"}})
    events = admin_api("GET", f"/workspaces/{ab['a']}/audit").json()
    made = [e for e in events if e["action"] == "catalog.table.create" and e["outcome"] == "ok"]
    assert made and made[0]["actor"] == "alice" and made[0]["detail"]["name"] == "audited"
    refused = [e for e in events if e["action"] == "catalog.namespace.properties" and e["outcome"] == "refused"]
    assert refused and refused[0]["actor"] == "alice" and "bucket" in refused[0]["detail"]["reason"]


# -- 3. views run as their invoker unless Trino made them


def _view_body(name: str, sql: str, properties: dict) -> dict:
    schema = {"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "v", "type": "string", "required": False}]}
    return {
        "name": name,
        "schema": schema,
        "view-version": {
            "version-id": 1,
            "timestamp-ms": int(time.time() * 1000),
            "schema-id": 0,
            "summary": {"engine-name": "trino"},
            "default-namespace": [],
            "representations": [{"type": "sql", "sql": sql, "dialect": "trino"}],
        },
        "properties": properties,
    }


@pytest.mark.parametrize("owner", ["admin", "agp-service", "bob"])
def test_a_view_owner_cannot_be_spoofed_through_the_catalog(ab, settings, hub_url, owner):
    base = _bases(settings, hub_url)["through the hub"]
    sql = f'SELECT v FROM iceberg."{ab["sb"]}".secrets'
    got = _post(
        ab,
        base,
        f"v1/main/namespaces/{ab['sa']}/views",
        _view_body(f"v_{owner.replace('-', '_')}", sql, {"trino.run-as-owner": owner}),
    )
    attempt(got, f"{ab['b']}-secret", f"a view in A that runs as {owner}")
    assert got[0] == 403 and "trino.run-as-owner" in got[1]


def test_views_that_trino_runs_are_made_with_trino_only(ab, settings, hub_url):
    """A view made through the catalog may carry Spark's SQL, never Trino's: Trino would run it unchecked (nested in
    a view that runs as its owner, with the owner's rights)."""
    base = _bases(settings, hub_url)["through the hub"]
    sql = f'SELECT v FROM iceberg."{ab["sb"]}".secrets'
    got = _post(ab, base, f"v1/main/namespaces/{ab['sa']}/views", _view_body("peek", sql, {}))
    attempt(got, f"{ab['b']}-secret", "a Trino view of B's table made through the catalog")
    assert got[0] == 403, got
    spark = _view_body("peek", f"SELECT v FROM {ab['sb']}.secrets", {})
    spark["view-version"]["representations"][0]["dialect"] = "spark"
    got = _post(ab, base, f"v1/main/namespaces/{ab['sa']}/views", spark)
    assert got[0] == 200, got
    COUNTS["attempts"] += 1
    with pytest.raises(trino.exceptions.TrinoQueryError) as e:
        query_rows(broker_trino(ab["alice"]), f'SELECT * FROM "{ab["sa"]}".peek')
    assert f"{ab['b']}-secret" not in str(e.value)
    COUNTS["denials"] += 1


def test_a_body_with_a_key_twice_is_refused_not_read_two_ways(ab, settings, hub_url):
    """The penetration test's critical finding: Python's parser keeps the last of two keys, the catalog's the first;
    a set-properties that the proxy read as remove-properties made a view run as admin."""
    base = _bases(settings, hub_url)["on the service's own port"]
    path = f"v1/main/namespaces/{ab['sa']}/tables/secrets"
    for body in (
        '{"requirements":[],"updates":[{"action":"set-properties","action":"remove-properties","removals":[],'
        f'"updates":{{"write.data.path":"s3://agp-ws-{ab["b"]}/dup"}}}}]}}',
        '{"updates":[],"updates":[{"action":"set-location","location":"s3://agp-ws-x/"}]}',
    ):
        url = urlsplit(base)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        conn.request(
            "POST", f"{url.path}/{path}", body=body.encode(), headers={"Authorization": f"Bearer {ab['token']}"}
        )
        r = conn.getresponse()
        got = (r.status, r.read().decode())
        conn.close()
        attempt(got, f"{ab['b']}-secret", "a commit body with a key twice")
        assert got[0] == 400, got
    assert "write.data.path" not in clients.load_catalog(settings).load_table(f"{ab['sa']}.secrets").properties


def test_malformed_bodies_get_a_400_and_are_audited_never_a_500(ab, settings, hub_url, admin_api):
    base = _bases(settings, hub_url)["on the service's own port"]
    a = ab["sa"]
    for path, body in (
        (
            f"v1/main/namespaces/{a}/tables/secrets",
            {"updates": [{"action": "add-snapshot", "snapshot": "manifest-list"}]},
        ),
        (f"v1/main/namespaces/{a}/tables/secrets", {"updates": [{"action": "set-statistics", "statistics": [1]}]}),
        ("v1/main/transactions/commit", {"table-changes": ["x"]}),
        (f"v1/main/namespaces/{a}/tables", {"name": "sur\ud800x", "schema": {"type": "struct", "fields": []}}),
    ):
        got = _post(ab, base, path, body)
        assert got[0] == 400, (path, body, got)
    deep = '{"updates":' + "[" * 100_000 + "]" * 100_000 + "}"
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    conn.request(
        "POST",
        f"{url.path}/v1/main/namespaces/{a}/tables/secrets",
        body=deep.encode(),
        headers={"Authorization": f"Bearer {ab['token']}"},
    )
    assert conn.getresponse().status == 400
    conn.close()
    r = admin_api("GET", f"/workspaces/{ab['a']}/audit", params={"limit": 50})
    assert r.status_code == 200, "the audit log stays readable"
    assert any(e["outcome"] == "refused" and e["detail"].get("status") == 400 for e in r.json())


def test_probes_of_another_workspace_are_audited(ab, settings, hub_url, admin_api):
    base = _bases(settings, hub_url)["through the hub"]
    raw_request(base, f"v1/main/namespaces/{ab['sb']}/tables/secrets/credentials", ab["token"])
    events = admin_api("GET", f"/workspaces/{ab['b']}/audit", params={"limit": 20}).json()
    assert any(
        e["actor"] == "alice" and e["action"] == "catalog.table.credentials" and e["outcome"] == "refused"
        for e in events
    )


def test_namespace_pages_spell_no_other_workspace(ab, settings, hub_url):
    """The catalog's page tokens encode the namespace they continue from: a user gets her namespaces in one page."""
    base = _bases(settings, hub_url)["through the hub"]
    status, body = raw_request(base, "v1/main/namespaces?pageSize=1", ab["token"])
    assert status == 200
    doc = json.loads(body)
    token = bytes.fromhex(doc.get("next-page-token") or "").decode(errors="replace")
    attempt((status, body + token), ab["sb"], "namespace page tokens", ok_status=frozenset({200}))
    assert [ab["sa"]] in doc["namespaces"] and not doc.get("next-page-token")


def test_an_owned_views_query_cannot_be_swapped_through_the_catalog(ab, settings, hub_url):
    """A definer view that someone else made in A (here: the platform's service user through Trino) keeps its
    query: alice may not replace the SQL it runs with the owner's rights."""
    with clients.trino_connect(settings) as conn:
        cur = conn.cursor()
        cur.execute(
            f'CREATE VIEW iceberg."{ab["sa"]}".owned SECURITY DEFINER AS SELECT v FROM iceberg."{ab["sa"]}".secrets'
        )
        cur.fetchall()
    base = _bases(settings, hub_url)["through the hub"]
    status, body = raw_request(base, f"v1/main/namespaces/{ab['sa']}/views/owned", ab["token"])
    assert status == 200 and json.loads(body)["metadata"]["properties"]["trino.run-as-owner"] == "agp-service"
    swapped = {
        "requirements": [],
        "updates": [
            {
                "action": "add-view-version",
                "view-version": {
                    "version-id": 2,
                    "timestamp-ms": int(time.time() * 1000),
                    "schema-id": 0,
                    "summary": {"engine-name": "trino"},
                    "default-namespace": [ab["sa"]],
                    "default-catalog": "iceberg",
                    "representations": [
                        {"type": "sql", "sql": f'SELECT v FROM iceberg."{ab["sb"]}".secrets', "dialect": "trino"}
                    ],
                },
            },
            {"action": "set-current-view-version", "view-version-id": -1},
        ],
    }
    got = _post(ab, base, f"v1/main/namespaces/{ab['sa']}/views/owned", swapped)
    attempt(got, f"{ab['b']}-secret", "swap the query of a view that runs as its owner")
    assert got[0] == 403
    rows = query_rows(broker_trino(ab["alice"]), f'SELECT * FROM "{ab["sa"]}".owned')
    assert rows == [[f"{ab['a']}-secret"]]


# -- 4. Trino: schemas are provisioning's, and no table reaches another bucket


def test_trino_schemas_are_made_and_dropped_by_provisioning_only(ab):
    conn = broker_trino(ab["alice"])
    for sql in (
        f'DROP SCHEMA "{ab["sa"]}"',
        f'DROP SCHEMA "{ab["sb"]}"',
        'CREATE SCHEMA "planted"',
        f'ALTER SCHEMA "{ab["sa"]}" RENAME TO "moved"',
        f"CREATE TABLE \"{ab['sa']}\".elsewhere (x int) WITH (location = 's3://agp-ws-{ab['b']}/elsewhere')",
    ):
        COUNTS["attempts"] += 1
        with pytest.raises(trino.exceptions.TrinoQueryError) as e:
            query_rows(conn, sql)
        print(f"{sql}: {e.value.error_name}: {e.value.message}")
        COUNTS["denials"] += 1


def test_trino_cannot_read_another_buckets_files_even_when_a_table_points_there(ab, settings):
    """A table in A whose metadata names B's files (made here with the platform's own catalog access, as a mistake
    or a bug elsewhere would): Trino reads A's tables with A's bucket credential only, so B's rows never show."""
    catalog = clients.load_catalog(settings)
    catalog.register_table(f"{ab['sa']}.mistaken", ab["b_metadata"])
    try:
        conn = broker_trino(ab["alice"])
        COUNTS["attempts"] += 1
        try:
            rows = query_rows(conn, f'SELECT * FROM "{ab["sa"]}".mistaken')
        except trino.exceptions.TrinoQueryError as e:
            COUNTS["denials"] += 1
            assert f"{ab['b']}-secret" not in str(e)
        else:
            if any(f"{ab['b']}-secret" in str(r) for r in rows):
                _leak(f"Trino read B's files through a table of A: {rows}")
            COUNTS["denials"] += 1
        COUNTS["attempts"] += 1
        with pytest.raises(trino.exceptions.TrinoQueryError):
            query_rows(conn, f"INSERT INTO \"{ab['sa']}\".mistaken VALUES ('planted')")
        COUNTS["denials"] += 1
    finally:
        catalog.drop_table(f"{ab['sa']}.mistaken")  # not purged: the files are B's
    _b_is_intact(settings, ab)


def test_trinos_own_s3_identity_reaches_its_spooling_bucket_alone(ab, settings, lab):
    """Trino's process holds no root key; the MinIO user it has (for spooled results) opens no workspace bucket."""
    import boto3
    import psutil
    from botocore.exceptions import ClientError

    etc = f"-Dconfig={settings.lab_dir / 'trino' / 'etc' / 'config.properties'}"
    (proc,) = [p for p in psutil.process_iter(["cmdline"]) if etc in (p.info["cmdline"] or [])]
    env = proc.environ()
    assert settings.credentials.s3_secret_key.get_secret_value() not in env.values(), "Trino holds MinIO's root key"
    s3 = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        region_name=settings.s3_region,
        aws_access_key_id=env["AGP_TRINO_S3_ACCESS_KEY"],
        aws_secret_access_key=env["AGP_TRINO_S3_SECRET_KEY"],
    )
    s3.list_objects_v2(Bucket=settings.trino_spooling_bucket, MaxKeys=1)
    for bucket in (f"agp-ws-{ab['b']}", settings.warehouse_bucket):
        COUNTS["attempts"] += 1
        with pytest.raises(ClientError):
            s3.list_objects_v2(Bucket=bucket, MaxKeys=1)
        COUNTS["denials"] += 1


def test_trino_still_reads_and_writes_its_own_workspace_with_vended_credentials(ab):
    conn = broker_trino(ab["alice"])
    query_rows(conn, f'CREATE TABLE "{ab["sa"]}".written AS SELECT 1 AS x')
    query_rows(conn, f'INSERT INTO "{ab["sa"]}".written VALUES (2)')
    assert sorted(query_rows(conn, f'SELECT x FROM "{ab["sa"]}".written')) == [[1], [2]]
    query_rows(conn, f'DROP TABLE "{ab["sa"]}".written')


def test_table_comments_show_alices_workspace_and_nothing_of_bs(ab, settings):
    """Members read ``system.metadata.table_comments`` (what SQLAlchemy's reflection reads); Trino lists only the
    tables the caller may see, so B's tables and comments stay out of every way of asking, and the rest of
    ``system`` stays closed."""
    import sqlalchemy

    a_comment, b_comment = f"{ab['a']}-comment", f"{ab['b']}-comment"
    with clients.trino_connect(settings) as conn:
        query_rows(conn, f"COMMENT ON TABLE iceberg.\"{ab['sa']}\".secrets IS '{a_comment}'")
        query_rows(conn, f"COMMENT ON TABLE iceberg.\"{ab['sb']}\".secrets IS '{b_comment}'")
        platform_query = conn.cursor()
        platform_query.execute("SELECT 1")
        platform_query.fetchall()
    conn = broker_trino(ab["alice"])
    comments = "SELECT schema_name, table_name, comment FROM system.metadata.table_comments"
    own = query_rows(conn, f"{comments} WHERE catalog_name = 'iceberg' AND schema_name = '{ab['sa']}'")
    assert [ab["sa"], "secrets", a_comment] in own, own
    assert {row[0] for row in own} == {ab["sa"]}
    engine = sqlalchemy.create_engine("trino://", creator=lambda: broker_trino(ab["alice"]))
    with engine.connect() as c:
        assert sqlalchemy.inspect(c).get_table_comment("secrets", schema=ab["sa"]) == {"text": a_comment}

    def no_b(rows: list, what: str) -> None:
        COUNTS["attempts"] += 1
        text = str(rows)
        if ab["sb"] in text or b_comment in text or f"{ab['b']}-secret" in text:
            _leak(f"{what}: {text[:300]}")
        COUNTS["denials"] += 1

    for where in (
        "",
        f"WHERE schema_name = '{ab['sb']}'",
        f"WHERE catalog_name = 'iceberg' AND schema_name = '{ab['sb']}' AND table_name = 'secrets'",
        f"WHERE schema_name LIKE '{ab['sb'][:6]}%'",
        "WHERE table_name = 'secrets'",
        f"WHERE comment = '{b_comment}'",
        f"WHERE schema_name IN ('{ab['sa']}', '{ab['sb']}')",
    ):
        no_b(query_rows(conn, f"{comments} {where}"), f"table_comments {where or '(all)'}")
    with engine.connect() as c:
        try:
            reflected = sqlalchemy.inspect(c).get_table_comment("secrets", schema=ab["sb"])
        except sqlalchemy.exc.SQLAlchemyError as e:
            reflected = str(e)
        no_b([reflected], "SQLAlchemy reflection of B's table comment")
    # Everything else in system stays closed: others' queries, nodes, the JDBC and metadata listings, kill_query.
    for sql in (
        "SELECT query_id, user, query FROM system.runtime.queries",
        "SELECT * FROM system.runtime.tasks",
        "SELECT * FROM system.runtime.nodes",
        "SELECT * FROM system.runtime.transactions",
        "SELECT * FROM system.jdbc.tables",
        "SELECT * FROM system.jdbc.columns",
        "SELECT * FROM system.jdbc.catalogs",
        "SELECT * FROM system.metadata.catalogs",
        "SELECT * FROM system.metadata.table_properties",
        "SELECT * FROM system.metadata.materialized_views",
        f"CALL system.runtime.kill_query(query_id => '{platform_query.query_id}', message => 'x')",
    ):
        COUNTS["attempts"] += 1
        try:
            rows = query_rows(conn, sql)
        except trino.exceptions.TrinoQueryError as e:
            assert e.error_name == "PERMISSION_DENIED", (sql, e.error_name, e.message)
            assert ab["sb"] not in e.message
            COUNTS["denials"] += 1
        else:
            _leak(f"{sql} answered alice: {str(rows)[:300]}")
    _b_is_intact(settings, ab)


# -- 5. the workspace service


def test_a_non_member_gets_the_same_answer_for_a_missing_and_a_foreign_namespace(ab, settings, hub_url):
    base = _bases(settings, hub_url)["through the hub"]
    foreign = raw_request(base, f"v1/main/namespaces/{ab['sb']}/tables", ab["token"])
    missing = raw_request(base, "v1/main/namespaces/no_such_ns/tables", ab["token"])
    attempt(foreign, f"{ab['b']}-secret", "list B's tables")
    assert foreign[0] == missing[0] == 404
    assert json.loads(foreign[1])["error"]["type"] == json.loads(missing[1])["error"]["type"]


def test_the_broker_says_the_same_for_a_missing_workspace_and_another_users(ab, hub_url):
    """The workspace API hides which workspaces exist; the credential broker must not tell either."""
    import requests as http

    answers = []
    for slug in (ab["b"], "no-such-workspace-here"):
        r = http.post(
            f"{hub_url}/services/workspaces/api/workspaces/{slug}/credentials",
            json={"kinds": ["s3"]},
            headers={"Authorization": f"token {ab['token']}"},
            timeout=30,
        )
        answers.append((r.status_code, r.json()["detail"].replace(slug, "X")))
    attempt((answers[0][0], str(answers)), f"{ab['b']}-secret", "the broker's answer for another's workspace")
    assert answers[0] == answers[1], answers


def test_a_realm_token_of_another_client_is_not_trinos(ab, settings, hub_url):
    """The proxy treats a bearer JWT as Trino's only when Keycloak signed it for the platform's own client."""
    import jwt as pyjwt

    base = _bases(settings, hub_url)["on the service's own port"]
    forged = pyjwt.encode(
        {"azp": "agp-services", "iss": settings.keycloak_issuer, "exp": 2**31}, "x", algorithm="HS256"
    )
    got = raw_request(base, f"v1/main/namespaces/{ab['sb']}/tables/secrets", forged)
    attempt(got, f"{ab['b']}-secret", "a self-made token that claims to be Trino's")
    assert got[0] == 401


# -- 6. what the source publishes opens nothing


def _published(field: str) -> str:
    """A credential's literal default in the source (and so in every copy of this repository)."""
    from agp.core.settings import Credentials

    return Credentials.published(field)


def test_the_published_default_credentials_open_no_service(settings):
    """A notebook knows this repository: every service must refuse the credentials it prints as defaults (the lab
    makes its own at its first start). Only the demo users' password is public on purpose."""
    import boto3
    import psycopg
    import requests as http
    from botocore.exceptions import ClientError

    def minio(access: str, secret: str) -> None:
        boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint,
            region_name=settings.s3_region,
            aws_access_key_id=access,
            aws_secret_access_key=secret,
        ).list_buckets()

    def postgres(user: str, password: str) -> None:
        psycopg.connect(
            host=settings.host,
            port=settings.ports.postgres,
            dbname="postgres",
            user=user,
            password=password,
            connect_timeout=5,
        ).close()

    def catalog(token: str) -> None:
        r = http.get(f"{settings.catalog_uri}/v1/namespaces", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        r.raise_for_status()

    def keycloak(data: dict, realm: str | None = None) -> None:
        url = (
            settings.keycloak_token_url
            if realm is None
            else settings.url("keycloak", f"/realms/{realm}/protocol/openid-connect/token")
        )
        r = http.post(url, data=data, timeout=30)
        r.raise_for_status()

    from agp.core.settings import DB_ROLES

    attempts = {
        "MinIO root": lambda: minio(_published("s3_access_key"), _published("s3_secret_key")),
        "MinIO broker user": lambda: minio(_published("broker_access_key"), _published("broker_secret_key")),
        "MinIO Nessie user": lambda: minio(_published("nessie_s3_access_key"), _published("nessie_s3_secret_key")),
        "MinIO catalog user": lambda: minio(_published("catalog_s3_access_key"), _published("catalog_s3_secret_key")),
        "MinIO Trino user": lambda: minio(_published("trino_s3_access_key"), _published("trino_s3_secret_key")),
        "PostgreSQL superuser": lambda: postgres(_published("postgres_user"), _published("postgres_password")),
        "PostgreSQL nessie": lambda: postgres(DB_ROLES["nessie"], _published("nessie_db_password")),
        "PostgreSQL iceberg": lambda: postgres(DB_ROLES["iceberg"], _published("catalog_db_password")),
        "Iceberg REST catalog": lambda: catalog(_published("catalog_token")),
        "PostgreSQL keycloak": lambda: postgres(DB_ROLES["keycloak"], _published("keycloak_db_password")),
        "PostgreSQL hub": lambda: postgres(DB_ROLES["jupyterhub"], _published("hub_db_password")),
        "PostgreSQL workspace service": lambda: postgres(DB_ROLES["agp"], _published("workspaces_db_password")),
        "Keycloak admin": lambda: keycloak(
            {
                "grant_type": "password",
                "client_id": "admin-cli",
                "username": _published("keycloak_admin"),
                "password": _published("keycloak_admin_password"),
            },
            realm="master",
        ),
        "Keycloak agp-services client": lambda: keycloak(
            {
                "grant_type": "client_credentials",
                "client_id": "agp-services",
                "client_secret": _published("services_client_secret"),
            }
        ),
        "Keycloak jupyterhub client": lambda: keycloak(
            {
                "grant_type": "client_credentials",
                "client_id": "jupyterhub",
                "client_secret": _published("hub_client_secret"),
            }
        ),
    }
    opened = []
    for what, fn in attempts.items():
        COUNTS["attempts"] += 1
        try:
            fn()
        except (ClientError, psycopg.OperationalError, http.HTTPError):
            COUNTS["denials"] += 1
        else:
            opened.append(what)
    if opened:
        COUNTS["leaks"] += len(opened) - 1
        _leak(f"the published default credentials open {', '.join(opened)}")


def test_boundary_suite_shows_zero_leaks():
    print(f"\nboundary suite so far: {COUNTS}")
    assert COUNTS["attempts"] > 100
    assert COUNTS["leaks"] == 0, LEAKS
