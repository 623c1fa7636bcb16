"""What Trino fetches from the workspace service when it runs apart from it (Kubernetes, where no file is shared
between pods): the broker's public key as a JWK Set, and Trino's file-based access rules, which the rules follower
beside Trino's coordinator (``python -m agp.hub.rules_follow``) polls and writes where Trino reads them. The two
doors are :data:`DOORS`; the router serves nothing else.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Door:
    method: str
    path: str  # under the service's prefix
    who: str
    answers: str


DOORS = (
    Door(
        "GET",
        "jwks.json",
        "anyone (a public key)",
        "the broker's JWK Set: one RS256 key, its RFC 7638 thumbprint as kid",
    ),
    Door(
        "GET",
        "trino/rules.json",
        "`Authorization: Bearer <credentials.trino_rules_token>` only; anything else 401, audited",
        "the rules file's exact text, with an ETag; If-None-Match that matches: 304",
    ),
)

REALM = 'Bearer realm="agp-trino-rules"'


def etag(text: str) -> str:
    """A strong entity tag of the rules' text (the same rules always render to the same text)."""
    return '"' + hashlib.sha256(text.encode()).hexdigest() + '"'


def not_modified(if_none_match: str | None, tag: str) -> bool:
    """Whether an ``If-None-Match`` header matches ``tag`` (RFC 9110 13.1.2: weak comparison, a list, or ``*``)."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == tag.removeprefix("W/"):
            return True
    return False


def refusal(authorization: str | None, expected: str) -> str | None:
    """Why a request for the rules is refused, or ``None`` when it presents the rules token. Compared in constant
    time; an empty ``expected`` (no token configured) refuses everyone."""
    if not expected:
        return "this service has no rules token configured (credentials.trino_rules_token)"
    if not authorization:
        return "no Authorization header"
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return f"not a Bearer token (scheme {scheme[:20]!r})"
    if not hmac.compare_digest(value.strip().encode(), expected.encode()):
        return "a Bearer token that is not the rules token"
    return None


def router(
    prefix: str,
    jwks: Callable[[], dict],
    rules_text: Callable[[], str],
    rules_token: Callable[[], str],
    audit_refusal: Callable[[dict], None],
) -> APIRouter:
    """The two doors under ``prefix``. ``rules_text()`` renders the current rules (it may block: it reads the
    database); ``audit_refusal(detail)`` records a refused request for them."""
    routes = APIRouter(prefix=prefix, include_in_schema=False)

    @routes.get("/jwks.json")
    def jwk_set() -> JSONResponse:
        # Public: Trino (or anything verifying the broker's tokens) reads it without credentials.
        return JSONResponse(jwks(), headers={"Cache-Control": "public, max-age=300"})

    @routes.get("/trino/rules.json")
    async def trino_rules(request: Request) -> Response:
        reason = refusal(request.headers.get("authorization"), rules_token())
        if reason is not None:
            client = request.client.host if request.client else "?"
            log.warning("trino rules: refused %s from %s: %s", request.url.path[:200], client, reason)
            detail = {"path": request.url.path[:300], "client": client, "status": 401, "reason": reason}
            await asyncio.to_thread(audit_refusal, detail)
            return JSONResponse(
                {"detail": "Only Trino's rules follower reads the access rules: present its bearer token."},
                status_code=401,
                headers={"WWW-Authenticate": REALM},
            )
        try:
            text = await asyncio.to_thread(rules_text)
        except Exception:
            log.exception("trino rules: could not build the rules")
            return JSONResponse(
                {"detail": "The rules cannot be built right now; keep the last ones and ask again."}, status_code=503
            )
        tag = etag(text)
        headers = {"ETag": tag, "Cache-Control": "no-cache"}
        if not_modified(request.headers.get("if-none-match"), tag):
            return Response(status_code=304, headers=headers)
        return Response(text, media_type="application/json", headers=headers)

    return routes
