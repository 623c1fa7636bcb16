"""Logging in through Keycloak: the real login form, groups and admin rights from Keycloak groups, logout."""

from __future__ import annotations

import uuid

import pytest
from hubclient import HubSession, LoginFailed

pytestmark = pytest.mark.integration


def test_demo_user_logs_in_through_keycloak_and_sees_her_workspaces(login):
    alice = login("alice")
    home = alice.get("/hub/home")
    assert "My workspaces" in home.text
    assert 'data-slug="demo"' in home.text
    me = alice.hub_api("GET", "/user").json()
    assert me["name"] == "alice"
    assert me["admin"] is False
    assert "finance" in me["groups"], "Keycloak's /finance becomes the hub group finance"


def test_wrong_password_is_refused(hub_url):
    with pytest.raises(LoginFailed, match="Keycloak refused alice"):
        HubSession(hub_url).login("alice", "not-the-password")


def test_platform_admins_group_makes_hub_admins(login):
    me = login("admin").hub_api("GET", "/user").json()
    assert me["admin"] is True
    assert "platform-admins" in me["groups"]


def test_admin_rights_follow_the_keycloak_group(hub_url, keycloak_admin, settings):
    name = f"carol-{uuid.uuid4().hex[:6]}"
    user_id = keycloak_admin.create_user(name, "carol-pass-1")
    try:
        keycloak_admin.join(user_id, "platform-admins")
        session = HubSession(hub_url)
        session.login(name, "carol-pass-1")
        assert session.hub_api("GET", "/user").json()["admin"] is True

        keycloak_admin.leave(user_id, "platform-admins")
        again = HubSession(hub_url)
        again.login(name, "carol-pass-1")
        me = again.hub_api("GET", "/user").json()
        assert me["admin"] is False, "leaving platform-admins in Keycloak revokes hub admin at the next login"
        assert "platform-admins" not in me["groups"]
    finally:
        keycloak_admin.delete_user(user_id)


def test_logout_ends_the_keycloak_session_too(login, settings):
    bob = login("bob")
    r = bob.http.get(f"{settings.hub_url}/hub/logout", allow_redirects=False, timeout=30)
    # The hub clears its cookie, then sends the browser to Keycloak's end-session endpoint.
    while r.is_redirect and "/protocol/openid-connect/logout" not in r.headers["location"]:
        r = bob.http.get(
            r.headers["location"] if "://" in r.headers["location"] else settings.hub_url + r.headers["location"],
            allow_redirects=False,
            timeout=30,
        )
    assert r.is_redirect
    assert r.headers["location"].startswith(f"{settings.keycloak_issuer}/protocol/openid-connect/logout")
    assert "client_id=jupyterhub" in r.headers["location"]
