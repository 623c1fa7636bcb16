"""Faults and attacks: a store down during provisioning, a database restart, XSRF and scope abuse."""

from __future__ import annotations

import time

import pytest
import requests

from agp.compose.lab import Lab
from agp.core import clients

pytestmark = pytest.mark.integration


def _buckets(settings) -> set[str]:
    return {b["Name"] for b in clients.s3_client(settings).list_buckets()["Buckets"]}


def test_minio_down_during_provisioning_leaves_failed_then_retry_completes(
    lab: Lab, new_workspace, admin_api, settings
):
    lab.stop("minio")
    try:
        failed = new_workspace(expect=503)
    finally:
        lab.restart("minio")
    slug = failed["slug"]
    assert failed["state"] == "failed"
    assert "the S3 store (MinIO) could not create the workspace bucket" in failed["failure_reason"]
    assert f"Workspace {slug!r} is recorded but not ready" in failed["detail"]
    assert f"agp-ws-{slug}" not in _buckets(settings), "no orphan bucket"
    assert (slug.replace("-", "_"),) not in clients.load_catalog(settings).list_namespaces(), "no orphan namespace"

    retried = admin_api("POST", f"/workspaces/{slug}/provision")
    assert retried.status_code == 200, retried.text
    assert retried.json()["state"] == "ready" and retried.json()["failure_reason"] is None
    assert f"agp-ws-{slug}" in _buckets(settings)
    outcomes = [
        e["outcome"]
        for e in admin_api("GET", f"/workspaces/{slug}/audit").json()
        if e["action"] == "workspace.provision"
    ]
    assert outcomes[:2] == ["ok", "error"], "newest first: the retry succeeded after the failure"


def test_catalog_down_rolls_back_the_bucket(lab: Lab, new_workspace, admin_api, settings):
    catalog = "nessie" if settings.catalog == "nessie" else "catalog"
    lab.stop(catalog)
    try:
        failed = new_workspace(expect=503)
    finally:
        lab.restart(catalog)
    assert "the Iceberg REST catalog could not create the namespace" in failed["failure_reason"]
    assert f"agp-ws-{failed['slug']}" not in _buckets(settings), "the bucket made before the failure is rolled back"
    assert admin_api("POST", f"/workspaces/{failed['slug']}/provision").json()["state"] == "ready"


def test_hub_and_service_survive_a_postgres_restart(lab: Lab, admin_api, login, new_workspace):
    lab.restart("postgres")
    deadline = time.monotonic() + 30
    while True:
        r = admin_api("GET", "/workspaces")
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert r.status_code == 200, r.text
    assert "demo" in {w["slug"] for w in r.json()}
    # Keycloak's own pool drops its broken connections on first use: a login may fail once or twice.
    deadline = time.monotonic() + 60
    while True:
        try:
            session = login("alice")
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)
    me = session.hub_api("GET", "/user")
    assert me.status_code == 200 and me.json()["name"] == "alice"
    # The catalog's pool reconnects too: the first workspace after the restart gets its namespace (before: the
    # catalog answered 500, "terminating connection due to administrator command", and provisioning rolled back).
    assert new_workspace()["state"] == "ready"


# -- XSRF on cookie-authenticated changes


@pytest.fixture
def admin_browser(login, hub_url):
    session = login("admin")
    page = session.get("/services/workspaces/")
    assert page.status_code == 200 and "Workspaces" in page.text
    return session


def _post(session, hub_url, path, headers=None, json=None):
    return session.http.post(
        f"{hub_url}/services/workspaces/api{path}", json=json or {}, headers=headers or {}, timeout=60
    )


def test_a_cookie_request_without_xsrf_is_refused(admin_browser, hub_url):
    r = _post(admin_browser, hub_url, "/workspaces", json={"slug": "xsrf-none"})
    assert r.status_code == 403
    assert "XSRF token is missing" in r.json()["detail"]


def test_a_foreign_xsrf_token_is_refused(admin_browser, hub_url):
    r = _post(admin_browser, hub_url, "/workspaces", headers={"X-XSRFToken": "forged"}, json={"slug": "xsrf-x"})
    assert r.status_code == 403


def test_a_no_cors_request_is_refused_even_with_the_token(admin_browser, hub_url):
    token = admin_browser.http.cookies.get("_xsrf", path="/services/workspaces")
    headers = {"X-XSRFToken": token, "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Site": "cross-site"}
    r = _post(admin_browser, hub_url, "/workspaces", headers=headers, json={"slug": "xsrf-nocors"})
    assert r.status_code == 403
    assert "no-cors" in r.json()["detail"]


def test_a_cookie_request_with_the_xsrf_token_works(admin_browser, hub_url, settings):
    from conftest import remove_workspace

    token = admin_browser.http.cookies.get("_xsrf", path="/services/workspaces")
    slug = f"xsrf-ok-{int(time.time())}"
    try:
        r = _post(admin_browser, hub_url, "/workspaces", headers={"X-XSRFToken": token}, json={"slug": slug})
        assert r.status_code == 201, r.text
    finally:
        remove_workspace(settings, slug)


# -- scopes


def test_a_token_cannot_have_more_scopes_than_its_owner(login):
    alice = login("alice")
    r = alice.hub_api("POST", "/users/alice/tokens", json={"scopes": ["admin:users"], "note": "escalate"})
    assert r.status_code == 400
    assert "Not assigning requested scopes" in r.json()["message"] and "not held by User alice" in r.json()["message"]


def test_a_token_without_the_service_scope_is_refused(login, hub_url):
    alice = login("alice")
    narrow = alice.new_token("alice", scopes=["read:users:name!user"])
    r = requests.get(
        f"{hub_url}/services/workspaces/api/workspaces", headers={"Authorization": f"token {narrow}"}, timeout=30
    )
    assert r.status_code == 403
    assert "does not grant access to the workspace service" in r.json()["detail"]


def test_a_forged_token_is_refused(hub_url):
    r = requests.get(
        f"{hub_url}/services/workspaces/api/workspaces", headers={"Authorization": "token forged"}, timeout=30
    )
    assert r.status_code == 401
