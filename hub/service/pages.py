"""The workspace page (``w/{slug}``): members and their roles, audit, query history, quotas and state, and the
user lookup behind its "add a member" field (``api/workspaces/{slug}/candidates``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from agp.core import names
from agp.core.permissions import Caller, can_manage

from .. import store
from .schemas import Quotas, WorkspaceOut
from .users import UserDirectory


def naming_rules() -> dict:
    """The naming rules of agp.core.names, for forms that state them before submitting and check as one types (the
    service checks again: these only spare a round trip)."""
    return {
        "username": names.USERNAME_RULE,
        "username_pattern": names.USERNAME_PATTERN,
        "slug": names.RULE,
        "slug_pattern": names.SLUG_PATTERN,
        "slug_min": names.MIN_LENGTH,
        "slug_max": names.MAX_LENGTH,
        "reserved": sorted(names.RESERVED),
    }


def quota_limits() -> dict[str, dict]:
    """Each quota's bounds as the API's schema declares them (``gt``/``ge``/``le``), for the form to state them."""
    out = {}
    for name, field in Quotas.model_fields.items():
        bounds = {k: getattr(m, k) for m in field.metadata for k in ("gt", "ge", "le") if hasattr(m, k)}
        out[name] = {"min": bounds.get("ge", bounds.get("gt", 0)), "above": "gt" in bounds, "max": bounds.get("le")}
    return out


def router(
    prefix: str,
    session: Callable[..., Any],
    caller: Callable[..., Any],
    page_caller: Callable[..., Any],
    page: Callable[..., HTMLResponse],
    directory: UserDirectory,
) -> APIRouter:
    r = APIRouter()

    @r.get(prefix + "/api/workspaces/{slug}/candidates", tags=["workspaces"])
    def candidates(
        slug: str,
        q: str = Query("", max_length=64, description="the start of a user name"),
        who: Caller = Depends(caller),
        db: Session = Depends(session),
    ) -> dict:
        """Users the platform knows whose names start with ``q``, for adding members (owners and admins)."""
        ws = store.managed(db, who, slug, "member.lookup")
        members = {m.username for m in ws.members}
        found = directory.search(q.strip(), limit=20) if q.strip() else []
        return {"users": [{"name": n, "member": n in members} for n in found]}

    @r.get(prefix + "/w/{slug}", response_class=HTMLResponse, include_in_schema=False)
    def workspace_page(slug: str, request: Request, who: Caller = Depends(page_caller), db: Session = Depends(session)):
        try:
            ws = store.get(db, who, slug)
        except store.Refused as e:
            return page(request, "problem.html", who=who, status=e.status, message=str(e), status_code=e.status)
        return page(
            request,
            "workspace.html",
            who=who,
            ws=WorkspaceOut.of(ws, who).model_dump(mode="json"),
            manages=can_manage(ws, who),
            rules=naming_rules(),
            limits=quota_limits(),
        )

    return r
