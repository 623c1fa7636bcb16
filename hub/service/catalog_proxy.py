"""The Iceberg REST catalog as notebooks see it: the catalog behind the workspace service, which authorizes each call.

A caller reaches the namespaces of the workspaces it belongs to (writing where its role writes), platform admins
reach all, and nobody creates or drops namespaces here (provisioning does). Upstream, the service speaks to the
catalog as the platform: Apache Iceberg's REST catalog with the one bearer token only this service holds, or Nessie
with the platform's Keycloak client credentials (``Settings.catalog``); the catalog refuses everyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from fastapi import Request, Response
from fastapi.responses import JSONResponse

from agp.core.names import InvalidName, WorkspaceNames
from agp.core.settings import Settings

from . import catalog_routes as routes

log = logging.getLogger(__name__)

# Not X-Iceberg-Access-Delegation: the catalog is never asked to lend its own S3 rights; the proxy vends.
FORWARDED_HEADERS = {"content-type", "accept", "user-agent", "if-none-match"}
# Config keys through which a catalog lends S3 rights: signers, keys, tokens.
_LENT = re.compile(r"^s3\.(remote-signing|signer)|access-key|secret|session-token|token$|^client\.refresh-credentials")


@dataclass(frozen=True)
class Principal:
    """Who calls the catalog: a hub user with the namespaces it reaches (``access``: namespace → may write;
    ``None`` for platform admins), or Trino (``engine``), which enforces its own per-user rules and alone may
    say whom a view runs as."""

    name: str
    access: dict[str, bool] | None
    engine: bool = False


def s3_config(cred: dict) -> dict[str, str]:
    """An S3 credential from the broker in the Iceberg REST catalog's property names (pure)."""
    return {
        "s3.access-key-id": cred["access_key_id"],
        "s3.secret-access-key": cred["secret_access_key"],
        "s3.session-token": cred["session_token"],
        "s3.session-token-expires-at-ms": str(int(cred["expires_at"]) * 1000),
    }


def vend(doc: dict, cred: dict, refresh_path: str) -> dict:
    """A load-table answer with the caller's own S3 credential for the table, and where to renew it (pure).

    Iceberg's clients (Spark's S3FileIO through ``VendedCredentialsProvider``, pyiceberg) take these over any
    catalog-wide keys, and ask ``refresh_path`` for a new credential before this one expires.
    """
    config = doc.setdefault("config", {})
    config.update(s3_config(cred))
    config["client.refresh-credentials-endpoint"] = refresh_path
    config["client.refresh-credentials-enabled"] = "true"
    return doc


def _check(namespace: str, write: bool, access: dict[str, bool] | None, call: routes.Call | None = None) -> None:
    if access is None:
        return
    if namespace not in access:
        # A path that names a table or view is answered as the catalog answers a missing one (NoSuchTable or
        # NoSuchView): Spark reads `ns.table.snapshots` as a table of namespace `ns.table` first and tries the
        # metadata table only after a NoSuchTableException.
        if call is not None and call.values.get("table"):
            name = f"{namespace}.{call.values['table']}"
            raise routes.Refused(404, f"There is no table {name!r} in your workspaces.", "NoSuchTableException")
        if call is not None and call.values.get("view"):
            name = f"{namespace}.{call.values['view']}"
            raise routes.Refused(404, f"There is no view {name!r} in your workspaces.", "NoSuchViewException")
        raise routes.Refused(404, f"There is no namespace {namespace!r} in your workspaces.")
    if write and not access[namespace]:
        raise routes.Refused(403, f"Your role in the workspace of {namespace!r} reads but does not write.")


@contextlib.asynccontextmanager
async def _all_locks(locks: list[asyncio.Lock]):
    async with contextlib.AsyncExitStack() as stack:
        for lock in locks:
            await stack.enter_async_context(lock)
        yield


