"""The cross-workspace matrix: one membership table drives Trino, S3, the catalog and the broker.

Two workspaces, A with alice and B with bob, each with one table. For every tool a member succeeds, a non-member
is refused, and no row of the other workspace comes back. The counts are printed at the end.
"""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
import requests
import trino
from botocore.exceptions import ClientError
from conftest import query_rows, wait_until
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from agp.core import clients
from agp.core.tokens import KeyPaths, mint_trino_token
from agp.kernels.credentials import BrokerClient, BrokerError
from agp.kernels.credentials import s3_client as broker_s3
from agp.kernels.credentials import trino_connect as broker_trino

pytestmark = pytest.mark.integration

COUNTS = {"attempts": 0, "denials": 0, "leaks": 0}


@pytest.fixture(scope="module")
def pair(admin_api, user_api, settings, hub_url):
    """Workspaces A (alice) and B (bob), each with a table of its own; the rules picked up by Trino."""
    from conftest import remove_workspace

    tag = uuid.uuid4().hex[:6]
    a, b = f"mx-a-{tag}", f"mx-b-{tag}"
    for slug, user in ((a, "alice"), (b, "bob")):
        assert admin_api("POST", "/workspaces", json={"slug": slug}).status_code == 201
        assert admin_api("PUT", f"/workspaces/{slug}/members/{user}", json={"role": "editor"}).status_code == 200
        with clients.trino_connect(settings) as conn:
            cur = conn.cursor()
            schema = slug.replace("-", "_")
            cur.execute(f"CREATE TABLE iceberg.\"{schema}\".secrets AS SELECT '{slug}-row' AS v")
            cur.fetchall()
    brokers = {
        user: BrokerClient(
            f"{hub_url}/services/workspaces", user_api(user).http.headers["Authorization"].split()[1], ws
        )
        for user, ws in (("alice", a), ("bob", b))
    }
    wait_until(lambda: query_rows(broker_trino(brokers["alice"]), f'SELECT v FROM "{a.replace("-", "_")}".secrets'))
    yield {"a": a, "b": b, "sa": a.replace("-", "_"), "sb": b.replace("-", "_"), "brokers": brokers}
    for slug in (a, b):
        remove_workspace(settings, slug)
    print(f"\nidentity matrix: {COUNTS['attempts']} attempts, {COUNTS['denials']} denials, {COUNTS['leaks']} leaks")


def _broker(hub_url: str, user_api, user: str, workspace: str) -> BrokerClient:
    token = user_api(user).http.headers["Authorization"].split()[1]
    return BrokerClient(f"{hub_url}/services/workspaces", token, workspace)


def allowed(fn):
    COUNTS["attempts"] += 1
    return fn()


def denied(fn, *errors, other_rows: str | None = None):
    """``fn`` must fail (or return nothing); any row of the other workspace counts as a leak."""
    COUNTS["attempts"] += 1
    expected = errors or (Exception,)
    try:
        result = fn()
    except expected:
        COUNTS["denials"] += 1
        return
    if other_rows and other_rows in repr(result):
        COUNTS["leaks"] += 1
        pytest.fail(f"LEAK: {result!r}")
    if result:
        COUNTS["leaks"] += 1
        pytest.fail(f"expected a refusal, got {result!r}")
    COUNTS["denials"] += 1


# -- Trino


def test_trino_member_reads_writes_and_lists_own_schema(pair):
    conn = broker_trino(pair["brokers"]["alice"])
    assert allowed(lambda: query_rows(conn, f'SELECT v FROM "{pair["sa"]}".secrets')) == [[f"{pair['a']}-row"]]
    assert ["secrets"] in allowed(lambda: query_rows(conn, f'SHOW TABLES FROM "{pair["sa"]}"'))
    allowed(lambda: query_rows(conn, f'CREATE TABLE "{pair["sa"]}".mine AS SELECT 1 AS x'))
    assert allowed(lambda: query_rows(conn, f'SELECT x FROM "{pair["sa"]}".mine')) == [[1]]
    snaps = allowed(lambda: query_rows(conn, f'SELECT count(*) FROM "{pair["sa"]}"."secrets$snapshots"'))
    assert snaps[0][0] >= 1


