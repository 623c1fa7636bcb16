"""Trino's query events (``io.trino.spi.eventlistener``, as the HTTP event listener serializes them) as rows of the
query history, and the workspaces each query belongs to. Pure functions: no database, no network."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from agp.core.names import InvalidName, WorkspaceNames

# The catalog whose schemas are workspaces' namespaces (compose/config/trino/catalog/iceberg.properties).
WORKSPACE_CATALOG = "iceberg"
# Trino's query states; a created event says QUEUED, a completed one FINISHED or FAILED.
ENDED_STATES = ("FINISHED", "FAILED")
MAX_QUERY_TEXT = 1_000_000  # Trino's own query.max-length
MAX_TABLES = 500  # tables kept per direction; a query naming more keeps the first ones


class BadEvent(ValueError):
    """The body is not a Trino query event; the message says what is missing."""


@dataclass(frozen=True)
class Event:
    """One query event as a row of ``query_history`` (``completed``: a completed event, else a created one)."""

    completed: bool
    row: dict[str, Any]
    # Candidate workspaces, as namespaces: the tables' schemas in the workspace catalog, and the session's schema.
    table_namespaces: tuple[str, ...]
    session_namespace: str | None
    # The user's groups as Trino's group provider resolved them (never the client's word).
    groups: frozenset[str] = frozenset()


def parse(body: Any) -> Event:
    """The row of a created or completed event (``QueryCreatedEvent``/``QueryCompletedEvent`` as JSON)."""
    if not isinstance(body, dict):
        raise BadEvent("A query event is a JSON object.")
    metadata, context = body.get("metadata"), body.get("context")
    if not isinstance(metadata, dict) or not isinstance(context, dict):
        raise BadEvent("A query event has 'metadata' and 'context' objects.")
    query_id = metadata.get("queryId")
    if not isinstance(query_id, str) or not re.fullmatch(r"[A-Za-z0-9_]{1,100}", query_id):
        raise BadEvent("A query event's metadata.queryId is Trino's query id.")
    user = context.get("user")
    if not isinstance(user, str) or not user:
        raise BadEvent("A query event's context.user names the query's user.")
    completed = "statistics" in body or "endTime" in body
    stats = body.get("statistics") if isinstance(body.get("statistics"), dict) else {}
    io = body.get("ioMetadata") if isinstance(body.get("ioMetadata"), dict) else {}

    # What was read: the connectors' inputs, and the tables the analysis resolved (also those behind a view).
    read = merge_lists(_inputs(io.get("inputs")), _tables(metadata.get("tables")))
    output = io.get("output") if isinstance(io.get("output"), dict) else None
    written = [_name(output.get("catalogName"), output.get("schema"), output.get("table"))] if output else []
    written = [w for w in written if w]
    failure = body.get("failureInfo") if isinstance(body.get("failureInfo"), dict) else None
    error = _error(failure) if failure else {}

    created = _instant(body.get("createTime"))
    started = _instant(body.get("executionStartTime"))
    ended = _instant(body.get("endTime"))
    state = str(metadata.get("queryState") or ("FAILED" if failure else "FINISHED" if completed else "QUEUED"))
    row = {
        "query_id": query_id,
        "user": user[:255],
        "query": _query_text(metadata),
        "state": state[:16],
        "created": created,
        "source": _text(context.get("source"), 255),
        "client_tags": [str(t)[:255] for t in (context.get("clientTags") or [])][:50],
        "session_catalog": _text(context.get("catalog"), 255),
        "session_schema": _text(context.get("schema"), 255),
    }
    if completed:
        row.update(
            started=started,
            ended=ended,
            elapsed_ms=_millis(stats.get("wallTime")) if stats else _between(created, ended),
            queued_ms=_millis(stats.get("queuedTime")),
            cpu_ms=_millis(stats.get("cpuTime")),
            # A write's rows are the rows it wrote (its result is one row: their count).
            rows=_int(stats.get("writtenRows" if written else "outputRows")),
            bytes=_int(stats.get("writtenBytes" if written else "outputBytes")),
            read_rows=_int(stats.get("totalRows")),
            # What the connectors read from storage (an Iceberg scan's "totalBytes" is often 0).
            read_bytes=_int(stats.get("physicalInputBytes")) or _int(stats.get("totalBytes")),
            tables_read=read[:MAX_TABLES],
            tables_written=written[:MAX_TABLES],
            **error,
        )
    namespaces = [t.split(".")[1] for t in [*read, *written] if t.split(".")[0] == WORKSPACE_CATALOG]
    session_ns = row["session_schema"] if row["session_catalog"] == WORKSPACE_CATALOG else None
    groups = frozenset(str(g) for g in (context.get("groups") or []) if isinstance(g, str))
    return Event(completed, row, tuple(dict.fromkeys(namespaces)), session_ns, groups)


def attribute(
    event: Event, workspace_of: Callable[[str], str | None], is_member: Callable[[str, str], bool]
) -> tuple[str | None, list[str]]:
    """The workspace an entry is shown under and every workspace whose members see it.

    ``workspace_of(namespace)`` is the slug of the workspace with that namespace (``None``: no workspace);
    ``is_member(slug, user)`` whether the query's user is a member of it. A table read or written puts the query in
    its workspace whoever ran it (a workspace's members see who touched or tried to touch their data). The session
    schema puts it there only for its members: a client sets its schema freely, and no one files queries into a
    workspace not theirs. The workspace shown is the session's, else the first written, else the first read.
    """
    user = event.row["user"]
    from_tables = [s for s in (workspace_of(ns) for ns in event.table_namespaces) if s]
    session = workspace_of(event.session_namespace) if event.session_namespace else None
    if session and not is_member(session, user):
        session = None
    ordered = list(dict.fromkeys([*([session] if session else []), *from_tables]))
    return (ordered[0] if ordered else None), sorted(ordered)


def namespace_slug(namespace: str) -> str | None:
    """The slug a workspace with ``namespace`` has (names derive from each other), or ``None`` if none can."""
    try:
        return WorkspaceNames.from_namespace(namespace).slug
    except InvalidName:
        return None


def _name(catalog: Any, schema: Any, table: Any) -> str | None:
    parts = [catalog, schema, table]
    if not all(isinstance(p, str) and p for p in parts):
        return None
    return ".".join(p[:128] for p in parts)


def _inputs(inputs: Any) -> list[str]:
    if not isinstance(inputs, list):
        return []
    names = (_name(i.get("catalogName"), i.get("schema"), i.get("table")) for i in inputs if isinstance(i, dict))
    return list(dict.fromkeys(n for n in names if n))


def _tables(tables: Any) -> list[str]:
    # metadata.tables (TableInfo): what the analysis resolved, also of a query that failed before reading.
    if not isinstance(tables, list):
        return []
    names = (_name(t.get("catalog"), t.get("schema"), t.get("table")) for t in tables if isinstance(t, dict))
    return list(dict.fromkeys(n for n in names if n))


def _error(failure: dict) -> dict[str, Any]:
    code = failure.get("errorCode") if isinstance(failure.get("errorCode"), dict) else {}
    line = column = None
    raw = failure.get("failuresJson")
    if isinstance(raw, str) and len(raw) < 2_000_000:
        try:
            location = (json.loads(raw) or {}).get("errorLocation") or {}
            line, column = _int(location.get("lineNumber")), _int(location.get("columnNumber"))
        except (ValueError, AttributeError):
            pass
    return {
        "error_code": _int(code.get("code")),
        "error_name": _text(code.get("name"), 255),
        "error_type": _text(code.get("type"), 64),
        "error_message": _text(failure.get("failureMessage"), 20_000),
        "error_line": line,
        "error_column": column,
    }


def _query_text(metadata: dict) -> str | None:
    """The query's text; for ``EXECUTE`` of a prepared statement (what clients with parameters send) the statement's
    own text first, else the history would keep ``EXECUTE st_… USING …`` and hide what ran."""
    query, prepared = _text(metadata.get("query"), MAX_QUERY_TEXT), _text(metadata.get("preparedQuery"), MAX_QUERY_TEXT)
    if not prepared:
        return query
    return f"{prepared}\n-- {' '.join((query or '').split())}"[:MAX_QUERY_TEXT]


def _text(value: Any, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,19}", value):
        return int(value)
    return None


_UNITS = {"ns": Decimal("1e-6"), "us": Decimal("1e-3"), "ms": Decimal(1), "s": Decimal(1000), "m": Decimal(60000)}
_UNITS |= {"h": Decimal(3_600_000), "d": Decimal(86_400_000)}


def _millis(value: Any) -> int | None:
    """A ``java.time.Duration`` as Jackson writes it (seconds as a number, or ISO 8601 ``PT1.5S``), or an airlift
    duration (``1.50s``), in milliseconds."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        if isinstance(value, (int, float)):
            return int(Decimal(str(value)) * 1000)
        if isinstance(value, str):
            m = re.fullmatch(r"P(?:(\d+)D)?T?(?:(\d+)H)?(?:(\d+)M)?(?:(-?[\d.]+)S)?", value.strip().upper())
            if m and value.strip().upper() not in ("P", "PT"):
                d, h, mi, s = (Decimal(x) if x else Decimal(0) for x in m.groups())
                return int(((d * 24 + h) * 60 + mi) * 60000 + s * 1000)
            m = re.fullmatch(r"([\d.]+)\s*(ns|us|ms|s|m|h|d)", value.strip())
            if m:
                return int(Decimal(m.group(1)) * _UNITS[m.group(2)])
            return int(Decimal(value) * 1000)
    except (InvalidOperation, ValueError):
        return None
    return None


def _instant(value: Any) -> datetime | None:
    """A ``java.time.Instant`` as Jackson writes it (ISO 8601, or seconds since the epoch as a number)."""
    try:
        if isinstance(value, bool) or value is None:
            return None
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(float(value), tz=timezone.utc)
        if isinstance(value, str):
            text = value.strip().replace("Z", "+00:00")
            # Python before 3.11 takes at most 6 digits of a fraction; Trino writes up to 9.
            text = re.sub(r"(\.\d{6})\d+", r"\1", text)
            parsed = datetime.fromisoformat(text)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def _between(start: datetime | None, end: datetime | None) -> int | None:
    return int((end - start).total_seconds() * 1000) if start and end else None


def merge_lists(*lists: Iterable[str]) -> list[str]:
    """The union of lists, in first-seen order."""
    return list(dict.fromkeys(x for lst in lists for x in lst))
