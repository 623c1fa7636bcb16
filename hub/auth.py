"""Keycloak login: a configured ``GenericOAuthenticator`` that finds its endpoints by OIDC discovery."""

from __future__ import annotations

from urllib.parse import urlencode

import requests
from oauthenticator.generic import GenericOAuthenticator
from traitlets import Unicode, default


def keycloak_groups(auth_state: dict) -> list[str]:
    """Keycloak sends full group paths (``/platform-admins``, ``/org/finance``); hub groups drop the leading slash."""
    groups = (auth_state.get("oauth_user") or {}).get("groups") or []
    return sorted({g.lstrip("/") for g in groups if isinstance(g, str) and g.strip("/")})


class KeycloakOAuthenticator(GenericOAuthenticator):
    """GenericOAuthenticator configured from the realm's issuer URL through OIDC discovery."""

    issuer = Unicode(
        config=True,
        help="Keycloak realm URL, e.g. http://127.0.0.1:8180/realms/antigravity. Its "
        "/.well-known/openid-configuration gives the authorize, token, userinfo and end-session endpoints.",
    )
    post_logout_url = Unicode(
        config=True, help="Where Keycloak sends the browser after its session ends (registered in the realm)."
    )

    _discovery: dict | None = None

    def discovery(self) -> dict:
        if self._discovery is None:
            if not self.issuer:
                raise ValueError("KeycloakOAuthenticator.issuer is not set: set it to the Keycloak realm URL")
            url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
            try:
                r = requests.get(url, timeout=10)
                r.raise_for_status()
                self._discovery = r.json()
            except (requests.RequestException, ValueError) as e:
                raise RuntimeError(f"OIDC discovery at {url} failed ({e}); is Keycloak running?") from e
        return self._discovery

    @default("authorize_url")
    def _authorize_url(self) -> str:
        return self.discovery()["authorization_endpoint"]

    @default("token_url")
    def _token_url(self) -> str:
        return self.discovery()["token_endpoint"]

    @default("userdata_url")
    def _userdata_url(self) -> str:
        return self.discovery()["userinfo_endpoint"]

    @default("logout_redirect_url")
    def _logout_redirect_url(self) -> str:
        end = self.discovery().get("end_session_endpoint")
        if not end:
            return ""
        params = {"client_id": self.client_id}
        if self.post_logout_url:
            params["post_logout_redirect_uri"] = self.post_logout_url
        return f"{end}?{urlencode(params)}"

    @default("username_claim")
    def _username_claim(self) -> str:
        return "preferred_username"

    @default("scope")
    def _scope(self) -> list[str]:
        return ["openid", "profile", "email"]

    @default("auth_state_groups_key")
    def _groups_key(self):
        return keycloak_groups

    @default("enable_pkce")
    def _pkce(self) -> bool:
        return True

    @default("manage_groups")
    def _manage_groups(self) -> bool:
        return True

    @default("enable_auth_state")
    def _auth_state(self) -> bool:
        return True

    @default("refresh_pre_spawn")
    def _refresh_pre_spawn(self) -> bool:
        return True

    @default("auth_refresh_age")
    def _refresh_age(self) -> int:
        return 240  # seconds; the realm's access tokens live 300