def test_trino_non_member_gets_nothing_of_the_other_workspace(pair):
    conn = broker_trino(pair["brokers"]["alice"])
    other = f"{pair['b']}-row"
    denied(
        lambda: query_rows(conn, f'SELECT v FROM "{pair["sb"]}".secrets'),
        trino.exceptions.TrinoUserError,
        other_rows=other,
    )
    denied(lambda: query_rows(conn, f'SHOW TABLES FROM "{pair["sb"]}"'), trino.exceptions.TrinoUserError)
    denied(
        lambda: query_rows(conn, f'SELECT count(*) FROM "{pair["sb"]}"."secrets$snapshots"'),
        trino.exceptions.TrinoUserError,
    )
    denied(
        lambda: query_rows(conn, f'CREATE TABLE "{pair["sb"]}".intruder AS SELECT 1 AS x'),
        trino.exceptions.TrinoUserError,
    )
    schemas = allowed(lambda: query_rows(conn, "SELECT schema_name FROM information_schema.schemata"))
    assert [pair["sb"]] not in schemas
    tables = allowed(lambda: query_rows(conn, "SELECT table_schema, table_name FROM information_schema.tables"))
    if any(row[0] == pair["sb"] for row in tables):
        COUNTS["leaks"] += 1
        pytest.fail(f"information_schema shows the other workspace: {tables}")


def test_trino_system_catalog_and_impersonation_are_closed(pair):
    conn = broker_trino(pair["brokers"]["alice"])
    denied(lambda: query_rows(conn, "SELECT query FROM system.runtime.queries"), trino.exceptions.TrinoUserError)
    denied(lambda: query_rows(conn, "SET SESSION AUTHORIZATION bob"), trino.exceptions.TrinoUserError)


def _raw_trino(settings, token: str, user: str = "alice") -> requests.Response:
    keys = KeyPaths(settings.keys_dir)
    session = clients.tls_session(keys.trino_ca)
    return session.post(
        f"{settings.trino_https_url}/v1/statement",
        data="SELECT 1",
        headers={"Authorization": f"Bearer {token}", "X-Trino-User": user},
        timeout=30,
    )


def test_forged_expired_and_misaddressed_tokens_are_refused(settings, pair):
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    ours = KeyPaths(settings.keys_dir).broker_private.read_bytes()
    now = int(time.time())
    base = {"iss": "agp-broker", "aud": "trino", "sub": "alice", "iat": now, "exp": now + 300}
    cases = {
        "forged": jwt.encode(base, other_key, algorithm="RS256"),
        "expired": jwt.encode({**base, "iat": now - 900, "exp": now - 600}, ours, algorithm="RS256"),
        "wrong audience": jwt.encode({**base, "aud": "minio"}, ours, algorithm="RS256"),
        "wrong issuer": jwt.encode({**base, "iss": "someone-else"}, ours, algorithm="RS256"),
    }
    for name, token in cases.items():
        COUNTS["attempts"] += 1
        r = _raw_trino(settings, token)
        assert r.status_code == 401, f"{name}: HTTP {r.status_code}"
        COUNTS["denials"] += 1
    good, _ = mint_trino_token(ours, "alice")
    assert _raw_trino(settings, good).status_code == 200


def test_a_token_cannot_act_as_another_user(settings, pair):
    alice_token = pair["brokers"]["alice"].get("trino")["token"]
    COUNTS["attempts"] += 1
    r = _raw_trino(settings, alice_token, user="bob")
    body = r.json() if r.status_code == 200 else {}
    while r.status_code == 200 and "nextUri" in body:
        body = (
            clients.tls_session(KeyPaths(settings.keys_dir).trino_ca)
            .get(body["nextUri"], headers={"Authorization": f"Bearer {alice_token}", "X-Trino-User": "bob"}, timeout=30)
            .json()
        )
    assert r.status_code in (401, 403) or "error" in body, body
    COUNTS["denials"] += 1


def test_plain_http_does_not_authenticate_users(settings):
    r = requests.post(
        f"{settings.trino_url}/v1/statement", data="SELECT 1", headers={"X-Trino-User": "alice"}, timeout=30
    )
    assert r.status_code in (401, 403), r.status_code


# -- S3