class CatalogProxy:
    def __init__(self, settings: Settings, public_uri: str, mount: str, bucket_of: Callable[[str], str] | None = None):
        self.settings = settings
        # Which bucket a namespace's files belong in: its workspace's, or the warehouse for the platform's others.
        self.bucket_of = bucket_of or self._default_bucket
        self.mount = mount.rstrip("/")
        self.upstream = settings.catalog_uri.rstrip("/")
        self.upstream_prefix = settings.catalog_upstream_prefix
        self.public_uri = public_uri.rstrip("/")
        self.engine_uri = settings.trino_catalog_uri.rstrip("/")
        self._table_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._token: tuple[str, float] | None = None
        self.http = httpx.AsyncClient(timeout=60)

    async def _service_token(self) -> str:
        if self.settings.catalog != "nessie":
            return self.settings.credentials.catalog_token.get_secret_value()
        if self._token and self._token[1] > time.time():
            return self._token[0]
        r = await self.http.post(
            self.settings.keycloak_token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": "agp-services",
                "client_secret": self.settings.credentials.services_client_secret.get_secret_value(),
                "scope": "openid",
            },
        )
        r.raise_for_status()
        doc = r.json()
        self._token = (doc["access_token"], time.time() + doc.get("expires_in", 60) - 30)
        return self._token[0]

    async def forward(
        self,
        request: Request,
        principal_for: Callable[[str | None], Awaitable[Principal]],
        vend_s3: Callable[[str, bool], dict | None] | None = None,
        audit: Callable[[str, str, str, dict], None] | None = None,
    ) -> Response:
        """Parse, authorize and check the call, forward exactly what was checked to the catalog as the platform, and
        adapt the answer for the caller. Refusals are Iceberg REST error objects.

        ``principal_for(namespace)`` says who calls, looking up its access to the one namespace the path names
        (all of them where it names none). ``vend_s3(namespace, writable)`` returns an S3 credential for a
        namespace's bucket; with it, table answers carry that credential and its refresh endpoint is answered
        here. ``audit(action, namespace, outcome, detail)`` records every write and every refusal.
        """
        method = request.method
        raw = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1")
        call: routes.Call | None = None
        who = Principal("unknown", {})
        try:
            if not raw.startswith(self.mount + "/"):
                raise routes.Refused(400, "The catalog path is not under this catalog's address.")
            call = routes.parse(method, raw[len(self.mount) + 1 :], request.query_params.multi_items())
            who = await principal_for(call.namespace)
            body = await request.body()
            # A body is parsed strictly and forwarded as it was checked (re-serialized), never as received.
            doc = routes.parse_body(body) if call.route.body else None
            async with self._locked(call, doc):
                await self._authorize(call, who, doc)
                return await self._forward(request, call, who, doc, vend_s3, audit)
        except routes.Refused as e:
            outcome, status, message, type_ = "refused", e.status, str(e), e.type
        except Exception:
            log.exception("catalog: %s %s for %s failed in the proxy", method, raw[:300], who.name)
            outcome, status, type_ = "failed", 500, "ServiceFailureException"
            message = "The catalog proxy failed on this request; the service's log has the details."
        log.warning("catalog: %s %s %s for %s: %s", outcome, method, raw[:300], who.name, message)
        if audit is not None:  # every refusal, reads of other workspaces' namespaces included
            action = "catalog." + (call.route.action if call else "unknown")
            detail = {"method": method, "path": raw[:300], "status": status, "reason": message}
            await asyncio.to_thread(audit, action, (call.namespace if call else None) or "", outcome, detail)
        return JSONResponse(routes.error_body(status, message, type_), status_code=status)

    def _locked(self, call: routes.Call, doc: dict | None) -> contextlib.AbstractAsyncContextManager:
        """Writes to one table wait for each other here: a register is checked against what the catalog answers
        (and undone if out of bounds) before any commit to that table goes through."""
        if call.route.action not in ("table.register", "table.commit", "table.create", "transaction.commit"):
            return contextlib.nullcontext()
        if call.route.action == "transaction.commit":
            keys = sorted(
                {
                    (routes.identifier_namespace(c.get("identifier")), str(c["identifier"].get("name")))
                    for c in (doc or {}).get("table-changes") or []
                    if isinstance(c, dict)
                }
            )
        else:
            keys = [(call.namespace or "", call.name or str((doc or {}).get("name", "")))]
        return _all_locks([self._table_locks.setdefault(k, asyncio.Lock()) for k in keys])

    async def _authorize(self, call: routes.Call, who: Principal, doc: dict | None) -> None:
        route, kind = call.route, call.route.body
        if kind == "provisioning" and (who.engine or who.access is not None):
            verb = "made" if route.method == "POST" else "dropped"
            raise routes.Refused(403, f"Namespaces are {verb} by workspace provisioning, not from a notebook or SQL.")
        if call.namespace is not None:
            _check(call.namespace, route.writes and kind != "metrics", who.access, call)
        if doc is None:
            return
        namespace = call.namespace or ""
        # Where this namespace's files belong, looked up once and off the event loop (it may read the database).
        prefix = await asyncio.to_thread(self.bucket_prefix, namespace) if namespace else ""
        if kind == "create" or kind == "create-view":
            what = "table" if kind == "create" else "view"
            routes.check_name(doc.get("name"), what)
            if doc.get("location") is not None:
                routes.check_location(doc["location"], prefix, f"{what} location")
            routes.check_properties(doc.get("properties"), prefix, who.engine)
            if kind == "create-view" and not who.engine:
                routes.check_view_version(doc.get("view-version"))
        elif kind == "register":
            # What the file says is checked in the catalog's answer (_forward), which is what the catalog holds.
            routes.check_name(doc.get("name"), "table")
            routes.check_location(doc.get("metadata-location"), prefix, "metadata file")
        elif kind == "commit" or kind == "commit-view":
            if "identifier" in doc and doc["identifier"] is not None:
                ident = doc["identifier"]
                if routes.identifier_namespace(ident) != namespace or ident.get("name") != call.name:
                    raise routes.Refused(400, "The commit's identifier names another table than its path.")
            routes.check_updates(doc.get("updates"), prefix, who.engine, kind == "commit-view")
            if kind == "commit-view" and not who.engine and routes.view_version_changes(doc.get("updates")):
                owner = await self._view_owner(call)
                if owner is not None and owner != who.name:
                    raise routes.Refused(
                        403,
                        f"View {call.name!r} runs as {owner!r}; only its owner can change its query (through SQL).",
                    )
        elif kind == "namespace-properties":
            routes.check_properties(doc.get("updates") or {}, prefix, who.engine)
            routes.check_removals(doc.get("removals") or [])
        elif kind == "rename":
            source, dest = (routes.identifier_namespace(doc.get(k)) for k in ("source", "destination"))
            _check(source, True, who.access)
            _check(dest, True, who.access)
            if source != dest:
                raise routes.Refused(
                    403, "Tables and views stay in their workspace: copy them (CREATE TABLE ... AS) to move them."
                )
        elif kind == "transaction":
            changes = doc.get("table-changes")
            if not isinstance(changes, list) or not changes:
                raise routes.Refused(400, "A transaction needs a list of table-changes.")
            for change in changes:
                if not isinstance(change, dict):
                    raise routes.Refused(400, "A transaction's table-changes must be objects.")
                ns = routes.identifier_namespace(change.get("identifier"))
                _check(ns, True, who.access)
                routes.check_updates(change.get("updates"), await asyncio.to_thread(self.bucket_prefix, ns), who.engine)

    async def _undo_if_outside(self, call: routes.Call, name: str, upstream: httpx.Response) -> None:
        """A registered or created table whose metadata (as the catalog now holds it) leaves the namespace's bucket
        is dropped again (its files are not touched) and the call refused: a registered file may have changed after
        any check, and a catalog places a table without a location where it likes."""
        try:
            prefix = await asyncio.to_thread(self.bucket_prefix, call.namespace or "")
            routes.check_table_metadata(upstream.json().get("metadata"), prefix)
        except (routes.Refused, ValueError) as e:
            drop = routes.Call(routes.route("DELETE", "table.drop"), {**call.values, "table": name})
            undone = await self._upstream("DELETE", drop.upstream_path(self.upstream_prefix), b"", {})
            log.warning(
                "catalog: registered %s.%s dropped again (HTTP %s): %s", call.namespace, name, undone.status_code, e
            )
            raise routes.Refused(403, f"The table's metadata points outside the workspace: {e}") from e

    async def _namespaces_for(self, call: routes.Call, access: dict[str, bool], headers: dict[str, str]) -> Response:
        """A user's namespaces in one answer: every page of the catalog read here and filtered, since the catalog's
        page tokens spell the namespaces they continue from (other workspaces' names)."""
        found, token = [], None
        query = tuple((k, v) for k, v in call.query if k == "parent")
        for _ in range(10_000):
            page = routes.Call(call.route, call.values, query + ((("pageToken", token),) if token else ()))
            upstream = await self._upstream("GET", page.upstream_path(self.upstream_prefix), b"", headers)
            if upstream.status_code != 200:
                return Response(upstream.content, status_code=upstream.status_code, media_type="application/json")
            doc = upstream.json()
            found += [ns for ns in doc.get("namespaces", []) if ".".join(ns) in access]
            token = doc.get("next-page-token")
            if not token:
                break
        return JSONResponse({"namespaces": found})

    def _default_bucket(self, namespace: str) -> str:
        try:
            return WorkspaceNames.from_namespace(namespace).bucket
        except InvalidName:
            return self.settings.warehouse_bucket

    def bucket_prefix(self, namespace: str) -> str:
        """Where a namespace's files may live: its workspace's bucket (the warehouse for admins' other ones)."""
        return f"s3://{self.bucket_of(namespace)}/"

    async def _view_owner(self, call: routes.Call) -> str | None:
        load = routes.Call(routes.route("GET", "view.load"), dict(call.values))
        r = await self._upstream("GET", load.upstream_path(self.upstream_prefix), b"", {})
        if r.status_code != 200:
            return None
        props = (r.json().get("metadata") or {}).get("properties") or {}
        return props.get(routes.RUN_AS_OWNER)

    async def _upstream(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        headers = {**headers, "authorization": f"Bearer {await self._service_token()}"}
        url = f"{self.upstream}/{path}"
        try:
            return await self.http.request(method, url, content=body, headers=headers)
        except httpx.HTTPError as e:
            log.error("catalog %s %s failed: %s", method, url, e)
            raise routes.Refused(503, "The Iceberg catalog does not answer; try again in a moment.") from e

    async def _forward(
        self,
        request: Request,
        call: routes.Call,
        who: Principal,
        doc: dict | None,
        vend_s3: Callable[[str, bool], dict | None] | None,
        audit: Callable[[str, str, str, dict], None] | None,
    ) -> Response:
        action, namespace = call.route.action, call.namespace
        writable = True if who.access is None else bool(namespace and who.access.get(namespace))
        if action == "table.credentials" and vend_s3 is not None and namespace:
            cred = await asyncio.to_thread(vend_s3, namespace, writable)
            if cred is None:
                raise routes.Refused(404, f"Namespace {namespace!r} has no workspace bucket to vend credentials for.")
            answer = {"storage-credentials": [{"prefix": f"s3://{cred['bucket']}/", "config": s3_config(cred)}]}
            return JSONResponse(answer)
        headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARDED_HEADERS}
        if action == "namespace.list" and who.access is not None:
            return await self._namespaces_for(call, who.access, headers)
        body = routes.canonical(doc) if doc is not None else b""
        upstream = await self._upstream(request.method, call.upstream_path(self.upstream_prefix), body, headers)
        # Loading names the table in the path; creating and registering name it in the body.
        name = call.name or (str(doc.get("name", "")) if doc is not None and "name" in doc else None)
        # A created table's location is the catalog's choice where the body names none: checked like a register's.
        if action in ("table.register", "table.create") and upstream.status_code == 200:
            await self._undo_if_outside(call, name or "", upstream)
        if call.route.writes and audit is not None:
            outcome = "ok" if upstream.status_code < 400 else "failed"
            detail = {"name": name, "status": upstream.status_code}
            await asyncio.to_thread(audit, "catalog." + action, namespace or "", outcome, detail)
        content = upstream.content
        ok_json = upstream.status_code == 200 and upstream.headers.get("content-type", "").startswith(
            "application/json"
        )
        if action == "config" and ok_json:
            # Trino stays on the address it came in on (the service's own port); notebooks on the hub's.
            content = self._client_config(upstream.json(), self.engine_uri if who.engine else self.public_uri)
        elif upstream.status_code >= 400:
            content = self._without_stack(upstream, action, who.name)
        elif action in ("table.load", "table.create", "table.register") and ok_json:
            answer = self._strip_signing(upstream.json())
            if vend_s3 is not None and namespace and "metadata" in answer and name:
                cred = await asyncio.to_thread(vend_s3, namespace, writable)
                if cred is not None:
                    refresh = routes.Call(routes.route("GET", "table.credentials"), {**call.values, "table": name})
                    answer = vend(answer, cred, refresh.upstream_path())
            content = json.dumps(answer).encode()
        kept = {k: v for k, v in upstream.headers.items() if k.lower() in {"content-type", "etag"}}
        return Response(content, status_code=upstream.status_code, headers=kept)

    @staticmethod
    def _strip_signing(doc: dict) -> dict:
        """Clients sign their S3 requests with their own bucket-scoped credential: whatever the catalog itself would
        lend (remote signing with its rights to every bucket, or credentials it vends from its own S3 identity) is
        taken out before the caller's own credential is put in."""
        config = doc.get("config")
        if isinstance(config, dict):
            for key in [k for k in config if _LENT.search(k)]:
                config.pop(key, None)
        doc.pop("storage-credentials", None)
        return doc

    def _client_config(self, doc: dict, uri: str) -> bytes:
        """The catalog's configuration as clients must see it, the same whichever catalog runs behind: on this proxy
        (a catalog would send them straight to itself), under this proxy's prefix, with S3 reached at the platform's
        store, and the endpoints this proxy offers (a catalog may list ones it refuses, such as its OAuth2 one)."""
        s = self.settings
        defaults = {k: v for k, v in (doc.get("defaults") or {}).items() if not k.startswith("nessie.")}
        defaults.update({"io-impl": "org.apache.iceberg.aws.s3.S3FileIO", "rest-metrics-reporting-enabled": "false"})
        defaults.pop("warehouse", None)
        defaults.setdefault("rest-page-size", "200")  # clients page their listings (the proxy passes pages on)
        overrides = {
            "uri": uri + "/",
            "prefix": routes.PUBLIC_PREFIX,
            "s3.endpoint": s.s3_endpoint,
            "s3.path-style-access": "true",
            "client.region": s.s3_region,
        }
        return json.dumps({"defaults": defaults, "overrides": overrides, "endpoints": routes.endpoints()}).encode()

    @staticmethod
    def _without_stack(upstream: httpx.Response, action: str, who: str) -> bytes:
        """A catalog's error as the caller sees it: its type, code and reason (a rejected commit says why), without
        the server's stack trace, which goes to this service's log. An answer that is no error object (a server's
        HTML error page) becomes one of ours."""
        try:
            doc = upstream.json()
        except ValueError:
            doc = None
        error = doc.get("error") if isinstance(doc, dict) else None
        if not isinstance(error, dict):
            log.warning(
                "catalog: %s for %s answered %s, not an error object: %.500r",
                action,
                who,
                upstream.status_code,
                upstream.text,
            )
            message = "The catalog could not handle this request; the service's log has the details."
            return json.dumps(routes.error_body(upstream.status_code, message, "ServiceFailureException")).encode()
        if "stack" not in error:
            return upstream.content
        stack = error.pop("stack")
        log.info("catalog: %s for %s answered %s: %s", action, who, upstream.status_code, error.get("message"))
        log.debug("catalog stack: %s", "\n".join(stack) if isinstance(stack, list) else stack)
        return json.dumps(doc).encode()
