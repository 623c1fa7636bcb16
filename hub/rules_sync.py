"""Keeping Trino's rules file equal to the membership table (and the hub's admins and groups)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from agp.core.models import Role, State, Workspace
from agp.core.names import WorkspaceNames
from agp.core.settings import Settings

from .trino_rules import Grant, build_rules, write_atomically

log = logging.getLogger(__name__)


@dataclass
class HubUsers:
    admins: set[str] = field(default_factory=set)
    groups: dict[str, set[str]] = field(default_factory=dict)  # hub group name -> user names


def grants(db: Session, hub: HubUsers) -> list[Grant]:
    """Who reads and who writes each provisioned workspace's schema; archived workspaces are read-only."""
    out = []
    rows = db.scalars(select(Workspace).options(selectinload(Workspace.members)))
    for ws in rows:
        if State(ws.state) not in (State.ready, State.archived):
            continue
        roles = {m.username: Role(m.role) for m in ws.members}
        if ws.keycloak_group:
            for user in hub.groups.get(ws.keycloak_group.strip("/"), set()):
                roles.setdefault(user, Role(ws.group_role))
        writers = {u for u, r in roles.items() if r in (Role.owner, Role.editor)}
        if State(ws.state) == State.archived:
            writers = set()
        readers = set(roles) - writers
        out.append(Grant(WorkspaceNames(ws.slug).schema, frozenset(writers), frozenset(readers)))
    return out


def fetch_hub_users(api_url: str, token: str) -> HubUsers:
    """Admins and group members as the hub knows them (users appear once they have logged in)."""
    hub = HubUsers()
    offset, limit = 0, 200
    with httpx.Client(timeout=15, headers={"Authorization": f"token {token}"}) as client:
        while True:
            r = client.get(f"{api_url}/users", params={"offset": offset, "limit": limit})
            r.raise_for_status()
            page = r.json()
            for user in page:
                if user.get("admin"):
                    hub.admins.add(user["name"])
                for group in user.get("groups") or []:
                    hub.groups.setdefault(group, set()).add(user["name"])
            if len(page) < limit:
                return hub
            offset += limit


def rules(db: Session, hub: HubUsers) -> dict:
    """Trino's access rules as the membership table and the hub say now."""
    return build_rules(grants(db, hub), hub.admins)


def sync(settings: Settings, db: Session, hub: HubUsers) -> bool:
    """Rewrite the rules file when it differs; Trino reads it again within its refresh period (5 s)."""
    changed = write_atomically(settings.trino_rules_path, rules(db, hub))
    if changed:
        log.info("Trino rules rewritten: %s", settings.trino_rules_path)
    return changed