def test_s3_member_lists_gets_and_puts_in_own_bucket(pair):
    s3 = broker_s3(pair["brokers"]["alice"])
    bucket = f"agp-ws-{pair['a']}"
    allowed(lambda: s3.put_object(Bucket=bucket, Key="notes/hello.txt", Body=b"hi"))
    assert allowed(lambda: s3.get_object(Bucket=bucket, Key="notes/hello.txt")["Body"].read()) == b"hi"
    keys = allowed(lambda: [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])])
    assert "notes/hello.txt" in keys


def test_s3_non_member_is_refused_everywhere_else(pair, settings):
    s3 = broker_s3(pair["brokers"]["alice"])
    other = f"agp-ws-{pair['b']}"
    denied(lambda: s3.list_objects_v2(Bucket=other).get("Contents"), ClientError, other_rows=pair["b"])
    denied(lambda: s3.put_object(Bucket=other, Key="intruder", Body=b"x"), ClientError)
    first_key = clients.s3_client(settings).list_objects_v2(Bucket=other)["Contents"][0]["Key"]
    denied(lambda: s3.get_object(Bucket=other, Key=first_key)["Body"].read(), ClientError)
    denied(lambda: s3.list_objects_v2(Bucket=settings.warehouse_bucket).get("Contents"), ClientError)


def test_s3_static_root_keys_are_not_what_the_broker_gives(pair, settings):
    cred = pair["brokers"]["alice"].get("s3")
    assert cred["access_key_id"] != settings.credentials.s3_access_key
    assert cred["session_token"] and cred["expires_at"] - time.time() <= settings.credential_ttl


# -- the broker itself


def test_broker_refuses_a_non_member_and_audits_issues(pair, hub_url, user_api, admin_api):
    token = user_api("alice").http.headers["Authorization"].split()[1]
    COUNTS["attempts"] += 1
    with pytest.raises(BrokerError, match="not a member"):
        BrokerClient(f"{hub_url}/services/workspaces", token, pair["b"]).get("s3")
    COUNTS["denials"] += 1
    events = admin_api("GET", f"/workspaces/{pair['a']}/audit").json()
    issued = [e for e in events if e["action"] == "credential.issue" and e["outcome"] == "ok"]
    assert issued and issued[0]["actor"] == "alice" and {"kind", "expires_at", "role"} <= set(issued[0]["detail"])
    assert all("secret" not in str(e["detail"]).lower() and "token" not in e["detail"] for e in issued)


def test_a_removed_member_gets_nothing_new_and_loses_trino_quickly(pair, admin_api, hub_url, user_api):
    slug = pair["a"]
    assert admin_api("PUT", f"/workspaces/{slug}/members/bob", json={"role": "viewer"}).status_code == 200
    bob = _broker(hub_url, user_api, "bob", slug)
    sql = f'SELECT v FROM "{pair["sa"]}".secrets'
    conn = wait_until(lambda: query_rows(c := broker_trino(bob), sql) and c)
    assert admin_api("DELETE", f"/workspaces/{slug}/members/bob").status_code == 200
    COUNTS["attempts"] += 1
    with pytest.raises(BrokerError, match="not a member"):
        BrokerClient(bob.service_url, bob.token, slug).get("trino")
    COUNTS["denials"] += 1
    t0 = time.monotonic()
    while time.monotonic() - t0 < 30:  # the service rewrites the rules within 10 s, Trino reads them within 5 s
        try:
            query_rows(conn, sql)
        except trino.exceptions.TrinoUserError:
            break
        time.sleep(1)
    waited = time.monotonic() - t0
    denied(lambda: query_rows(conn, sql), trino.exceptions.TrinoUserError)
    print(f"\nremoved member lost Trino access after {waited:.1f} s, with his JWT still valid")


def test_the_servers_own_token_reaches_the_broker(pair, user_api, admin_api, settings):
    import psutil

    alice = user_api("alice")
    r = alice.hub("POST", f"/users/alice/servers/{pair['a']}")
    assert r.status_code in (201, 202), r.text
    try:
        alice.wait_server("alice", pair["a"])
        pid = admin_api.hub("GET", "/users/alice").json()["servers"][pair["a"]]["state"]["pid"]
        env = psutil.Process(pid).environ()
        broker = BrokerClient.from_environment(env)
        assert broker.workspace == pair["a"]
        assert query_rows(broker_trino(broker), f'SELECT v FROM "{pair["sa"]}".secrets') == [[f"{pair['a']}-row"]]
    finally:
        alice.hub("DELETE", f"/users/alice/servers/{pair['a']}")


