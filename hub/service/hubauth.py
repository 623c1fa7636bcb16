"""Identity from the hub: tokens for API calls, the hub's OAuth for browsers, scopes and XSRF on every change."""

from __future__ import annotations

import hmac
import logging
import secrets
from urllib.parse import quote, urlencode, urlsplit

import httpx
from fastapi import HTTPException, Request
from jupyterhub.services.auth import HubOAuth, _ExpiringDict

from agp.core.permissions import Caller

log = logging.getLogger(__name__)

TOKEN_COOKIE = "agp-workspaces-token"  # noqa: S105 (a cookie's name)
STATE_COOKIE = "agp-workspaces-state"
XSRF_COOKIE = "_xsrf"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class LoginRequired(Exception):
    """A browser without a session: send it through the hub's OAuth."""

    def __init__(self, next_url: str):
        self.next_url = next_url


class HubIdentity:
    """Resolves a request to a :class:`Caller` through the hub API; caches answers for ``cache_max_age`` s."""

    def __init__(self, prefix: str, cache_max_age: int = 30):
        # HubOAuth reads the JUPYTERHUB_* variables the hub sets for a managed service.
        self.auth = HubOAuth(cache_max_age=cache_max_age)
        self.prefix = prefix
        self._models = _ExpiringDict(cache_max_age)

    def _token(self, request: Request) -> tuple[str | None, bool]:
        """``(token, from_cookie)``: the Authorization header wins; a cookie means a browser session."""
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() in {"token", "bearer"} and value.strip():
            return value.strip(), False
        cookie = request.cookies.get(TOKEN_COOKIE)
        return (cookie, True) if cookie else (None, False)

    async def caller(self, request: Request, *, browser: bool = False) -> Caller:
        token, from_cookie = self._token(request)
        if not token:
            if browser:
                raise LoginRequired(str(request.url.path))
            raise HTTPException(401, "Log in to the hub, or send a hub API token (Authorization: token ...).")
        model = await self.auth.user_for_token(token, sync=False)
        if not model:
            # A refusal is asked again rather than taken from HubAuth's cache, which keeps refusals too: the hub's first
            # query after a PostgreSQL restart fails, it answers that request 403, and a good token stayed refused
            # for cache_max_age (CI saw the admin's token refused for 30 s).
            model = await self.auth.user_for_token(token, use_cache=False, sync=False)
        if not model:
            if browser:
                raise LoginRequired(str(request.url.path))
            raise HTTPException(401, "The hub does not know this token; it may have expired.")
        if not self.auth.check_scopes(self.auth.access_scopes, model):
            log.warning("%s lacks %s", model.get("name"), self.auth.access_scopes)
            raise HTTPException(403, "This token does not grant access to the workspace service.")
        if from_cookie and request.method not in SAFE_METHODS:
            check_xsrf(request)
        if model.get("kind", "user") != "user":
            raise HTTPException(403, "Only hub users act on workspaces.")
        if "admin" not in model or "groups" not in model:
            # OAuth tokens identify the user by name only; the service's own token reads the rest.
            model = {**model, **await self._full_model(model["name"])}
        groups = frozenset(model.get("groups") or [])
        return Caller(name=model["name"], admin=bool(model.get("admin")), groups=groups)

    async def _full_model(self, name: str) -> dict:
        cached = self._models.get(name)
        if cached:
            return cached
        url = f"{self.auth.api_url}/users/{quote(name, safe='')}"
        async with httpx.AsyncClient(timeout=10) as client:
            r = await client.get(url, headers={"Authorization": f"token {self.auth.api_token}"})
        if r.status_code != 200:
            log.error("the hub did not return user %s: HTTP %s %s", name, r.status_code, r.text[:200])
            raise HTTPException(503, "The hub did not answer who you are; try again in a moment.")
        model = r.json()
        full = {"admin": bool(model.get("admin")), "groups": model.get("groups") or []}
        self._models[name] = full
        return full

    # -- the browser's OAuth dance with the hub
    def login_redirect(self, next_url: str) -> tuple[str, str]:
        """``(authorize URL, state)``; the state goes into a cookie and comes back on the callback."""
        state = secrets.token_urlsafe(24)
        params = {
            "client_id": self.auth.oauth_client_id,
            "redirect_uri": self.auth.oauth_redirect_uri,
            "response_type": "code",
            "state": state,
        }
        return f"{self.auth.oauth_authorization_url}?{urlencode(params)}", f"{state}|{next_url}"

    async def token_for_code(self, code: str) -> str:
        return await self.auth.token_for_code(code, sync=False)


def _own_hosts(request: Request) -> set[str]:
    """The host (and port) the browser addressed: ``Host``, or what the hub's proxy forwarded as the original."""
    hosts = {request.headers.get("host", "").lower()}
    hosts.update(h.strip().lower() for h in request.headers.get("x-forwarded-host", "").split(",") if h.strip())
    return hosts - {""}


def check_xsrf(request: Request) -> None:
    """Cookie-authenticated changes must carry the ``_xsrf`` cookie's value in a header and come from our origin
    (``Sec-Fetch-Site`` where the browser sends it, ``Origin`` where it sends that)."""
    if request.headers.get("sec-fetch-mode") == "no-cors":
        raise HTTPException(403, "Refused: a no-cors request cannot change workspaces.")
    site = request.headers.get("sec-fetch-site")
    if site and site not in {"same-origin", "none"}:
        raise HTTPException(403, "Refused: the request came from another site.")
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc.lower() not in _own_hosts(request):
        log.warning("refused a cookie-authenticated %s from origin %r", request.method, origin)
        raise HTTPException(403, "Refused: the request came from another site.")
    cookie = request.cookies.get(XSRF_COOKIE, "")
    sent = request.headers.get("x-xsrftoken", "")
    if not cookie or not sent or not hmac.compare_digest(cookie, sent):
        raise HTTPException(403, "Refused: the XSRF token is missing or does not match; reload the page.")
