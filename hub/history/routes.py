"""The query history's doors: Trino's ingest (``POST trino/events``), the API (``api/workspaces/{slug}/queries``,
``api/queries``) and the pages (``w/{slug}/queries``, ``w/{slug}/queries/{query_id}``).

The ingest door takes Trino's HTTP event listener alone: ``Authorization: Bearer <credentials.query_history_token>``,
compared in constant time, nothing of the hub's user login. What it cannot store for now (the database is away)
answers 503, which the listener retries (compose/services.py: TRINO_EVENT_RETRIES); what it will never store (not an
event, too large) answers 4xx, which the listener does not retry.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from agp.core.permissions import Caller

from ..service.trino_routes import refusal
from . import store as history
from .events import BadEvent, parse

log = logging.getLogger(__name__)
# A completed event carries the query's text (Trino's query.max-length: 1,000,000 characters), its failure with
# stack traces and the tables' columns: 16 MiB leaves room; more is refused (413) before it is held.
MAX_EVENT = 16 * 1024 * 1024
REALM = 'Bearer realm="agp-query-history"'
PAGE_SIZE = 50


def router(
    prefix: str,
    session: Callable[..., Any],
    caller: Callable[..., Any],
    page_caller: Callable[..., Any],
    page: Callable[..., HTMLResponse],
    make_session: sessionmaker[Session],
    ingest_token: Callable[[], str],
) -> APIRouter:
    r = APIRouter()
    api = f"{prefix}/api"

    @r.post(prefix + "/trino/events", include_in_schema=False)
    async def ingest(request: Request) -> Response:
        expected = ingest_token()
        if not expected:
            # This service's configuration lacks the token: Trino keeps the event and retries (a 5xx), and the
            # log says what to set.
            log.error("query history: no credentials.query_history_token configured; Trino's events wait")
            return JSONResponse({"detail": "The query history takes no events yet; retry."}, status_code=503)
        reason = refusal(request.headers.get("authorization"), expected)
        if reason is not None:
            client = request.client.host if request.client else "?"
            log.warning("query history: refused an event from %s: %s", client, reason)
            return JSONResponse(
                {"detail": "Only Trino's event listener posts query events: present its bearer token."},
                status_code=401,
                headers={"WWW-Authenticate": REALM},
            )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_EVENT:
            return _too_large()
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_EVENT:
                return _too_large()
        try:
            event = await asyncio.to_thread(lambda: parse(json.loads(body)))  # up to 16 MiB: off the event loop
        except ValueError as e:  # BadEvent, or JSON that does not parse
            message = str(e) if isinstance(e, BadEvent) else "The body is not JSON."
            log.warning("query history: refused a body: %s", message)
            return JSONResponse({"detail": message}, status_code=422 if isinstance(e, BadEvent) else 400)
        try:
            await asyncio.to_thread(_ingest, make_session, event)
        except SQLAlchemyError:
            log.exception("query history: could not store the event of %s; Trino retries it", event.row["query_id"])
            return JSONResponse({"detail": "The history cannot store events right now; retry."}, status_code=503)
        return Response(status_code=204)

    @r.get(api + "/workspaces/{slug}/queries", tags=["query history"])
    def list_workspace(
        slug: str,
        user: str | None = None,
        state: str | None = None,
        q: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = PAGE_SIZE,
        offset: int = 0,
        who: Caller = Depends(caller),
        db: Session = Depends(session),
    ) -> dict:
        """The workspace's Trino queries, newest first (its members): filter by ``user``, ``state`` (FINISHED,
        FAILED, QUEUED: still running), ``q`` (text in the query), ``since``/``until`` (created, ISO 8601)."""
        f = history.Filters(user, state, q, since, until)
        items, total = history.list_workspace(db, who, slug, f, limit, offset)
        return {"items": [history.item(e, prefix, slug) for e in items], "total": total}

    @r.get(api + "/workspaces/{slug}/queries/{query_id}", tags=["query history"])
    def get_entry(slug: str, query_id: str, who: Caller = Depends(caller), db: Session = Depends(session)) -> dict:
        return history.item(history.get(db, who, slug, query_id), prefix, slug)

    @r.get(api + "/queries", tags=["query history"])
    def list_all(
        user: str | None = None,
        state: str | None = None,
        q: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        workspace: str | None = None,
        limit: int = PAGE_SIZE,
        offset: int = 0,
        who: Caller = Depends(caller),
        db: Session = Depends(session),
    ) -> dict:
        """Every query for platform admins; for others their workspaces' queries and their own."""
        f = history.Filters(user, state, q, since, until)
        if workspace:
            items, total = history.list_workspace(db, who, workspace, f, limit, offset)
        else:
            items, total = history.list_all(db, who, f, limit, offset)
        return {"items": [history.item(e, prefix, workspace) for e in items], "total": total}

    # -- pages
    @r.get(prefix + "/w/{slug}/queries", response_class=HTMLResponse, include_in_schema=False)
    def queries_page(
        slug: str,
        request: Request,
        user: str = "",
        state: str = "",
        q: str = "",
        since: str = "",
        until: str = "",
        page_no: int = 1,
        who: Caller = Depends(page_caller),
        db: Session = Depends(session),
    ):
        shown = {"user": user, "state": state, "q": q, "since": since, "until": until}
        f = history.Filters(user or None, state or None, q or None, _date(since), _date(until))
        page_no = max(1, page_no)
        items, total = history.list_workspace(db, who, slug, f, PAGE_SIZE, (page_no - 1) * PAGE_SIZE)
        pages = max(1, -(-total // PAGE_SIZE))
        return page(
            request,
            "queries.html",
            who=who,
            slug=slug,
            items=[history.item(e, prefix, slug) for e in items],
            total=total,
            page_no=page_no,
            pages=pages,
            filters=shown,
            base=urlencode({k: v for k, v in shown.items() if v}),
        )

    @r.get(prefix + "/w/{slug}/queries/{query_id}", response_class=HTMLResponse, include_in_schema=False)
    def query_page(
        slug: str, query_id: str, request: Request, who: Caller = Depends(page_caller), db: Session = Depends(session)
    ):
        entry = history.item(history.get(db, who, slug, query_id), prefix, slug)
        return page(request, "query.html", who=who, slug=slug, entry=entry)

    return r


def _ingest(make_session: sessionmaker[Session], event) -> None:
    with make_session() as db:
        history.ingest(db, event)


def _too_large() -> JSONResponse:
    log.error("query history: refused an event over %d MiB", MAX_EVENT // (1024 * 1024))
    return JSONResponse({"detail": f"A query event is at most {MAX_EVENT // (1024 * 1024)} MiB."}, status_code=413)


def _date(text: str) -> datetime | None:
    """A date or time from the page's filter form; what does not parse filters nothing."""
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
