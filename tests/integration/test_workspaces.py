"""The workspace service against the real hub, PostgreSQL, MinIO, Nessie and Trino."""

from __future__ import annotations

import pytest

from agp.core import clients

pytestmark = pytest.mark.integration


def test_create_provisions_bucket_namespace_and_trino_schema(new_workspace, settings, trino_conn):
    ws = new_workspace(display_name="Grid operations", description="tests")
    slug = ws["slug"]
    assert ws["state"] == "ready", ws
    assert ws["bucket"] == f"agp-ws-{slug}"
    assert ws["namespace"] == ws["trino_schema"] == slug.replace("-", "_")
    assert [m["username"] for m in ws["members"]] == ["admin"] and ws["members"][0]["role"] == "owner"

    s3 = clients.s3_client(settings)
    assert ws["bucket"] in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert (ws["namespace"],) in clients.load_catalog(settings).list_namespaces()
    cur = trino_conn.cursor()
    cur.execute("SHOW SCHEMAS FROM iceberg")
    assert ws["trino_schema"] in {row[0] for row in cur.fetchall()}


def test_creation_is_audited(new_workspace, admin_api):
    slug = new_workspace()["slug"]
    events = admin_api("GET", f"/workspaces/{slug}/audit").json()
    actions = {(e["action"], e["outcome"]) for e in events}
    assert {("workspace.create", "ok"), ("workspace.provision", "ok")} <= actions
    assert all(e["actor"] == "admin" for e in events)


@pytest.mark.parametrize(
    "hostile",
    ["..", "a/b", "fin\u0430nce", "x" * 10_000, "fin'ance", "select", "Finance", "abc-", "a_b", "hub", ""],
    ids=["dots", "slash", "lookalike", "10k", "quote", "reserved", "upper", "hyphen-end", "underscore", "hub", "empty"],
)
def test_hostile_names_get_a_4xx_that_says_what_is_allowed(admin_api, settings, hostile):
    before = {b["Name"] for b in clients.s3_client(settings).list_buckets()["Buckets"]}
    r = admin_api("POST", "/workspaces", json={"slug": hostile})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    text = detail if isinstance(detail, str) else " ".join(d["msg"] for d in detail)
    assert "Workspace names are 3 to 40 characters" in text or "at most 10000 characters" in text
    after = {b["Name"] for b in clients.s3_client(settings).list_buckets()["Buckets"]}
    assert after == before, "a refused name must not leave a bucket behind"


def test_a_duplicate_name_is_a_409(new_workspace):
    slug = new_workspace()["slug"]
    dup = new_workspace(expect=409, slug=slug)
    assert f"A workspace named {slug!r} exists already" in dup["detail"]


def test_only_admins_create_workspaces(user_api):
    r = user_api("alice")("POST", "/workspaces", json={"slug": "alice-own"})
    assert r.status_code == 403
    assert r.json()["detail"] == "Only platform admins create workspaces."


def test_members_see_only_their_workspaces(new_workspace, user_api, admin_api):
    slug = new_workspace()["slug"]
    alice = user_api("alice")
    assert slug not in {w["slug"] for w in alice("GET", "/workspaces").json()}
    r = alice("GET", f"/workspaces/{slug}")
    assert r.status_code == 404, "another workspace's resources do not exist for a non-member"
    assert alice("GET", f"/workspaces/{slug}/audit").status_code == 404
    admin_api("PUT", f"/workspaces/{slug}/members/alice", json={"role": "viewer"})
    assert slug in {w["slug"] for w in alice("GET", "/workspaces").json()}
    assert alice("GET", f"/workspaces/{slug}").json()["your_role"] == "viewer"


def test_a_viewer_cannot_manage_members_an_owner_can(new_workspace, user_api, admin_api):
    slug = new_workspace()["slug"]
    admin_api("PUT", f"/workspaces/{slug}/members/alice", json={"role": "viewer"})
    alice = user_api("alice")
    r = alice("PUT", f"/workspaces/{slug}/members/bob", json={"role": "editor"})
    assert r.status_code == 403
    assert "Only owners" in r.json()["detail"]
    admin_api("PUT", f"/workspaces/{slug}/members/alice", json={"role": "owner"})
    r = alice("PUT", f"/workspaces/{slug}/members/bob", json={"role": "editor"})
    assert r.status_code == 200, r.text
    assert {m["username"]: m["role"] for m in r.json()["members"]}["bob"] == "editor"
    denied = [e for e in admin_api("GET", f"/workspaces/{slug}/audit").json() if e["outcome"] == "denied"]
    assert denied and denied[-1]["actor"] == "alice"


def test_the_last_owner_cannot_be_removed(new_workspace, admin_api):
    slug = new_workspace()["slug"]
    r = admin_api("DELETE", f"/workspaces/{slug}/members/admin")
    assert r.status_code == 409
    assert "last owner" in r.json()["detail"]


def test_a_keycloak_group_binding_makes_its_members_members(new_workspace, user_api):
    slug = new_workspace(keycloak_group="/energy", group_role="viewer")["slug"]
    assert user_api("bob")("GET", f"/workspaces/{slug}").json()["your_role"] == "viewer"
    assert user_api("alice")("GET", f"/workspaces/{slug}").status_code == 404


def test_openapi_document_lists_the_api(admin_api):
    doc = admin_api.http.get(admin_api.base + "/openapi.json", timeout=30).json()
    paths = set(doc["paths"])
    assert {
        "/services/workspaces/api/workspaces",
        "/services/workspaces/api/workspaces/{slug}",
        "/services/workspaces/api/workspaces/{slug}/members/{username}",
        "/services/workspaces/api/audit",
    } <= paths
