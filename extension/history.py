"""The server extension's ``/agp/queries``: the workspace's query history, for the lab's Query history panel.

Forwarded to the workspace service's ``GET /api/workspaces/{ws}/queries`` with this server's own hub token, for this
server's workspace only; the service checks membership and answers ``{"items": [...], "total": n}``. The browser's
query is parsed here into checked values and the service's query rebuilt from them:

========  =========================================================  =====================================
here      checked as                                                 the service gets
========  =========================================================  =====================================
mine      ``1``/``true``/``0``/``false``                             ``user`` = this server's user
user      a user name (letters, digits, ``._@-``, at most 128)       ``user``
state     a state word (letters and ``_``, at most 32)               ``state`` (upper case)
q         one line of at most 200 characters                         ``q``
since     an ISO 8601 date or time                                   ``since`` (ISO 8601)
until     an ISO 8601 date or time                                   ``until`` (ISO 8601)
limit     a whole number from 1 to 200 (default 50)                  ``limit``
offset    a whole number from 0                                      ``offset``
========  =========================================================  =====================================

Anything else (but JupyterLab's cache-busting bare number) is refused with one sentence (HTTP 400).
"""

from __future__ import annotations

import re
from datetime import datetime

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from .jobs import Refused, ServiceClient, http_error

USER = re.compile(r"^[A-Za-z0-9._@-]{1,128}$")
STATE = re.compile(r"^[A-Za-z_]{1,32}$")
KNOWN = {"mine", "user", "state", "q", "since", "until", "limit", "offset"}
MAX_LIMIT = 200


def _whole(value: str, key: str, low: int, high: int | None) -> str:
    if not value.isdigit() or int(value) < low or (high is not None and int(value) > high):
        raise Refused(f"{key} is a whole number from {low}" + (f" to {high}." if high is not None else " on."))
    return str(int(value))


def _when(value: str, key: str) -> str:
    try:
        return datetime.fromisoformat(value).isoformat()
    except ValueError as e:
        raise Refused(f"{key} is an ISO 8601 date or time, like 2026-12-02 or 2026-12-02T16:00:00Z.") from e


def queries_query(arguments: dict[str, str], me: str) -> dict[str, str]:
    """The service's query from the browser's (pure), or :class:`Refused` naming what is wrong."""
    # JupyterLab's ServerConnection adds a bare number to each GET (``?1796229719439``) so no cache answers it.
    arguments = {k: v for k, v in arguments.items() if not (k.isdigit() and not v)}
    unknown = set(arguments) - KNOWN
    if unknown:
        raise Refused(f"Unknown filter(s): {', '.join(sorted(unknown))}; the filters are {', '.join(sorted(KNOWN))}.")
    query: dict[str, str] = {"limit": "50"}
    mine = arguments.get("mine", "")
    if mine not in ("", "0", "1", "true", "false"):
        raise Refused("mine is 1 or 0.")
    user = arguments.get("user", "")
    if mine in ("1", "true"):
        if user and user != me:
            raise Refused("Filter by mine or by user, not both.")
        user = me
    if user:
        if not USER.match(user):
            raise Refused("user is a user name (letters, digits and ._@-).")
        query["user"] = user
    state = arguments.get("state", "")
    if state:
        if not STATE.match(state):
            raise Refused("state is one word, like FINISHED or FAILED.")
        query["state"] = state.upper()
    q = arguments.get("q", "")
    if q.strip():
        if len(q) > 200 or any(ord(c) < 32 for c in q):
            raise Refused("q is one line of at most 200 characters.")
        query["q"] = q.strip()
    for key in ("since", "until"):
        if arguments.get(key):
            query[key] = _when(arguments[key], key)
    if arguments.get("limit"):
        query["limit"] = _whole(arguments["limit"], "limit", 1, MAX_LIMIT)
    if arguments.get("offset"):
        query["offset"] = _whole(arguments["offset"], "offset", 0, None)
    return query


class QueriesHandler(APIHandler):
    @web.authenticated
    async def get(self):
        backend = self.settings["agp_jobs"]
        service = ServiceClient(backend.environ, backend.timeout)
        try:
            query = queries_query({k: self.get_argument(k) for k in self.request.arguments}, self.current_user.username)
        except Refused as e:
            raise http_error(400, str(e)) from e
        answer = await service.json("GET", service.url("queries", query=query))
        if not isinstance(answer, dict) or not isinstance(answer.get("items"), list):
            raise http_error(502, "The workspace service answered a query history this server does not understand.")
        self.set_header("Cache-Control", "no-store")
        self.finish({"items": answer["items"], "total": answer.get("total", len(answer["items"]))})


def handlers(base_url: str) -> list[tuple[str, type]]:
    return [(url_path_join(base_url, "agp", "queries"), QueriesHandler)]
