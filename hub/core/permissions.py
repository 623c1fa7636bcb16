"""Who may do what to a workspace: pure functions of the membership table and the caller."""

from __future__ import annotations

from dataclasses import dataclass, field

from .models import ROLE_RANK, Role, Workspace


@dataclass(frozen=True)
class Caller:
    """The hub user (or service) making a request, as the hub vouched for it."""

    name: str
    admin: bool = False
    groups: frozenset[str] = field(default_factory=frozenset)


def effective_role(ws: Workspace, caller: Caller) -> Role | None:
    """The strongest of the caller's direct role and the role its Keycloak group binding gives."""
    roles = [Role(m.role) for m in ws.members if m.username == caller.name]
    if ws.keycloak_group and ws.keycloak_group.strip("/") in caller.groups:
        roles.append(Role(ws.group_role))
    return max(roles, key=ROLE_RANK.__getitem__, default=None)


def can_view(ws: Workspace, caller: Caller) -> bool:
    return caller.admin or effective_role(ws, caller) is not None


def can_manage(ws: Workspace, caller: Caller) -> bool:
    """Change members, settings, archive, retry provisioning: owners of the workspace and platform admins."""
    return caller.admin or effective_role(ws, caller) == Role.owner


def can_spawn(ws: Workspace, caller: Caller) -> bool:
    return effective_role(ws, caller) is not None
