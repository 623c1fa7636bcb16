"""The users the platform knows, as the hub knows them: a user appears after their first login.

Keycloak knows users before their first login, but the service's Keycloak client may not read the realm's users
(it has no ``view-users`` role); adding such a user waits for their first login, or goes through a Keycloak group
bound to the workspace.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

import httpx

from agp.core.names import InvalidName, validate_username

from ..store import Refused

log = logging.getLogger(__name__)


class UserDirectory:
    """Looks users up in the hub's REST API with the service's own token (scope ``list:users``)."""

    def __init__(self, api_url: str, token: str, timeout: float = 10):
        self.api_url, self.timeout = api_url.rstrip("/"), timeout
        self.headers = {"Authorization": f"token {token}"}

    def _get(self, path: str, **params) -> httpx.Response:
        try:
            return httpx.get(f"{self.api_url}{path}", params=params, headers=self.headers, timeout=self.timeout)
        except httpx.HTTPError as e:
            log.error("the hub did not answer %s: %s", path, e)
            raise Refused(503, "The hub did not answer which users exist; try again in a moment.") from e

    def exists(self, name: str) -> bool:
        try:
            validate_username(name)
        except InvalidName:
            return False
        r = self._get(f"/users/{quote(name, safe='')}")
        if r.status_code == 404:
            return False
        if r.status_code != 200:
            log.error("the hub answered HTTP %s for user %s: %s", r.status_code, name, r.text[:200])
            raise Refused(503, "The hub did not answer which users exist; try again in a moment.")
        return True

    def search(self, prefix: str, limit: int = 20) -> list[str]:
        """Names of users that start with ``prefix`` (case-insensitive, as the hub matches), sorted."""
        r = self._get("/users", name_filter=prefix.lower(), limit=max(1, min(limit, 100)))
        if r.status_code != 200:
            log.error("the hub answered HTTP %s for a user search: %s", r.status_code, r.text[:200])
            raise Refused(503, "The hub did not answer which users exist; try again in a moment.")
        return sorted(u["name"] for u in r.json() if isinstance(u, dict) and "name" in u)
