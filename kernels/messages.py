"""What a notebook shows when a query fails or is interrupted: a few lines that say what happened, no traceback.

IPython shows the lines an exception's ``_render_traceback_`` returns in place of its traceback (the hook its
parallel engines use), and the cell still ends in error, so "Run all" stops there. :class:`SqlError` (a
``UsageError``, as jupysql's own errors are) and :class:`QueryInterrupted` (a ``KeyboardInterrupt``) use it; the
functions below build their lines and are pure.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlparse

from IPython.core.error import UsageError


class ShortLines:
    """Mixed into an exception: the notebook shows ``str(self)``, line by line, and nothing else."""

    def _render_traceback_(self) -> list[str]:
        return str(self).splitlines() or [type(self).__name__]


class SqlError(ShortLines, UsageError):
    """A ``%sql`` error as the user reads it: without IPython's ``UsageError:`` prefix and without a traceback."""


class QueryInterrupted(ShortLines, KeyboardInterrupt):
    """The cell was interrupted while ``%sql`` ran; ``str()`` says which Trino queries were cancelled."""


# -- interrupted queries --------------------------------------------------------------------------------------


def history_url(query_id: str, environ: Mapping[str, str] | None = None) -> str | None:
    """Where the browser opens a query's entry in the workspace's query history (pure but for the environment):
    the workspace service's path (``AGP_WORKSPACE_SERVICE_URL``) on the hub's public address (``AGP_PUBLIC_URL``),
    ``/services/workspaces/w/<workspace>/queries/<query id>``; ``None`` outside a workspace server."""
    env = os.environ if environ is None else environ
    service, workspace = env.get("AGP_WORKSPACE_SERVICE_URL"), env.get("AGP_WORKSPACE")
    if not service or not workspace:
        return None
    public = env.get("AGP_PUBLIC_URL")
    base = f"{public.rstrip('/')}{urlparse(service).path}" if public else service
    return f"{base.rstrip('/')}/w/{quote(workspace, safe='')}/queries/{quote(query_id, safe='')}"


def interrupted_line(query_ids: Sequence[str], urls: Mapping[str, str | None] | None = None) -> str:
    """One line for an interrupted ``%sql``: the queries cancelled in Trino and their history entries (pure)."""
    if not query_ids:
        return "Interrupted; no Trino query was running."
    urls = urls or {}
    parts = [f"{qid} · {urls[qid]}" if urls.get(qid) else qid for qid in query_ids]
    word = "query" if len(query_ids) == 1 else "queries"
    return f"Cancelled in Trino: {word} {', '.join(parts)}"


# -- errors with a position -----------------------------------------------------------------------------------

_LOCATION = re.compile(r"^line (\d+):(\d+): ")
_EXPECTING = re.compile(r"(?:\.\s*)?\bexpecting:?\s*(.*)$", re.I | re.S)
_TOKEN = re.compile(r"'(?:[^']|'')*'|<[^>]*>|[^\s,]+")  # 'ALTER', ',', <query>
KEEP_EXPECTED = 3  # of Trino's "Expecting: 'ALTER', 'ANALYZE', ..." list (30 keywords after a wrong first word)
WIDTH = 100  # characters of the statement's line shown around the position


def shorten_expecting(message: str, keep: int = KEEP_EXPECTED) -> str:
    """Trino's message with its list of expected tokens cut to the first ``keep`` (pure)."""
    found = _EXPECTING.search(message)
    if not found:
        return message
    items = _TOKEN.findall(found.group(1))
    head = message[: found.start()].rstrip(". ")
    if not items:
        return head
    shown = ", ".join(items[:keep]) + (", …" if len(items) > keep else "")
    return f"{head}; expecting {shown}"


