"""What the workspace page calls, against the running lab: unarchive, role changes, members only among the users the
platform knows (the hub's and Keycloak's), the audit's filter and paging, the member lookup; each refused to those
who do not manage the workspace."""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture
def ws(new_workspace, admin_api) -> str:
    """A workspace of its own: admin owner, alice editor."""
    slug = new_workspace()["slug"]
    assert admin_api("PUT", f"/workspaces/{slug}/members/alice", json={"role": "editor"}).status_code == 200
    return slug


def audit(api, slug: str, **params) -> tuple[list[dict], int]:
    r = api("GET", f"/workspaces/{slug}/audit", params=params)
    assert r.status_code == 200, r.text
    return r.json(), int(r.headers["X-Total-Count"])


def test_archive_then_unarchive_brings_the_workspace_back_and_is_audited(ws, admin_api):
    assert admin_api("POST", f"/workspaces/{ws}/archive").json()["state"] == "archived"
    r = admin_api("POST", f"/workspaces/{ws}/unarchive")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "ready"
    events, _ = audit(admin_api, ws, action="workspace.")
    assert [e["action"] for e in events][:2] == ["workspace.unarchive", "workspace.archive"]
    assert events[0]["detail"] == {"state": "ready"} and events[1]["detail"] == {"previous": "ready"}
    r = admin_api("POST", f"/workspaces/{ws}/unarchive")
    assert r.status_code == 409 and "not archived" in r.json()["detail"]


def test_unarchive_is_refused_to_editors_and_strangers(ws, admin_api, user_api):
    admin_api("POST", f"/workspaces/{ws}/archive")
    r = user_api("alice")("POST", f"/workspaces/{ws}/unarchive")
    assert r.status_code == 403, r.text
    assert user_api("bob")("POST", f"/workspaces/{ws}/unarchive").status_code == 404
    assert admin_api("GET", f"/workspaces/{ws}").json()["state"] == "archived"
    events, _ = audit(admin_api, ws, action="workspace.unarchive")
    assert [(e["actor"], e["outcome"]) for e in events] == [("alice", "denied")]


def test_a_role_change_records_the_role_given_and_the_one_before(ws, admin_api):
    r = admin_api("PUT", f"/workspaces/{ws}/members/alice", json={"role": "viewer"})
    assert r.status_code == 200, r.text
    assert {m["username"]: m["role"] for m in r.json()["members"]}["alice"] == "viewer"
    events, _ = audit(admin_api, ws, action="member.set")
    assert events[0]["detail"] == {"username": "alice", "role": "viewer", "previous": "editor"}
    assert events[1]["detail"] == {"username": "alice", "role": "editor"}, "an addition has no previous role"


def test_role_changes_are_refused_to_non_owners_and_the_last_owner_stays(ws, admin_api, user_api):
    alice = user_api("alice")
    r = alice("PUT", f"/workspaces/{ws}/members/alice", json={"role": "owner"})
    assert r.status_code == 403, "an editor does not promote herself"
    r = admin_api("PUT", f"/workspaces/{ws}/members/admin", json={"role": "editor"})
    assert r.status_code == 409 and "last owner" in r.json()["detail"]
    roles = {m["username"]: m["role"] for m in admin_api("GET", f"/workspaces/{ws}").json()["members"]}
    assert roles == {"admin": "owner", "alice": "editor"}
    # with a second owner, the first may step down
    assert admin_api("PUT", f"/workspaces/{ws}/members/alice", json={"role": "owner"}).status_code == 200
    assert admin_api("PUT", f"/workspaces/{ws}/members/admin", json={"role": "editor"}).status_code == 200


def test_only_users_the_platform_knows_become_members(ws, admin_api, keycloak_admin):
    ghost = f"ghost-{uuid.uuid4().hex[:8]}"
    r = admin_api("PUT", f"/workspaces/{ws}/members/{ghost}", json={"role": "editor"})
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == (
        f"There is no user {ghost!r} on the platform; a user appears here after their first login."
    )
    assert ghost not in {m["username"] for m in admin_api("GET", f"/workspaces/{ws}").json()["members"]}
    events, _ = audit(admin_api, ws, outcome="refused")
    assert events[0]["detail"] == {"username": ghost, "role": "editor", "reason": "unknown user"}
    # Keycloak's service account is a user to Keycloak, never a member
    r = admin_api("PUT", f"/workspaces/{ws}/members/service-account-agp-services", json={"role": "viewer"})
    assert r.status_code == 422, r.text

    # a user of the realm who never logged in to the hub is known
    newcomer = f"newcomer-{uuid.uuid4().hex[:6]}"
    user_id = keycloak_admin.create_user(newcomer, "newcomer-pass-1")
    try:
        assert admin_api.hub("GET", f"/users/{newcomer}").status_code == 404
        r = admin_api("PUT", f"/workspaces/{ws}/members/{newcomer}", json={"role": "viewer"})
        assert r.status_code == 200, r.text
    finally:
        keycloak_admin.delete_user(user_id)


def test_the_audit_pages_and_filters(ws, admin_api):
    for role in ("viewer", "editor", "viewer", "editor"):
        assert admin_api("PUT", f"/workspaces/{ws}/members/alice", json={"role": role}).status_code == 200
    everything, total = audit(admin_api, ws, limit=1000)
    assert total == len(everything) >= 7  # create, provision, 5 member.set
    first, t1 = audit(admin_api, ws, limit=3, offset=0)
    second, t2 = audit(admin_api, ws, limit=3, offset=3)
    assert t1 == t2 == total
    assert first + second == everything[:6], "pages are consecutive, newest first, without gaps or repeats"
    members, mtotal = audit(admin_api, ws, action="member.")
    assert mtotal == 5 and {e["action"] for e in members} == {"member.set"}
    assert [e["detail"]["role"] for e in members[:4]] == ["editor", "viewer", "editor", "viewer"]
    assert audit(admin_api, ws, action="member%")[1] == 0, "LIKE's wildcards are taken literally"
    assert audit(admin_api, ws, actor="alice")[1] == 0
    assert audit(admin_api, ws, actor="admin")[1] == total
    assert admin_api("GET", f"/workspaces/{ws}/audit", params={"limit": 0}).status_code == 422


def test_the_audit_and_the_member_lookup_are_for_owners(ws, admin_api, user_api):
    alice, bob = user_api("alice"), user_api("bob")
    assert alice("GET", f"/workspaces/{ws}/audit").status_code == 403
    assert bob("GET", f"/workspaces/{ws}/audit").status_code == 404
    assert alice("GET", f"/workspaces/{ws}/candidates", params={"q": "b"}).status_code == 403
    assert bob("GET", f"/workspaces/{ws}/candidates", params={"q": "a"}).status_code == 404
    r = admin_api("GET", f"/workspaces/{ws}/candidates", params={"q": "b"})
    assert r.status_code == 200, r.text
    assert {"name": "bob", "member": False} in r.json()["users"]
    names = [u["name"] for u in admin_api("GET", f"/workspaces/{ws}/candidates", params={"q": "al"}).json()["users"]]
    assert "alice" in names and all(n.startswith("al") for n in names)
    found = admin_api("GET", f"/workspaces/{ws}/candidates", params={"q": "alice"}).json()["users"]
    assert {"name": "alice", "member": True} in found
