"""Keeping each workspace's shared folder (the lab's, see :mod:`agp.spawner.shared`) open to its members only.

The same grants as Trino's rules (:func:`agp.hub.rules_sync.grants`: members and Keycloak group bindings, archived
workspaces read-only), applied as ACLs of the members' OS users. Runs after every change of workspaces or members
and every few seconds with the Trino rules; a folder is walked only when its members' access differs from what this
process last applied to it (and once for each folder after a start).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

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


class SharedFolders:
    """The ACLs of the lab's shared folders; active only where servers run as OS users and this process is root
    (elsewhere every server runs as one user, or volumes carry the folder: Kubernetes, Docker)."""

    def __init__(self, settings: Settings):
        self.root = shared_root(settings)
        self.active = settings.run_as_os_users and os.geteuid() == 0
        self.applied: dict[str, dict[int, bool]] = {}
        # One sync at a time, reading the membership inside: the last to run saw the last change.
        self._lock = threading.Lock()

    def sync(self, db: Session, hub: HubUsers) -> list[str]:
        """Apply the membership to every folder whose access changed; returns their slugs. Never raises: a
        failure is logged and the folder is tried again at the next sync."""
        if not self.active:
            return []
        changed = []
        with self._lock:
            for slug, users in access(db, hub).items():
                try:
                    folder, _ = shared.ensure_folder(self.root, slug)
                    uids = shared.uids(users)
                    if self.applied.get(slug) == uids:
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