def caret_lines(statement: str, line: int, column: int, width: int = WIDTH) -> list[str]:
    """The statement's ``line`` (1-based) and a caret under its ``column`` (1-based), indented by two spaces; a
    long line is cut to ``width`` characters around the column (pure). Nothing when the position is not in it."""
    lines = statement.splitlines()
    if not 1 <= line <= len(lines):
        return []
    text = lines[line - 1].replace("\t", " ")
    col = column - 1
    if not 0 <= col <= len(text):
        return []
    start = 0
    if len(text) > width:
        start = max(0, min(col - width // 2, len(text) - width))
        shown = text[start : start + width]
        prefix = "…" if start else ""
        suffix = "…" if start + width < len(text) else ""
        text, col = f"{prefix}{shown}{suffix}", col - start + len(prefix)
    return [f"  {text.rstrip()}", "  " + " " * col + "^"]


def positioned(
    error_name: str,
    message: str,
    statement: str | None,
    query_id: str | None = None,
    location: tuple[int, int] | None = None,
) -> str:
    """A Trino error that has a position (a syntax error, an unknown column): the error and Trino's message
    without its long list of expected keywords, then the statement's line with a caret under the position (pure).

    ``location`` is Trino's ``errorLocation`` (line, column); without it, the ``line L:C:`` Trino puts at the
    start of the message."""
    found = _LOCATION.match(message)
    if found:
        message = message[found.end() :]
        location = location or (int(found.group(1)), int(found.group(2)))
    message = shorten_expecting(message)
    where = f" at line {location[0]}, column {location[1]}" if location else ""
    head = f"{error_name}{where}: {message}"
    if query_id:
        head += f" (query {query_id})"
    marks = caret_lines(statement, *location) if statement and location else []
    return "\n".join([head, *marks])


# -- permission errors ----------------------------------------------------------------------------------------

_TABLE = re.compile(r"(?:table|view)(?: or view)? (?:\w+\.)?\"?([\w-]+)\"?\.\"?[\w-]+\"?", re.I)
_SCHEMA = re.compile(r"schema (?:\w+\.)?\"?([\w-]+)\"?", re.I)
ROLE_CAN = {"viewer": "viewers can read but not write", "editor": "editors read and write tables"}


def permission_sentence(message: str, workspace: str, info: Mapping[str, Any] | None) -> str:
    """Trino's "Access Denied: …" and one sentence on who may change it (pure).

    ``info`` is the workspace as the workspace service shows it to the user (``/api/workspaces/<slug>``:
    ``display_name``, ``namespace``, ``your_role``, ``members`` with their roles), ``None`` if it did not answer.
    When the message names a schema that is not the workspace's, that other workspace's owners decide.
    """
    message = message.strip().rstrip(".")
    if message.lower().startswith("access denied: "):
        message = "Access denied: " + message[len("access denied: ") :]
    found = _TABLE.search(message) or _SCHEMA.search(message)
    schema = found.group(1) if found else None
    own = (info or {}).get("namespace") or (info or {}).get("trino_schema") or workspace.replace("-", "_")
    name = (info or {}).get("display_name")
    label = f"'{workspace}'" + (f" ({name})" if name and name != workspace else "")
    if schema and schema not in (own, workspace):
        return (
            f"{message}. Schema '{schema}' belongs to another workspace, not to {label}; "
            "only that workspace's owners can give you access to it."
        )
    if info is None:
        return (
            f"{message}. Your role in workspace {label} does not allow this; "
            "the workspace's owners (or a platform admin) can change it on the hub's Workspaces page."
        )
    role = info.get("your_role")
    owners = sorted(m["username"] for m in info.get("members", []) if m.get("role") == "owner")
    who = f"its owners ({', '.join(owners)})" if owners else "a platform admin"
    if not role:
        return f"{message}. You are not a member of workspace {label}; {who} can add you."
    can = ROLE_CAN.get(role)
    return (
        f"{message}. You are {_article(role)} {role} of workspace {label}"
        + (f" ({can})" if can else "")
        + (f"; {who} can change your role.")
    )


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"
