"""The workspace service's operations on its database: one function per action, each audited.

Functions take a SQLAlchemy session and a :class:`~agp.core.permissions.Caller`; they raise :class:`Refused`
(with an HTTP status and a sentence) instead of returning half results.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from agp.core.models import AuditEvent, Membership, Role, State, Workspace
from agp.core.names import InvalidName, WorkspaceNames, validate_slug, validate_username
from agp.core.permissions import Caller, can_manage, can_view, effective_role

from .provision import Provisioner, ProvisionError

log = logging.getLogger(__name__)

QUOTA_FIELDS = ("cpu_limit", "memory_limit_gb", "storage_limit_gb", "max_servers", "max_concurrent_runs")


class Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def audit(db: Session, caller: Caller, action: str, target: str, outcome: str = "ok", **detail: Any) -> None:
    db.add(AuditEvent(actor=caller.name, action=action, target=target, outcome=outcome, detail=detail))


def _load(db: Session, slug: str) -> Workspace:
    try:
        validate_slug(slug)
    except InvalidName as e:
        raise Refused(404, f"There is no workspace {slug[:60]!r}.") from e
    ws = db.scalars(select(Workspace).where(Workspace.slug == slug).options(selectinload(Workspace.members))).first()
    if ws is None:
        raise Refused(404, f"There is no workspace {slug!r}.")
    return ws


def exists(db: Session, slug: str) -> bool:
    """Whether a workspace (in any state) has this slug; no caller's rights are involved."""
    return db.scalar(select(Workspace.id).where(Workspace.slug == slug)) is not None


def get(db: Session, caller: Caller, slug: str) -> Workspace:
    ws = _load(db, slug)
    if not can_view(ws, caller):
        # The same answer as for a missing workspace: names of others' workspaces do not leak.
        raise Refused(404, f"There is no workspace {slug!r}.")
    return ws


def managed(db: Session, caller: Caller, slug: str, action: str) -> Workspace:
    ws = get(db, caller, slug)
    if not can_manage(ws, caller):
        audit(db, caller, action, slug, "denied")
        db.commit()
        raise Refused(403, f"Only owners of {slug!r} and platform admins may do that.")
    return ws


def _members_locked(db: Session, caller: Caller, slug: str, action: str) -> Workspace:
    """:func:`managed`, then the workspace's row locked and its members read again under the lock: member changes
    of one workspace run one after the other, so the last-owner rule counts the owners as they are (two owners
    demoting each other at once left none)."""
    ws = managed(db, caller, slug, action)
    db.execute(select(Workspace.id).where(Workspace.id == ws.id).with_for_update())
    db.refresh(ws, attribute_names=["members"])
    if not can_manage(ws, caller):  # demoted by the change we waited for
        db.rollback()
        return managed(db, caller, slug, action)
    return ws


def member_role(db: Session, caller: Caller, slug: str) -> tuple[Workspace, Role]:
    """The workspace and the caller's role in it, for the broker: members of a ready workspace only. A missing
    workspace gets the same answer as someone else's: the broker tells no one which names exist."""
    try:
        ws = _load(db, slug) if slug else None
    except Refused:
        ws = None
    role = effective_role(ws, caller) if ws else None
    if ws is None or role is None:
        audit(db, caller, "credential.issue", str(slug)[:255], "denied")
        db.commit()
        raise Refused(404 if ws is None or not caller.admin else 403, f"You are not a member of workspace {slug!r}.")
    if State(ws.state) != State.ready:
        raise Refused(409, f"Workspace {slug!r} is {State(ws.state).value}; it issues no credentials.")
    return ws, role


def namespace_access(db: Session, caller: Caller, namespace: str | None = None) -> dict[str, bool]:
    """The caller's Iceberg namespaces and whether it may write them (owners and editors of ready workspaces).

    With ``namespace``, only that one is looked up (a catalog call names one; listing them all per call grows with
    the caller's workspaces).
    """
    out = {}
    slug = None
    if namespace is not None:
        try:
            slug = WorkspaceNames.from_namespace(namespace).slug
        except InvalidName:
            return {}
    for ws in list_for(db, caller, slug=slug):
        role = effective_role(ws, caller)
        if role is None or State(ws.state) not in (State.ready, State.archived):
            continue
        out[WorkspaceNames(ws.slug).namespace] = State(ws.state) == State.ready and role in (Role.owner, Role.editor)
    return out


