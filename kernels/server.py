"""This kernel's workspace server, as the kernel reaches it: its catalog API (``/agp/catalog``) with the server's
own token. Light on imports: ``%sql`` uses it too."""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger(__name__)

PAGE = 1000


class ServerCatalog:
    """The workspace server's catalog API, as this kernel's server token (every page of every listing)."""

    def __init__(self, base_url: str, token: str):
        import requests

        self.base = base_url.rstrip("/") + "/agp/catalog"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"token {token}"

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> ServerCatalog | None:
        """This kernel's workspace server (its URL and token are in the environment), or ``None`` outside one."""
        env = os.environ if environ is None else environ
        url, token = env.get("JUPYTERHUB_SERVICE_URL"), env.get("JUPYTERHUB_API_TOKEN")
        return cls(url, token) if url and token else None

    def _get(self, path: str, **params: Any) -> Any:
        r = self.http.get(f"{self.base}{path}", params=params, timeout=60)
        if r.status_code != 200:
            raise RuntimeError(f"The workspace server could not list {path}: HTTP {r.status_code} {r.reason}")
        return r.json()

    def _all(self, path: str) -> list[str]:
        items: list[str] = []
        while True:
            page = self._get(path, offset=len(items), limit=PAGE)
            items += page["items"]
            if not page["items"] or len(items) >= page["total"]:
                return items

    def namespaces(self) -> list[str]:
        return self._all("/namespaces")

    def tables(self, namespace: str) -> list[str]:
        return self._all(f"/namespaces/{namespace}/tables")

    def table(self, namespace: str, table: str) -> dict:
        return self._get(f"/namespaces/{namespace}/tables/{table}")

    def invalidate(self) -> bool:
        """Tell the server to drop its cached catalog answers; False (and a log line) where it does not."""
        import requests

        try:
            r = self.http.post(f"{self.base}/invalidate", timeout=5)
        except requests.RequestException as e:
            log.warning("could not reach the workspace server to refresh its catalog cache: %s", e)
            return False
        if r.status_code != 204:
            log.warning("the workspace server refused to refresh its catalog cache: HTTP %s", r.status_code)
        return r.status_code == 204
