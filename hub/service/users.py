"""The users the platform knows: the hub's (a user appears there at their first login) and the Keycloak realm's
(every user who can log in, also before their first login).

The realm is read with the ``agp-services`` client's token; its service account holds ``realm-management``'s
``view-users`` role (the realm file, and ``agp lab up`` for a realm imported earlier). Two REST calls do not
justify python-keycloak as a dependency of the service; :func:`agp.core.clients.service_token` gets the token.
"""

from __future__ import annotations

import contextlib
import logging
import time
from urllib.parse import quote

import httpx

from agp.core import clients
from agp.core.names import InvalidName, validate_username
from agp.core.settings import Settings

from ..store import Refused

log = logging.getLogger(__name__)
SERVICE_ACCOUNT = "service-account-"  # Keycloak's prefix of service account users
UNAVAILABLE = "The platform did not answer which users exist; try again in a moment."


class KeycloakUsers:
    """The realm's users through Keycloak's admin REST API (read only)."""

    def __init__(self, settings: Settings, timeout: float = 10):
        self.settings, self.timeout = settings, timeout
        self.url = f"{settings.url('keycloak')}/admin/realms/{quote(settings.realm, safe='')}/users"
        self._token: tuple[str, float] = ("", 0.0)
        self._http = httpx.Client(timeout=timeout)  # one pool: a new connection per lookup cost ~100 ms here

    def _headers(self) -> dict[str, str]:
        token, until = self._token
        if time.monotonic() >= until:
            token = clients.service_token(self.settings)
            self._token = (token, time.monotonic() + 50)  # Keycloak's tokens live minutes; renew well before
        return {"Authorization": f"Bearer {token}"}

    def find(self, **params) -> list[dict]:
        try:
            r = self._http.get(self.url, params=params, headers=self._headers())
            r.raise_for_status()
        except Exception as e:  # an HTTP error, or no token (requests' errors) from service_token
            log.error("Keycloak did not list users (%s): %s", params, e)
            raise Refused(503, UNAVAILABLE) from e
        # A client's service account is a user to Keycloak, named with Keycloak's reserved prefix; never a person.
        return [
            u
            for u in r.json()
            if isinstance(u, dict) and u.get("enabled", True) and not str(u.get("username")).startswith(SERVICE_ACCOUNT)
        ]

    def exists(self, name: str) -> bool:
        found = self.find(username=name, exact="true", briefRepresentation="true")
        return any(u.get("username") == name for u in found)

    def search(self, prefix: str, limit: int) -> list[str]:
        found = self.find(search=prefix, max=limit, briefRepresentation="true")
        return [u["username"] for u in found if str(u.get("username", "")).startswith(prefix)]


class UserDirectory:
    """Looks users up in the hub's REST API with the service's own token (scope ``list:users``), then in the
    Keycloak realm when one is given."""

    def __init__(self, api_url: str, token: str, keycloak: KeycloakUsers | None = None, timeout: float = 10):
        self.api_url, self.timeout, self.keycloak = api_url.rstrip("/"), timeout, keycloak
        self.headers = {"Authorization": f"token {token}"}
        self._http = httpx.Client(timeout=timeout, headers=self.headers)

    def _get(self, path: str, **params) -> httpx.Response:
        try:
            r = self._http.get(f"{self.api_url}{path}", params=params)
        except httpx.HTTPError as e:
            log.error("the hub did not answer %s: %s", path, e)
            raise Refused(503, UNAVAILABLE) from e
        if r.status_code not in (200, 404):
            log.error("the hub answered HTTP %s for %s: %s", r.status_code, path, r.text[:200])
            raise Refused(503, UNAVAILABLE)
        return r

    def exists(self, name: str) -> bool:
        try:
            validate_username(name)
        except InvalidName:
            return False
        if self._get(f"/users/{quote(name, safe='')}").status_code == 200:
            return True
        return self.keycloak is not None and self.keycloak.exists(name)

    def search(self, prefix: str, limit: int = 20) -> list[str]:
        """Names of users that start with ``prefix`` (lowercase, as user names are), sorted."""
        prefix, limit = prefix.lower(), max(1, min(limit, 100))
        r = self._get("/users", name_filter=prefix, limit=limit)
        names = {u["name"] for u in r.json() if isinstance(u, dict) and "name" in u} if r.status_code == 200 else set()
        if self.keycloak is not None:
            # suggestions only: the hub's users still help; adding a member asks again
            with contextlib.suppress(Refused):
                names.update(self.keycloak.search(prefix, limit))
        valid = []
        for name in names:
            try:
                valid.append(validate_username(name))
            except InvalidName:
                continue  # e.g. Keycloak's service accounts' names never become hub users
        return sorted(valid)[:limit]
