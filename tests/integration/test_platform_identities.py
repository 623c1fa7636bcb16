"""Each platform service has its own least-privilege identity, and a user's own identity reaches none of theirs.

The notebook is hostile: it knows its user's Keycloak password, reaches every loopback port and reads every
process's command line. So: the Iceberg REST catalog serves the platform's own token only (no realm token, not even
the platform's, no forged one) and lends no S3 right; with Nessie (AGP_CATALOG=nessie), Nessie serves the platform's
service identity only (a user's own token of the realm is refused, whichever client issued it) and signs no S3
request; the catalog reaches S3 as a MinIO user of its own; the
realm offers the password grant to no client and keeps only the clients the platform uses; each service connects
to PostgreSQL as a role of its own; no secret is on a command line.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import psutil
import psycopg
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from agp.compose.lab import Lab
from agp.core import clients
from agp.core.settings import DB_ROLES, REVEAL_SECRETS, Credentials, Settings

pytestmark = pytest.mark.integration

# The realm's clients that stay enabled, with their grants; every other client of the realm is disabled, among
# them account-console (agp.compose.realm says why): no client that a user drives alone issues her a token.
ALLOWED_CLIENTS = {
    # client: (standard flow, direct access (password grant), service accounts, implicit, public, device grant)
    "jupyterhub": (True, False, False, False, False, False),
    "agp-services": (False, False, True, False, False, False),
    "realm-management": (False, False, False, False, False, False),  # bearer-only: holds the realm's admin roles
}


# ------------------------------------------------------------------------------------------------ helpers
def code_flow_token(s: Settings, client_id: str, redirect_uri: str, password: str, secret: str | None = None) -> str:
    """A user's access token through the authorization code flow with PKCE, logging in on Keycloak's own form as a
    browser would: what any user can do with her own password and a client that offers the standard flow."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    http = requests.Session()
    page = http.get(
        f"{s.keycloak_issuer}/protocol/openid-connect/auth",
        params={
            "client_id": client_id,
            "response_type": "code",
            "scope": "openid",
            "redirect_uri": redirect_uri,
            "state": uuid.uuid4().hex,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
        timeout=30,
    )
    form = re.search(r'<form[^>]*id="kc-form-login"[^>]*action="([^"]+)"', page.text)
    assert form, f"no Keycloak login form for client {client_id} (HTTP {page.status_code})"
    for cookie in http.cookies:
        cookie.secure = False  # Keycloak marks its cookies Secure; a browser sends them to http://127.0.0.1 anyway
    r = http.post(
        html.unescape(form.group(1)),
        data={"username": "alice", "password": password, "credentialId": ""},
        allow_redirects=False,
        timeout=30,
    )
    assert r.is_redirect, f"Keycloak refused alice's password on client {client_id}: HTTP {r.status_code}"
    code = parse_qs(urlsplit(r.headers["location"]).query)["code"][0]
    body = {
        "grant_type": "authorization_code",
        "client_id": client_id,
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    if secret:
        body["client_secret"] = secret
    token = requests.post(s.keycloak_token_url, data=body, timeout=30)
    assert token.status_code == 200, token.text
    return token.json()["access_token"]


def nessie_calls(s: Settings, token: str, namespace: str) -> dict[str, requests.Response]:
    """Reads and writes of every kind on Nessie's own API and its Iceberg REST API, with ``token`` as bearer."""
    auth = {"Authorization": f"Bearer {token}"}
    iceberg = s.url("nessie", "/iceberg/v1/main")
    get = lambda path: requests.get(path, headers=auth, timeout=30)  # noqa: E731
    return {
        "list references": get(s.url("nessie", "/api/v2/trees")),
        "list namespaces": get(f"{iceberg}/namespaces"),
        "list tables": get(f"{iceberg}/namespaces/demo/tables"),
        "load table": get(f"{iceberg}/namespaces/demo/tables/meter_readings"),
        "create namespace": requests.post(
            f"{iceberg}/namespaces", json={"namespace": [namespace]}, headers=auth, timeout=30
        ),
    }


def lab_processes(lab: Lab) -> list[psutil.Process]:
    """supervisord and every process under it: the services, their helpers, the hub's servers and kernels."""
    root = psutil.Process(int(lab.paths.supervisor_pid.read_text().strip()))
    return [root, *root.children(recursive=True)]


def known_secrets(s: Settings) -> dict[str, str]:
    """Every secret value of the lab: the secret fields of Credentials and the files of ``<lab>/secrets/`` and the
    hub's keys. User names and access key ids are names, not secrets, and are left out."""
    found = {
        f"credentials.{name}": value
        for name, value in s.credentials.model_dump(context={REVEAL_SECRETS: True}).items()
        if any(word in name for word in ("password", "secret"))
    }
    files = [f for f in s.keys_dir.iterdir() if f.is_file()] if s.keys_dir.exists() else []
    files += [s.lab_dir / "hub" / "crypt_key", s.lab_dir / "hub" / "jupyterhub_cookie_secret"]
    for f in files:
        if not f.exists() or f.suffix in {".pub"} or f.name == "trino-ca.pem":
            continue  # public halves
        text = f.read_bytes().decode(errors="replace")
        lines = [ln.strip() for ln in text.splitlines() if len(ln.strip()) >= 16 and not ln.startswith("-----")]
        for i, line in enumerate(lines):
            found[f"{f.name}:{i}"] = line
    return found


def catalog_calls(
    s: Settings, headers: dict[str, str], namespace: str, drop: bool = False
) -> dict[str, requests.Response]:
    """Reads and writes of every kind on the Iceberg REST catalog itself (not the proxy), with ``headers``; with
    ``drop``, also an attempt to drop the demo table (only for callers that must be refused)."""
    base = f"{s.catalog_uri}/v1"
    get = lambda path: requests.get(path, headers=headers, timeout=30)  # noqa: E731
    calls = {
        "config": get(f"{base}/config"),
        "list namespaces": get(f"{base}/namespaces"),
        "list tables": get(f"{base}/namespaces/demo/tables"),
        "load table": get(f"{base}/namespaces/demo/tables/meter_readings"),
        "create namespace": requests.post(
            f"{base}/namespaces", json={"namespace": [namespace]}, headers=headers, timeout=30
        ),
    }
    if drop:
        calls["drop table"] = requests.delete(
            f"{base}/namespaces/demo/tables/meter_readings", headers=headers, timeout=30
        )
    return calls


iceberg_rest_only = pytest.mark.skipif(
    Settings().catalog != "iceberg-rest", reason="the lab runs Nessie (AGP_CATALOG=nessie)"
)
nessie_only = pytest.mark.skipif(Settings().catalog != "nessie", reason="the lab runs Iceberg's REST catalog")


# ------------------------------------------------------------------------------------------------ the catalog
@iceberg_rest_only
def test_the_catalog_admits_the_platforms_token(lab, settings):
    auth = {"Authorization": f"Bearer {settings.credentials.catalog_token.get_secret_value()}"}
    calls = catalog_calls(settings, auth, f"t_{uuid.uuid4().hex[:10]}")
    clients.load_catalog(settings).drop_namespace(tuple(calls["create namespace"].json()["namespace"]))
    assert {name: r.status_code for name, r in calls.items()} == {
        "config": 200,
        "list namespaces": 200,
        "list tables": 200,
        "load table": 200,
        "create namespace": 200,
    }


@iceberg_rest_only
def test_the_catalog_refuses_every_other_bearer(lab, settings):
    # What a hostile notebook can come by: its user's own realm token, the platform's Keycloak identity (the secret
    # of agp-services is not the catalog's token), a token of the right length, the token in another form.
    token = settings.credentials.catalog_token.get_secret_value()
    redirect = f"{settings.hub_url}/hub/oauth_callback"
    secret = settings.credentials.hub_client_secret.get_secret_value()
    attempts = {
        "no header": {},
        "alice's own realm token": {
            "Authorization": "Bearer " + code_flow_token(settings, "jupyterhub", redirect, "agp-demo", secret)
        },
        "the platform's Keycloak token": {"Authorization": f"Bearer {clients.service_token(settings)}"},
        "a token of the same length": {"Authorization": "Bearer " + secrets.token_urlsafe(len(token))[: len(token)]},
        "the token with a character more": {"Authorization": f"Bearer {token}x"},
        "the token lower-cased scheme": {"Authorization": f"bearer {token}"},
        "the token as basic": {"Authorization": "Basic " + base64.b64encode(f"x:{token}".encode()).decode()},
        "the token as a query": {},
    }
    let_in: dict[str, dict[str, int]] = {}
    for what, headers in attempts.items():
        namespace = f"t_{uuid.uuid4().hex[:10]}"
        calls = catalog_calls(settings, headers, namespace, drop=True)
        if what == "the token as a query":
            calls["config"] = requests.get(f"{settings.catalog_uri}/v1/config?token={token}", timeout=30)
        bad = {name: r.status_code for name, r in calls.items() if r.status_code != 401}
        if bad:
            let_in[what] = bad
    assert not let_in, f"the catalog answered other than 401: {let_in}"
    # The table the attempts tried to drop is still there.
    assert clients.load_catalog(settings).table_exists("demo.meter_readings")
    # Its health path says nothing but that it runs.
    health = requests.get(f"{settings.catalog_uri}/healthz", timeout=30)
    assert (health.status_code, health.text) == (200, "ok")


@iceberg_rest_only
def test_the_catalog_lends_no_s3_right(lab, settings):
    auth = {"Authorization": f"Bearer {settings.credentials.catalog_token.get_secret_value()}"}
    config = requests.get(f"{settings.catalog_uri}/v1/config", headers=auth, timeout=30).json()
    table = requests.get(
        f"{settings.catalog_uri}/v1/namespaces/demo/tables/meter_readings", headers=auth, timeout=30
    ).json()
    offered = {**config.get("defaults", {}), **config.get("overrides", {}), **table.get("config", {})}
    assert not [k for k in offered if k.startswith("s3.")], offered
    assert not table.get("storage-credentials"), table.get("storage-credentials")


@iceberg_rest_only
def test_the_catalogs_secrets_are_its_users_alone(lab, settings):
    for path in (lab.paths.catalog_properties, settings.keys_dir / "catalog.token"):
        mode = path.stat().st_mode & 0o777
        assert mode == 0o600, f"{path} is {oct(mode)}"
    catalog = psutil.Process(lab.status()["services"]["catalog"]["pid"])
    procs = [catalog, *catalog.children(recursive=True)]
    holding = [p.pid for p in procs if settings.credentials.catalog_token.get_secret_value() in " ".join(p.cmdline())]
    assert not holding, f"the catalog's token is on the command line of {holding}"


# ------------------------------------------------------------------------------------------------ Nessie
@nessie_only
def test_nessie_admits_the_platforms_service_identity(lab, settings):
    calls = nessie_calls(settings, clients.service_token(settings), f"t_{uuid.uuid4().hex[:10]}")
    ns = calls["create namespace"].json()["namespace"]
    try:
        assert {name: r.status_code for name, r in calls.items()} == {
            "list references": 200,
            "list namespaces": 200,
            "list tables": 200,
            "load table": 200,
            "create namespace": 200,
        }
    finally:
        clients.load_catalog(settings).drop_namespace(tuple(ns))


@nessie_only
def test_nessie_refuses_a_users_own_token(lab, settings):
    # A user's token of the realm, as the hub holds it after her login (the hub's client; before this change any
    # user also got one from the public account-console or admin-cli clients): Nessie refuses it, reads and writes.
    redirect = f"{settings.hub_url}/hub/oauth_callback"
    secret = settings.credentials.hub_client_secret.get_secret_value()
    client_id = "jupyterhub"
    password = settings.credentials.demo_password.get_secret_value()
    token = code_flow_token(settings, client_id, redirect, password, secret)
    calls = nessie_calls(settings, token, f"t_{uuid.uuid4().hex[:10]}")
    let_in = {name: r.status_code for name, r in calls.items() if r.status_code < 400}
    for r in calls.values():
        if r.status_code == 200 and "namespace" in r.json() and isinstance(r.json()["namespace"], list):
            clients.load_catalog(settings).drop_namespace(tuple(r.json()["namespace"]))
    assert not let_in, f"Nessie served alice's own {client_id} token: {let_in}"
    # 401: the token is not meant for the catalog (audience); 403 would be the rule on the principal.
    assert {r.status_code for r in calls.values()} <= {401, 403}, {n: r.status_code for n, r in calls.items()}


@nessie_only
def test_nessie_offers_no_s3_request_signing(lab, settings):
    token = clients.service_token(settings)
    auth = {"Authorization": f"Bearer {token}"}
    config = requests.get(settings.url("nessie", "/iceberg/v1/config"), headers=auth, timeout=30).json()
    table = requests.get(
        settings.url("nessie", "/iceberg/v1/main/namespaces/demo/tables/meter_readings"), headers=auth, timeout=30
    ).json()
    offered = {**config.get("defaults", {}), **config.get("overrides", {}), **table.get("config", {})}
    assert offered.get("s3.remote-signing-enabled", "false") == "false", offered
    assert not [k for k in offered if k.startswith("s3.signer")], offered


# ------------------------------------------------------------------------------------------------ the catalog's S3 user
def _s3_as(settings: Settings, key: str, secret: str):
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name=settings.s3_region,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def _denied(call) -> bool:
    try:
        call()
    except ClientError as e:
        return e.response["Error"]["Code"] in {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}
    return False


def _catalog_s3_key(settings: Settings, c: Credentials) -> tuple[str, str]:
    if settings.catalog == "nessie":
        return c.nessie_s3_access_key, c.nessie_s3_secret_key.get_secret_value()
    return c.catalog_s3_access_key, c.catalog_s3_secret_key.get_secret_value()


def test_the_catalog_reaches_s3_as_its_own_user_with_the_warehouse_and_workspace_buckets_only(lab, settings, s3):
    nessie = _s3_as(settings, *_catalog_s3_key(settings, settings.credentials))
    key = f"agp-test/{uuid.uuid4().hex}"
    nessie.put_object(Bucket=settings.warehouse_bucket, Key=key, Body=b"x")
    assert nessie.get_object(Bucket=settings.warehouse_bucket, Key=key)["Body"].read() == b"x"
    nessie.delete_object(Bucket=settings.warehouse_bucket, Key=key)
    ws_bucket = next((b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"].startswith("agp-ws-")), None)
    if ws_bucket:
        nessie.list_objects_v2(Bucket=ws_bucket, MaxKeys=1)
    spooling = settings.trino_spooling_bucket
    refused = {
        "read the spooling bucket": _denied(lambda: nessie.list_objects_v2(Bucket=spooling, MaxKeys=1)),
        "write the spooling bucket": _denied(lambda: nessie.put_object(Bucket=spooling, Key=key, Body=b"x")),
        "create a bucket": _denied(lambda: nessie.create_bucket(Bucket=f"agp-ws-t{uuid.uuid4().hex[:10]}")),
        "delete the warehouse bucket": _denied(lambda: nessie.delete_bucket(Bucket=settings.warehouse_bucket)),
    }
    assert all(refused.values()), f"the catalog's S3 user may: {[k for k, v in refused.items() if not v]}"
    # MinIO lists the buckets a user may reach rather than refusing the listing.
    listed = {b["Name"] for b in nessie.list_buckets().get("Buckets", [])}
    assert listed <= {settings.warehouse_bucket} | {b for b in listed if b.startswith("agp-ws-")}, listed


def test_provisioning_reaches_s3_as_its_own_user_with_workspace_buckets_only(lab, settings):
    c = settings.credentials
    prov = _s3_as(settings, c.provisioner_access_key, c.provisioner_secret_key.get_secret_value())
    bucket = f"agp-ws-t{uuid.uuid4().hex[:10]}"
    prov.create_bucket(Bucket=bucket)
    with pytest.raises(ClientError, match="BucketAlreadyOwnedByYou"):  # how provisioning finds a bucket it made
        prov.create_bucket(Bucket=bucket)
    prov.delete_bucket(Bucket=bucket)
    other = f"agp-other-{uuid.uuid4().hex[:8]}"
    refused = {
        "read a workspace's objects": _denied(
            lambda: prov.list_objects_v2(Bucket="agp-ws-demo", MaxKeys=1)["Contents"]
        ),
        "get a workspace's object": _denied(lambda: prov.get_object(Bucket="agp-ws-demo", Key="x")),
        "write into a workspace": _denied(lambda: prov.put_object(Bucket="agp-ws-demo", Key="x", Body=b"x")),
        "create another bucket": _denied(lambda: prov.create_bucket(Bucket=other)),
        "read the warehouse": _denied(lambda: prov.list_objects_v2(Bucket=settings.warehouse_bucket, MaxKeys=1)),
        "delete the warehouse": _denied(lambda: prov.delete_bucket(Bucket=settings.warehouse_bucket)),
        "read the spooling bucket": _denied(
            lambda: prov.list_objects_v2(Bucket=settings.trino_spooling_bucket, MaxKeys=1)
        ),
    }
    assert all(refused.values()), f"provisioning's S3 user may: {[k for k, v in refused.items() if not v]}"


def test_the_hub_holds_no_root_s3_key(lab, settings):
    # The hub and its workspace service read <lab>/hub/settings.json: provisioning has its own MinIO user now.
    assert settings.credentials.s3_secret_key.get_secret_value() not in lab.paths.hub_settings.read_text()
    service = [p for p in lab_processes(lab) if "agp.hub.service" in " ".join(p.cmdline())]
    assert service, "the workspace service runs"
    for proc in service:
        assert settings.credentials.s3_secret_key.get_secret_value() not in "\0".join(
            f"{k}={v}" for k, v in proc.environ().items()
        )


def test_the_catalog_holds_no_root_s3_key(lab, settings):
    nessie = psutil.Process(lab.status()["services"]["nessie" if settings.catalog == "nessie" else "catalog"]["pid"])
    procs = [nessie, *nessie.children(recursive=True)]
    root = settings.credentials.s3_secret_key.get_secret_value()
    holding = [p.pid for p in procs if root in "\0".join(f"{k}={v}" for k, v in p.environ().items())]
    assert not holding, f"the catalog's processes {holding} have MinIO's root secret in their environment"


# ------------------------------------------------------------------------------------------------ Keycloak
def test_realm_offers_only_the_clients_and_grants_of_the_allowlist(keycloak_admin):
    offered = {}
    for c in keycloak_admin.http.get(f"{keycloak_admin.base}/clients", timeout=30).json():
        if not c.get("enabled", True):
            continue
        attrs = c.get("attributes") or {}
        bearer_only = bool(c.get("bearerOnly"))
        offered[c["clientId"]] = (
            bool(c.get("standardFlowEnabled")) and not bearer_only,
            bool(c.get("directAccessGrantsEnabled")),
            bool(c.get("serviceAccountsEnabled")),
            bool(c.get("implicitFlowEnabled")),
            bool(c.get("publicClient")),
            attrs.get("oauth2.device.authorization.grant.enabled") == "true",
        )
    extra = sorted(set(offered) - set(ALLOWED_CLIENTS))
    assert not extra, f"the realm has enabled clients the platform does not use: {extra}"
    differ = {k: (offered.get(k), v) for k, v in ALLOWED_CLIENTS.items() if offered.get(k) != v}
    assert not differ, f"clients whose grants differ from the allowlist (offered, allowed): {differ}"


def test_no_client_gives_a_user_a_token_for_her_password(keycloak_admin, settings):
    c = settings.credentials
    known = {
        "jupyterhub": c.hub_client_secret.get_secret_value(),
        "agp-services": c.services_client_secret.get_secret_value(),
    }
    ids = [x["clientId"] for x in keycloak_admin.http.get(f"{keycloak_admin.base}/clients", timeout=30).json()]
    got = {}
    for client_id in ids:
        body = {
            "grant_type": "password",
            "client_id": client_id,
            "username": "alice",
            "password": c.demo_password.get_secret_value(),
        }
        if client_id in known:
            body["client_secret"] = known[client_id]
        r = requests.post(settings.keycloak_token_url, data=body, timeout=30)
        if r.status_code == 200 or "access_token" in r.text:
            got[client_id] = r.status_code
    assert ids and not got, f"the password grant gave alice a token through {sorted(got)}"


def test_a_user_changes_her_password_through_the_hubs_login_without_the_account_console(keycloak_admin, settings):
    # The account console is disabled: an admin asks for a new password (required action), and the user sets it on
    # Keycloak's own pages during her next login through the hub.
    from hubclient import HubSession, LoginFailed

    username, old, new = f"pw-{uuid.uuid4().hex[:8]}", "first-Passw0rd", "second-Passw0rd"
    user_id = keycloak_admin.create_user(username, old)
    try:
        r = keycloak_admin.http.put(
            f"{keycloak_admin.base}/users/{user_id}", json={"requiredActions": ["UPDATE_PASSWORD"]}, timeout=30
        )
        assert r.status_code == 204, r.text
        session = HubSession(settings.hub_url)
        page = session.get("/hub/oauth_login?next=%2Fhub%2Fhome")
        form = re.search(r'<form[^>]*id="kc-form-login"[^>]*action="([^"]+)"', page.text)
        assert form, page.text[:300]
        r = session.http.post(
            html.unescape(form.group(1)), data={"username": username, "password": old}, allow_redirects=False
        )
        if r.is_redirect:  # Keycloak's required-action page
            session._insecure()
            r = session.get(r.headers["location"])
        update = re.search(r'<form[^>]*id="kc-passwd-update-form"[^>]*action="([^"]+)"', r.text)
        assert update, f"no update-password form after login (HTTP {r.status_code})"
        r = session.http.post(
            html.unescape(update.group(1)),
            data={"password-new": new, "password-confirm": new},
            allow_redirects=False,
        )
        assert r.is_redirect, f"Keycloak did not take the new password: HTTP {r.status_code}"
        session._insecure()
        assert session.get(r.headers["location"]).url.endswith("/hub/home")
        with pytest.raises(LoginFailed):
            HubSession(settings.hub_url).login(username, old)
        HubSession(settings.hub_url).login(username, new)
    finally:
        keycloak_admin.delete_user(user_id)


# ------------------------------------------------------------------------------------------------ PostgreSQL
def _connect(settings: Settings, database: str, role: str) -> psycopg.Connection:
    url = settings.database_url(database, driver="postgresql", role=role)
    return psycopg.connect(url, connect_timeout=10, autocommit=True)


def test_each_service_role_owns_its_database_and_nothing_more(lab, settings):
    with psycopg.connect(settings.postgres_dsn, autocommit=True) as su:
        for database, role in DB_ROLES.items():
            attrs = su.execute(
                "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls FROM pg_roles "
                "WHERE rolname = %s",
                (role,),
            ).fetchone()
            assert attrs == (False, False, False, False, False), f"role {role}: {attrs}"
            owner = su.execute(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (database,)
            ).fetchone()[0]
            assert owner == role, f"database {database} is owned by {owner}, not {role}"
            public = su.execute("SELECT has_database_privilege('public', %s, 'CONNECT')", (database,)).fetchone()[0]
            assert not public, f"every role may connect to database {database}"
    for database, role in DB_ROLES.items():
        with _connect(settings, database, role) as conn:
            assert conn.execute("SELECT current_user").fetchone()[0] == role
            strays = conn.execute(
                "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relowner <> "
                "current_user::regrole"
            ).fetchall()
            assert not strays, f"objects in database {database} not owned by {role}: {strays[:5]}"


def test_the_published_default_credentials_of_the_services_open_nothing(lab, settings):
    # The lab generated its services' own credentials (GENERATED_CREDENTIALS): the defaults in the source, which
    # anyone can read, are refused by PostgreSQL and MinIO.
    defaults = Credentials()
    for database, role in DB_ROLES.items():
        url = settings.database_url(database, driver="postgresql", role=role)
        url = url.replace(f":{settings.db_password(role)}@", f":{Settings(lab_dir='/nowhere').db_password(role)}@")
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(url, connect_timeout=10).close()
    catalog = _s3_as(settings, *_catalog_s3_key(settings, defaults))
    assert _denied(lambda: catalog.list_objects_v2(Bucket=settings.warehouse_bucket, MaxKeys=1))
    if settings.catalog != "nessie":
        published = {"Authorization": f"Bearer {defaults.catalog_token.get_secret_value()}"}
        assert requests.get(f"{settings.catalog_uri}/v1/config", headers=published, timeout=30).status_code == 401


@pytest.mark.parametrize("role", sorted(DB_ROLES.values()))
def test_a_service_role_cannot_connect_to_another_services_database(lab, settings, role):
    reachable = []
    for database in [*DB_ROLES, "postgres", "template1"]:
        if DB_ROLES.get(database) == role or (role == "jupyterhub" and database == "agp"):
            continue
        try:
            with _connect(settings, database, role):
                reachable.append(database)
        except psycopg.OperationalError as e:
            assert "permission denied" in str(e), f"{role} -> {database}: {e}"
    assert not reachable, f"role {role} connects to {reachable}"


def test_the_hubs_role_only_reads_the_workspace_database(lab, settings):
    with _connect(settings, "agp", "jupyterhub") as conn:
        conn.execute("SELECT count(*) FROM workspaces").fetchone()
        conn.execute("SELECT count(*) FROM memberships").fetchone()
        for statement in (
            "UPDATE workspaces SET display_name = display_name",
            "DELETE FROM memberships WHERE false",
            "INSERT INTO audit_log SELECT * FROM audit_log WHERE false",
            "CREATE TABLE hub_was_here (x int)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_no_running_service_uses_the_superuser(lab, settings):
    password = settings.credentials.postgres_password.get_secret_value()
    users = {}
    for proc in lab_processes(lab):
        try:
            env = "\0".join(f"{k}={v}" for k, v in proc.environ().items())
            cmd = "\0".join(proc.cmdline())
        except psutil.NoSuchProcess:
            continue
        if password in env or password in cmd:
            users[proc.pid] = " ".join(proc.cmdline())[:100]
    hub_settings = lab.paths.hub_settings.read_text()
    assert password not in hub_settings, f"{lab.paths.hub_settings} holds the PostgreSQL superuser's password"
    assert not users, f"processes with the PostgreSQL superuser's password: {users}"
    query = (
        "SELECT pid, datname, application_name FROM pg_stat_activity "
        "WHERE usename = %s AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
    )
    with psycopg.connect(settings.postgres_dsn, autocommit=True) as su:
        first = set(su.execute(query, (settings.credentials.postgres_user,)).fetchall())
        time.sleep(2)  # the lab's own health checks connect as the superuser for a moment: look for lasting sessions
        sessions = first & set(su.execute(query, (settings.credentials.postgres_user,)).fetchall())
    assert not sessions, f"sessions of the superuser other than this test's: {sessions}"


# ------------------------------------------------------------------------------------------------ command lines
def test_no_secret_is_on_a_command_line(lab, settings):
    values = known_secrets(settings)
    assert len(values) >= 8, values.keys()
    seen = []
    for proc in lab_processes(lab):
        try:
            cmd = "\0".join(proc.cmdline())
        except psutil.NoSuchProcess:
            continue
        seen.append(proc.pid)
        for name, value in values.items():
            if value and value in cmd:
                pytest.fail(f"{name} is on the command line of pid {proc.pid} ({Path(proc.cmdline()[0]).name})")
    assert len(seen) >= 6, f"only {len(seen)} lab processes found"
