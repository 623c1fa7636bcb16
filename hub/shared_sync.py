"""Keeping each workspace's shared folder (the lab's, see :mod:`agp.spawner.shared`) open to its members only.

In the lab, the same grants as Trino's rules (:func:`agp.hub.rules_sync.grants`: members and Keycloak group
bindings, archived workspaces read-only), applied as ACLs of the members' OS users. Runs after every change of
workspaces or members and every few seconds with the Trino rules; a folder is walked only when its members' access
differs from what this process last applied to it (and once for each folder after a start).

Where servers mount the folder as a volume (Kubernetes, Docker), a running server keeps the mount it started with:
a member who loses access to a workspace's folder, or the right to write it, has their server of that workspace
stopped, so that the next start mounts what the role allows. (Changes made while the service was down are not
seen: it compares with what it saw last.)
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from agp.core.models import Workspace
from agp.core.names import WorkspaceNames
from agp.core.settings import Settings
from agp.spawner import shared

from .rules_sync import HubUsers, grants

log = logging.getLogger(__name__)


def shared_root(settings: Settings) -> Path:
    """Where the lab keeps one shared folder per workspace (the spawner's ``shared_root``)."""
    return settings.servers_root / "shared" if settings.run_as_os_users else settings.lab_dir / "shared"


def access(db: Session, hub: HubUsers) -> dict[str, dict[str, bool]]:
    """Workspace slug -> its members (hub user -> may write), for provisioned and archived workspaces."""
    slug_of = {WorkspaceNames(slug).schema: slug for slug in db.scalars(select(Workspace.slug))}
    return {
        slug_of[g.schema]: {**{u: False for u in g.readers}, **{u: True for u in g.writers}}
        for g in grants(db, hub)
        if g.schema in slug_of
    }


def lost_access(before: dict[str, dict[str, bool]], now: dict[str, dict[str, bool]]) -> list[tuple[str, str]]:
    """(user, workspace) pairs whose access to the shared folder went away or lost writing between two syncs."""
    out = []
    for slug, users in sorted(before.items()):
        current = now.get(slug, {})
        for user, writes in sorted(users.items()):
            if user not in current or (writes and not current[user]):
                out.append((user, slug))
    return out


def hub_server_stopper(api_url: str, token: str) -> Callable[[str, str], None]:
    """Stops one named server through the hub's API (the service's role has the ``servers`` scope)."""

    def stop(user: str, slug: str) -> None:
        url = f"{api_url}/users/{quote(user, safe='')}/servers/{quote(slug, safe='')}"
        r = httpx.delete(url, headers={"Authorization": f"token {token}"}, timeout=30)
        if r.status_code not in (202, 204, 404):  # 404: the user has no such server (running or not)
            r.raise_for_status()

    return stop


class SharedFolders:
    """The ACLs of the lab's shared folders; active only where servers run as OS users and this process is root
    (elsewhere every server runs as one user, or volumes carry the folder: Kubernetes, Docker)."""

    def __init__(self, settings: Settings, stop_server: Callable[[str, str], None] | None = None):
        self.root = shared_root(settings)
        self.active = settings.spawner == "local" and settings.run_as_os_users and os.geteuid() == 0
        self.volumes = settings.spawner in ("kubernetes", "docker")
        self.stop_server = stop_server
        self.applied: dict[str, dict[int, bool]] = {}
        self.seen: dict[str, dict[str, bool]] | None = None  # with volumes: the access the last sync saw
        # One sync at a time, reading the membership inside: the last to run saw the last change.
        self._lock = threading.Lock()

    def sync(self, db: Session, hub: HubUsers) -> list[str]:
        """Apply the membership to every folder whose access changed; returns their slugs. Never raises: a
        failure is logged and the folder is tried again at the next sync."""
        if self.volumes:
            return self._stop_servers_that_lost_access(db, hub)
        if not self.active:
            return []
        changed = []
        with self._lock:
            for slug, users in access(db, hub).items():
                try:
                    folder, _ = shared.ensure_folder(self.root, slug)
                    uids = shared.uids(users)
                    # Unchanged, and the folder's own ACL still says so (a spawner that granted a member while
                    # the member was being removed is undone here, at the latest at the next periodic sync).
                    if self.applied.get(slug) == uids and shared.current(folder) == shared.permissions(uids, True, 0):
                        continue
                    count = shared.apply(folder, uids)
                except Exception:
                    log.exception("shared folder of %s: could not apply its members' access", slug)
                    self.applied.pop(slug, None)
                    continue
                self.applied[slug] = uids
                changed.append(slug)
                log.info("shared folder %s: access of %d OS users applied to %d entries", folder, len(uids), count)
        return changed

    def _stop_servers_that_lost_access(self, db: Session, hub: HubUsers) -> list[str]:
        with self._lock:
            now = access(db, hub)
            before, self.seen = self.seen, now
            if before is None or self.stop_server is None:
                return []
            stopped = []
            for user, slug in lost_access(before, now):
                try:
                    self.stop_server(user, slug)
                except Exception:
                    log.exception("could not stop the server %s of %s after a change of its access", slug, user)
                    continue
                log.info("stopped the server %s of %s: its access to the shared folder was reduced", slug, user)
                stopped.append(f"{user}/{slug}")
            return stopped