def list_for(db: Session, caller: Caller, slug: str | None = None) -> list[Workspace]:
    query = select(Workspace).options(selectinload(Workspace.members)).order_by(Workspace.slug)
    if slug is not None:
        query = query.where(Workspace.slug == slug)
    if not caller.admin:
        # Narrow in SQL to the caller's memberships and group bindings; can_view stays the one rule.
        groups = [f"/{g}" for g in caller.groups] + list(caller.groups)
        mine = select(Membership.workspace_id).where(Membership.username == caller.name)
        query = query.where(Workspace.id.in_(mine) | Workspace.keycloak_group.in_(groups))
    return [ws for ws in db.scalars(query).all() if can_view(ws, caller)]


def create(
    db: Session,
    caller: Caller,
    provisioner: Provisioner,
    slug: str,
    display_name: str | None = None,
    description: str = "",
    keycloak_group: str | None = None,
    group_role: str = "editor",
    owner: str | None = None,
    **quotas: Any,
) -> Workspace:
    if not caller.admin:
        audit(db, caller, "workspace.create", str(slug)[:255], "denied")
        db.commit()
        raise Refused(403, "Only platform admins create workspaces.")
    try:
        names = WorkspaceNames(slug)
    except InvalidName as e:
        raise Refused(422, str(e)) from e
    ws = Workspace(
        slug=names.slug,
        display_name=display_name or names.slug,
        description=description,
        state=State.provisioning,
        created_by=caller.name,
        keycloak_group=keycloak_group,
        group_role=Role(group_role),
        **{k: v for k, v in quotas.items() if k in QUOTA_FIELDS and v is not None},
    )
    owner = owner or caller.name
    try:
        validate_username(owner)
    except InvalidName as e:
        raise Refused(422, str(e)) from e
    ws.members.append(Membership(username=owner, role=Role.owner, added_by=caller.name))
    db.add(ws)
    try:
        db.flush()
    except IntegrityError as e:
        db.rollback()
        raise Refused(409, f"A workspace named {slug!r} exists already; choose another name.") from e
    audit(db, caller, "workspace.create", slug, "ok", display_name=ws.display_name)
    db.commit()
    return provision(db, caller, provisioner, ws)


def provision(db: Session, caller: Caller, provisioner: Provisioner, ws: Workspace) -> Workspace:
    """Run (or re-run) provisioning; the row ends ``ready`` or ``failed`` with the reason, never in between."""
    if ws.state == State.archived:
        raise Refused(409, f"Workspace {ws.slug!r} is archived; it keeps its data and is not provisioned again.")
    ws.state, ws.failure_reason = State.provisioning, None
    db.commit()
    try:
        out = provisioner.provision(WorkspaceNames(ws.slug))
    except ProvisionError as e:
        ws.state, ws.failure_reason = State.failed, str(e)
        audit(db, caller, "workspace.provision", ws.slug, "error", step=e.step, reason=str(e))
    else:
        ws.state = State.ready
        ws.bucket, ws.namespace, ws.trino_schema = out.bucket, out.namespace, out.trino_schema
        audit(db, caller, "workspace.provision", ws.slug, "ok", created=out.created)
    db.commit()
    return ws


def update(db: Session, caller: Caller, slug: str, **changes: Any) -> Workspace:
    ws = managed(db, caller, slug, "workspace.update")
    allowed = {"display_name", "description", "keycloak_group", "group_role", *QUOTA_FIELDS}
    applied = {k: v for k, v in changes.items() if k in allowed and v is not None}
    if any(k in QUOTA_FIELDS or k in {"keycloak_group", "group_role"} for k in applied) and not caller.admin:
        raise Refused(403, "Only platform admins change quotas and group bindings.")
    for key, value in applied.items():
        setattr(ws, key, Role(value) if key == "group_role" else value)
    audit(db, caller, "workspace.update", slug, "ok", **{k: str(v) for k, v in applied.items()})
    db.commit()
    return ws


def archive(db: Session, caller: Caller, slug: str) -> Workspace:
    ws = managed(db, caller, slug, "workspace.archive")
    previous = State(ws.state)
    ws.state = State.archived
    audit(db, caller, "workspace.archive", slug, previous=previous.value)
    db.commit()
    return ws


