"""Auth state: Keycloak's tokens are kept (encrypted) for each user and refreshed before a spawn."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_keycloak_tokens_are_kept_in_encrypted_auth_state(login, admin_api):
    login("bob")
    model = admin_api.hub("GET", "/users/bob").json()
    state = model["auth_state"]
    assert state["access_token"] and state["refresh_token"]
    assert "/energy" in state["oauth_user"]["groups"]


def test_auth_state_is_not_readable_without_the_admin_scope(login, user_api):
    login("bob")
    model = user_api("bob").hub("GET", "/users/bob").json()
    assert "auth_state" not in model
