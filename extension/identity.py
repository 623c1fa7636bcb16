"""The server extension's ``/agp/workspaces``: who the user is in this workspace, and their other workspaces.

Forwarded to the workspace service (``GET /api/me``, ``GET /api/workspaces``) with this server's own hub token, so
the service answers for this server's user only. The answer is built here from checked fields (a slug is a workspace
name, a role one of the known roles), never passed through: the lab extension's identity bar and its switcher read
it. Whether another workspace's server runs is asked of the proxy (a server answers its ``/api``, a stopped one is
the hub's redirect); the switcher links a running server's lab, else the hub's spawn page of that workspace.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import quote

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from .jobs import ServiceClient, http_error

ROLES = ("owner", "editor", "viewer")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
PROBE_SECONDS = 3.0


def workspace_entry(ws: Any, user: str, base_url: str, current: str) -> dict | None:
    """One workspace of the service's list as the switcher shows it, or None for one that is not the user's (an
    admin sees every workspace; the switcher lists those they are a member of) or that is malformed (pure)."""
    if not isinstance(ws, dict) or not isinstance(ws.get("slug"), str) or not SLUG.match(ws["slug"]):
        return None
    role = ws.get("your_role")
    if role not in ROLES:
        return None
    slug = ws["slug"]
    base = "/" + base_url.strip("/") + "/" if base_url.strip("/") else "/"
    name = str(ws.get("display_name") or slug)[:200]
    state = str(ws.get("state") or "unknown")[:32]
    return {
        "slug": slug,
        "display_name": name,
        "role": role,
        "read_only": role == "viewer",
        "state": state,
        "current": slug == current,
        "lab_url": f"{base}user/{quote(user, safe='')}/{slug}/lab",
        "spawn_url": f"{base}hub/spawn/{quote(user, safe='')}/{slug}",
    }


def identity(me: Any, workspaces: Any, current: str, base_url: str) -> dict:
    """The answer of ``/agp/workspaces`` from the service's ``/api/me`` and ``/api/workspaces`` (pure)."""
    if not isinstance(me, dict) or not isinstance(me.get("name"), str) or not isinstance(workspaces, list):
        raise http_error(502, "The workspace service answered something this server does not understand.")
    user = me["name"]
    entries = [e for e in (workspace_entry(ws, user, base_url, current) for ws in workspaces) if e]
    entries.sort(key=lambda e: (not e["current"], e["display_name"].lower()))
    mine = next((e for e in entries if e["current"]), None)
    base = "/" + base_url.strip("/") + "/" if base_url.strip("/") else "/"
    return {
        "user": user,
        "admin": bool(me.get("admin")),
        "workspace": current,
        "display_name": mine["display_name"] if mine else current,
        "role": mine["role"] if mine else ("admin" if me.get("admin") else None),
        "read_only": mine["read_only"] if mine else not me.get("admin"),
        "hub_home": f"{base}hub/home",
        "workspaces": entries,
    }


class WorkspacesHandler(APIHandler):
    @web.authenticated
    async def get(self):
        backend = self.settings["agp_jobs"]
        service = ServiceClient(backend.environ, backend.timeout)
        me, workspaces = await asyncio.gather(
            service.json("GET", f"{service.base}/api/me"), service.json("GET", f"{service.base}/api/workspaces")
        )
        answer = identity(me, workspaces, service.workspace, backend.environ.get("JUPYTERHUB_BASE_URL", "/"))
        proxy = service.base.removesuffix("/services/workspaces")
        others = [e for e in answer["workspaces"] if not e["current"]]
        running = await asyncio.gather(*(_runs(proxy, e["lab_url"].removesuffix("/lab")) for e in others))
        for entry, up in zip(others, running, strict=True):
            entry["running"] = up
        for entry in answer["workspaces"]:
            entry.setdefault("running", entry["current"])
            entry["url"] = entry["lab_url"] if entry["running"] else entry["spawn_url"]
        self.set_header("Cache-Control", "no-store")
        self.finish(answer)


async def _runs(proxy: str, server_path: str) -> bool:
    """Whether the server at ``server_path`` runs: its ``/api`` answers (unauthenticated, the server's version);
    the hub answers for a stopped one with a redirect or an error."""
    request = HTTPRequest(
        f"{proxy}{server_path}/api",
        request_timeout=PROBE_SECONDS,
        connect_timeout=PROBE_SECONDS,
        follow_redirects=False,
    )
    try:
        response = await AsyncHTTPClient().fetch(request, raise_error=False)
    except OSError:
        return False
    return response.code == 200 and b'"version"' in (response.body or b"")


def handlers(base_url: str) -> list[tuple[str, type]]:
    return [(url_path_join(base_url, "agp", "workspaces"), WorkspacesHandler)]