def unarchive(db: Session, caller: Caller, slug: str) -> Workspace:
    """Bring an archived workspace back: ``ready`` if it was provisioned, else ``failed`` (retry provisioning)."""
    ws = managed(db, caller, slug, "workspace.unarchive")
    if State(ws.state) != State.archived:
        raise Refused(409, f"Workspace {slug!r} is {State(ws.state).value}, not archived.")
    if ws.bucket and ws.namespace:
        ws.state = State.ready
    else:
        ws.state, ws.failure_reason = State.failed, "It was archived before its provisioning completed; retry it."
    audit(db, caller, "workspace.unarchive", slug, state=State(ws.state).value)
    db.commit()
    return ws


def set_member(
    db: Session,
    caller: Caller,
    slug: str,
    username: str,
    role: str,
    known_user: Callable[[str], bool] | None = None,
) -> Workspace:
    """Add a member or change a member's role. A new member must be a user ``known_user`` knows; the last owner
    stays an owner."""
    ws = _members_locked(db, caller, slug, "member.set")
    try:
        validate_username(username)
        role_ = Role(role)
    except (InvalidName, ValueError) as e:
        msg = str(e) if isinstance(e, InvalidName) else "A role is one of owner, editor, viewer."
        raise Refused(422, msg) from e
    member = next((m for m in ws.members if m.username == username), None)
    previous = Role(member.role) if member is not None else None
    if member is None:
        if known_user is not None and not known_user(username):
            audit(db, caller, "member.set", slug, "refused", username=username, role=role_.value, reason="unknown user")
            db.commit()
            raise Refused(
                422, f"There is no user {username!r} on the platform; a user appears here after their first login."
            )
        ws.members.append(Membership(username=username, role=role_, added_by=caller.name))
    else:
        owners = [m for m in ws.members if m.role == Role.owner]
        if previous == Role.owner and role_ != Role.owner and len(owners) == 1:
            raise Refused(409, f"{username!r} is the last owner of {slug!r}; make someone else owner first.")
        member.role = role_
    detail = {"username": username, "role": role_.value}
    if previous is not None:
        detail["previous"] = previous.value
    audit(db, caller, "member.set", slug, "ok", **detail)
    db.commit()
    return ws


def remove_member(db: Session, caller: Caller, slug: str, username: str) -> Workspace:
    ws = _members_locked(db, caller, slug, "member.remove")
    member = next((m for m in ws.members if m.username == username), None)
    if member is None:
        raise Refused(404, f"{username[:64]!r} is not a member of {slug!r}.")
    owners = [m for m in ws.members if m.role == Role.owner]
    if member.role == Role.owner and len(owners) == 1:
        raise Refused(409, f"{username!r} is the last owner of {slug!r}; make someone else owner first.")
    ws.members.remove(member)
    audit(db, caller, "member.remove", slug, "ok", username=username)
    db.commit()
    return ws


def audit_log(
    db: Session,
    caller: Caller,
    slug: str | None = None,
    limit: int = 100,
    offset: int = 0,
    action: str | None = None,
    actor: str | None = None,
    outcome: str | None = None,
) -> tuple[list[AuditEvent], int]:
    """A page of the audit log, newest first, and how many events match in all. ``action`` matches a prefix
    (``member.`` finds every member change), ``actor`` and ``outcome`` match exactly."""
    conditions = []
    if slug is not None:
        managed(db, caller, slug, "audit.read")
        conditions.append(AuditEvent.target == slug)
    elif not caller.admin:
        raise Refused(403, "Only platform admins read the whole audit log; owners read their workspace's.")
    if action:
        # a prefix match with LIKE's wildcards taken literally
        escaped = action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(AuditEvent.action.like(escaped + "%", escape="\\"))
    if actor:
        conditions.append(AuditEvent.actor == actor)
    if outcome:
        conditions.append(AuditEvent.outcome == outcome)
    total = db.scalar(select(func.count()).select_from(AuditEvent).where(*conditions)) or 0
    query = select(AuditEvent).where(*conditions).order_by(AuditEvent.id.desc())
    query = query.offset(max(0, offset)).limit(max(1, min(limit, 1000)))
    return list(db.scalars(query)), total