# -- the catalog


def test_catalog_member_lists_reads_and_writes_own_namespace(pair):
    import pyarrow as pa

    from agp.kernels.credentials import load_catalog

    catalog = load_catalog(pair["brokers"]["alice"])
    listed = allowed(lambda: catalog.list_namespaces())
    assert (pair["sa"],) in listed and (pair["sb"],) not in listed
    table = allowed(lambda: catalog.load_table(f"{pair['sa']}.secrets"))
    assert table.scan().to_arrow().to_pydict() == {"v": [f"{pair['a']}-row"]}
    made = allowed(lambda: catalog.create_table(f"{pair['sa']}.from_pyiceberg", schema=pa.schema([("x", pa.int64())])))
    allowed(lambda: made.append(pa.table({"x": [1, 2]})))
    assert made.scan().to_arrow().num_rows == 2


def test_catalog_non_member_gets_nothing_of_the_other_namespace(pair):
    import pyarrow as pa
    from pyiceberg.exceptions import ForbiddenError, NoSuchNamespaceError, NoSuchTableError, RESTError

    from agp.kernels.credentials import load_catalog

    catalog = load_catalog(pair["brokers"]["alice"])
    refused = (NoSuchTableError, NoSuchNamespaceError, ForbiddenError, RESTError)
    denied(lambda: catalog.load_table(f"{pair['sb']}.secrets"), *refused, other_rows=pair["b"])
    denied(lambda: catalog.list_tables(pair["sb"]), *refused)
    denied(lambda: catalog.create_table(f"{pair['sb']}.intruder", schema=pa.schema([("x", pa.int64())])), *refused)
    denied(lambda: catalog.drop_table(f"{pair['sb']}.secrets"), *refused)
    denied(lambda: catalog.create_namespace("not_provisioned"), *refused)
    assert (pair["sb"],) not in catalog.list_namespaces()


def test_vended_table_credentials_reach_only_the_callers_bucket(pair, settings):
    """A loaded table carries the caller's bucket credential and its refresh endpoint; neither opens the other
    workspace."""
    import boto3
    from botocore.exceptions import ClientError

    alice = pair["brokers"]["alice"]
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {alice.token}"
    base = alice.get("catalog")["uri"].rstrip("/") + "/v1/main/namespaces"
    config = allowed(lambda: http.get(f"{base}/{pair['sa']}/tables/secrets", timeout=30).json()["config"])
    assert (
        config["client.refresh-credentials-endpoint"] == f"v1/main/namespaces/{pair['sa']}/tables/secrets/credentials"
    )
    renewed = allowed(lambda: http.get(f"{base}/{pair['sa']}/tables/secrets/credentials", timeout=30))
    assert renewed.status_code == 200
    (vended,) = renewed.json()["storage-credentials"]
    assert vended["prefix"] == f"s3://agp-ws-{pair['a']}/"
    for cfg in (config, vended["config"]):
        s3 = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint,
            region_name=settings.s3_region,
            aws_access_key_id=cfg["s3.access-key-id"],
            aws_secret_access_key=cfg["s3.secret-access-key"],
            aws_session_token=cfg["s3.session-token"],
        )
        assert allowed(lambda s3=s3: s3.list_objects_v2(Bucket=f"agp-ws-{pair['a']}")["KeyCount"]) > 0
        denied(lambda s3=s3: s3.list_objects_v2(Bucket=f"agp-ws-{pair['b']}")["Contents"], ClientError)
    r = http.get(f"{base}/{pair['sb']}/tables/secrets/credentials", timeout=30)
    denied(lambda: r.raise_for_status() and r.json(), requests.HTTPError)
    assert r.status_code == 404 and "agp-ws" not in r.text


def test_the_catalog_itself_refuses_anyone_without_the_platforms_token(settings):
    COUNTS["attempts"] += 1
    r = requests.get(f"{settings.catalog_uri}/v1/config", params={"warehouse": "warehouse"}, timeout=30)
    assert r.status_code == 401
    COUNTS["denials"] += 1


def test_matrix_shows_zero_leaks():
    print(f"\nidentity matrix so far: {COUNTS}")
    assert COUNTS["attempts"] > 20
    assert COUNTS["leaks"] == 0
