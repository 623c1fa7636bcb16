"""The query history in the workspace database: events upserted idempotently, entries read as a caller may see them.

An entry is made by whichever of a query's two events arrives first and completed by the completed event; a created
event never overwrites anything, a completed event (first, again, or late) always writes the same values, so
duplicates and retries in any order end in the same row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, func, literal_column, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from agp.core.models import Membership, Workspace
from agp.core.permissions import Caller

from .. import store
from ..store import Refused
from .events import Event, attribute
from .models import QueryEntry

MAX_LIMIT = 500


def ingest(db: Session, event: Event) -> None:
    """Record one created or completed event (commits)."""

    def workspace_of(namespace: str) -> str | None:
        return db.scalar(
            select(Workspace.slug).where(or_(Workspace.namespace == namespace, Workspace.trino_schema == namespace))
        )

    def is_member(slug: str, user: str) -> bool:
        direct = select(Membership.id).join(Workspace).where(Workspace.slug == slug, Membership.username == user)
        if db.scalar(direct) is not None:
            return True
        bound = db.scalar(select(Workspace.keycloak_group).where(Workspace.slug == slug))
        return bool(bound) and bound.strip("/") in {g.strip("/") for g in event.groups}

    workspace, workspaces = attribute(event, workspace_of, is_member)
    values = {**event.row, "workspace": workspace, "workspaces": workspaces}
    for key in ("tables_read", "tables_written", "client_tags"):
        values.setdefault(key, [])
    stmt = insert(QueryEntry).values(**values)
    if not event.completed:
        stmt = stmt.on_conflict_do_nothing(index_elements=["query_id"])
    else:
        table = QueryEntry.__table__
        updates = {k: stmt.excluded[k] for k in values if k not in ("query_id", "workspace", "workspaces")}
        updates["workspace"] = func.coalesce(stmt.excluded.workspace, table.c.workspace)
        # The union of what each event attributed (memberships may change between the two).
        updates["workspaces"] = (
            select(func.coalesce(func.array_agg(literal_column("w").distinct()), literal_column("'{}'::varchar[]")))
            .select_from(func.unnest(func.array_cat(table.c.workspaces, stmt.excluded.workspaces)).alias("w"))
            .scalar_subquery()
        )
        updates["updated_at"] = func.now()
        stmt = stmt.on_conflict_do_update(index_elements=["query_id"], set_=updates)
    db.execute(stmt)
    db.commit()


@dataclass(frozen=True)
class Filters:
    user: str | None = None
    state: str | None = None
    q: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _filtered(query, f: Filters):
    if len(f.q or "") > 1000 or len(f.user or "") > 255 or len(f.state or "") > 16:
        raise Refused(422, "A filter is at most 1000 characters (text), 255 (user) or 16 (state).")
    if f.user:
        query = query.where(QueryEntry.user == f.user)
    if f.state:
        query = query.where(QueryEntry.state == f.state.upper())
    if f.q:
        escaped = f.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(QueryEntry.query.ilike(f"%{escaped}%", escape="\\"))
    if f.since:
        query = query.where(QueryEntry.created >= f.since)
    if f.until:
        query = query.where(QueryEntry.created < f.until)
    return query


def _page(db: Session, query, f: Filters, limit: int, offset: int) -> tuple[list[QueryEntry], int]:
    if not 1 <= limit <= MAX_LIMIT:
        raise Refused(422, f"limit is 1 to {MAX_LIMIT}.")
    if offset < 0:
        raise Refused(422, "offset is 0 or more.")
    query = _filtered(query, f)
    total = db.scalar(select(func.count()).select_from(query.subquery()))
    order = (QueryEntry.created.desc().nulls_last(), QueryEntry.query_id.desc())
    items = list(db.scalars(query.order_by(*order).limit(limit).offset(offset)))
    return items, int(total or 0)


def prune(db: Session, days: int, now: datetime | None = None) -> int:
    """Delete the entries of queries older than ``days`` (by their end, else their creation, else their arrival);
    how many went (commits)."""
    cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=days)
    when = func.coalesce(QueryEntry.ended, QueryEntry.created, QueryEntry.received_at)
    gone = db.execute(delete(QueryEntry).where(when < cutoff)).rowcount
    db.commit()
    return int(gone or 0)


def list_workspace(
    db: Session, who: Caller, slug: str, f: Filters, limit: int = 50, offset: int = 0
) -> tuple[list[QueryEntry], int]:
    """The workspace's entries, newest first (its members and platform admins; others get the 404 of a workspace
    that does not exist)."""
    store.get(db, who, slug)
    return _page(db, select(QueryEntry).where(QueryEntry.workspaces.contains([slug])), f, limit, offset)


def list_all(db: Session, who: Caller, f: Filters, limit: int = 50, offset: int = 0) -> tuple[list[QueryEntry], int]:
    """Every entry for platform admins; for anyone else the entries of their workspaces and their own queries."""
    query = select(QueryEntry)
    if not who.admin:
        slugs = [ws.slug for ws in store.list_for(db, who)]
        visible = QueryEntry.user == who.name
        if slugs:
            visible = or_(visible, QueryEntry.workspaces.overlap(slugs))
        query = query.where(visible)
    return _page(db, query, f, limit, offset)


def get(db: Session, who: Caller, slug: str, query_id: str) -> QueryEntry:
    """One entry of the workspace; another workspace's entry gets the same 404 as one that does not exist."""
    store.get(db, who, slug)
    entry = db.get(QueryEntry, query_id[:100])
    if entry is None or slug not in (entry.workspaces or []):
        raise Refused(404, f"Workspace {slug!r} has no query {query_id[:100]!r} in its history.")
    return entry


def item(entry: QueryEntry, prefix: str, slug: str | None = None) -> dict[str, Any]:
    """An entry as the API answers it (the names the JupyterLab panel and the hub's pages read); its page is the one
    under ``slug`` (the workspace it was listed in), else under the workspace it is shown under."""
    shown = slug or entry.workspace
    error = None
    if entry.error_name or entry.error_message or entry.error_code is not None:
        error = {
            "name": entry.error_name,
            "code": entry.error_code,
            "type": entry.error_type,
            "message": entry.error_message,
            "line": entry.error_line,
            "column": entry.error_column,
        }
    return {
        "query_id": entry.query_id,
        "user": entry.user,
        "workspace": entry.workspace,
        "workspaces": list(entry.workspaces or []),
        "query": entry.query,
        "state": entry.state,
        "error": error,
        "created": entry.created,
        "started": entry.started,
        "ended": entry.ended,
        "elapsed_ms": entry.elapsed_ms,
        "queued_ms": entry.queued_ms,
        "cpu_ms": entry.cpu_ms,
        "rows": entry.rows,
        "bytes": entry.bytes,
        "read_rows": entry.read_rows,
        "read_bytes": entry.read_bytes,
        "tables_read": list(entry.tables_read or []),
        "tables_written": list(entry.tables_written or []),
        "source": entry.source,
        "client_tags": list(entry.client_tags or []),
        "session_catalog": entry.session_catalog,
        "session_schema": entry.session_schema,
        "page_url": f"{prefix}/w/{shown}/queries/{entry.query_id}" if shown else None,
    }
