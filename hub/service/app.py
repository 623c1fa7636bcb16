"""The workspace service's FastAPI application: the REST API under ``api/`` and the pages beside it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
from cachetools import TTLCache
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from agp.core.names import InvalidName, WorkspaceNames
from agp.core.permissions import Caller
from agp.core.settings import Settings
from agp.core.tokens import jwks

from .. import db as dbmod
from .. import rules_sync, shared_sync, store
from ..broker import Broker
from ..history import routes as history_routes
from ..history import store as history_store
from ..jobs import routes as job_routes
from ..jobs.scheduler import HubUsersAPI, Scheduler, executor_for
from ..jobs.storage import RunStorage
from ..provision import Provisioner
from ..trino_rules import render
from . import pages as workspace_pages
from .catalog_proxy import CatalogProxy, Principal
from .catalog_routes import error_body
from .engines import EngineIdentity
from .hubauth import STATE_COOKIE, TOKEN_COOKIE, XSRF_COOKIE, HubIdentity, LoginRequired
from .schemas import AuditFilter, AuditOut, CredentialRequest, MemberSet, WorkspaceCreate, WorkspaceOut, WorkspaceUpdate
from .trino_routes import router as trino_router
from .users import KeycloakUsers, UserDirectory

log = logging.getLogger(__name__)
# The service's pages, and the hub's templates for the navigation bar both share (agp_chrome.html).
TEMPLATES = Jinja2Templates(directory=[Path(__file__).parent / "templates", Path(__file__).parent.parent / "templates"])


def create_app(
    settings: Settings,
    prefix: str,
    identity: HubIdentity | None = None,
    rules_interval: float = 10.0,
    run_jobs: bool = True,
) -> FastAPI:
    prefix = "/" + prefix.strip("/")
    engine = dbmod.make_engine(settings.db_url)
    dbmod.upgrade(engine)
    make_session = dbmod.sessions(engine)
    provisioner = Provisioner(settings)
    identity = identity or HubIdentity(prefix)
    hub_users: list[rules_sync.HubUsers] = []  # the hub's admins and groups as last read (at most one entry)
    # The lab's shared folders follow the same grants; where they are volumes, a server that lost access stops.
    stop_server = shared_sync.hub_server_stopper(identity.auth.api_url, identity.auth.api_token)
    shared_folders = shared_sync.SharedFolders(settings, stop_server)

    def sync_rules() -> None:
        """Trino's rules follow every change of workspaces, members, admins and groups."""
        try:
            hub = rules_sync.fetch_hub_users(identity.auth.api_url, identity.auth.api_token)
        except httpx.HTTPError:
            log.exception("could not read the hub's users; Trino rules keep their last state")
            return
        hub_users[:] = [hub]
        with make_session() as s:
            rules_sync.sync(settings, s, hub)
            shared_folders.sync(s, hub)

    def rules_text() -> str:
        """The rules as :func:`sync_rules` writes them: the membership table now, the hub as last read."""
        if not hub_users:
            hub_users[:] = [rules_sync.fetch_hub_users(identity.auth.api_url, identity.auth.api_token)]
        with make_session() as s:
            return render(rules_sync.rules(s, hub_users[0]))

    def audit_rules_refusal(detail: dict) -> None:
        with make_session() as s:
            store.audit(s, Caller("anonymous"), "trino.rules.read", "trino-rules", "refused", **detail)
            s.commit()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        async def every(seconds: float) -> None:
            # Also catches what no request here changes: hub admins and Keycloak groups, seen at each login.
            while True:
                await asyncio.to_thread(sync_rules)
                await asyncio.sleep(seconds)

        def prune_history_once() -> int:
            with make_session() as s:
                return history_store.prune(s, settings.query_history_days)

        async def prune_history() -> None:
            # The history is the data-access audit: kept query_history_days, then deleted, once an hour.
            while True:
                try:
                    gone = await asyncio.to_thread(prune_history_once)
                    if gone:
                        log.info(
                            "query history: deleted %d entries older than %d days", gone, settings.query_history_days
                        )
                except Exception:  # the next hour tries again; the service goes on
                    log.exception("query history: pruning failed")
                await asyncio.sleep(3600)

        tasks = [asyncio.create_task(every(rules_interval)), asyncio.create_task(prune_history())]
        if run_jobs:
            tasks.append(asyncio.create_task(scheduler.run_forever()))
        yield
        for task in tasks:
            task.cancel()

    app = FastAPI(
        lifespan=lifespan,
        title="Antigravity workspace service",
        version="1",
        description="Workspaces, members, quotas and the audit log. Authenticate with a hub API token "
        "(`Authorization: token …`) or, in a browser, through the hub's login.",
        openapi_url=f"{prefix}/api/openapi.json",
        docs_url=f"{prefix}/api/docs",
        redoc_url=None,
    )

    def session() -> Iterator[Session]:
        with make_session() as s:
            yield s

    async def caller(request: Request) -> Caller:
        return await identity.caller(request)

    async def page_caller(request: Request) -> Caller:
        return await identity.caller(request, browser=True)

    @app.exception_handler(store.Refused)
    async def _refused(_: Request, exc: store.Refused) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(LoginRequired)
    async def _login(_: Request, exc: LoginRequired) -> Response:
        url, state = identity.login_redirect(exc.next_url)
        response = RedirectResponse(url, status_code=302)
        response.set_cookie(STATE_COOKIE, state, httponly=True, samesite="lax", path=prefix, max_age=600)
        return response

    api = APIRouter(prefix=f"{prefix}/api", tags=["workspaces"])

    @api.get("/workspaces", response_model=list[WorkspaceOut])
    def list_workspaces(who: Caller = Depends(caller), db: Session = Depends(session)):
        """Workspaces the caller belongs to; every workspace for platform admins."""
        return [WorkspaceOut.of(ws, who) for ws in store.list_for(db, who)]

    @api.post("/workspaces", response_model=WorkspaceOut, status_code=201)
    def create_workspace(body: WorkspaceCreate, who: Caller = Depends(caller), db: Session = Depends(session)):
        """Create a workspace and provision its bucket, namespace and Trino schema (admins)."""
        ws = store.create(db, who, provisioner, **body.model_dump())
        sync_rules()
        return _provisioned(ws, who, 201)

    @api.get("/workspaces/{slug}", response_model=WorkspaceOut)
    def get_workspace(slug: str, who: Caller = Depends(caller), db: Session = Depends(session)):
        return WorkspaceOut.of(store.get(db, who, slug), who)

    @api.patch("/workspaces/{slug}", response_model=WorkspaceOut)
    def update_workspace(
        slug: str, body: WorkspaceUpdate, who: Caller = Depends(caller), db: Session = Depends(session)
    ):
        ws = store.update(db, who, slug, **body.model_dump())
        sync_rules()
        return WorkspaceOut.of(ws, who)

    @api.post("/workspaces/{slug}/provision", response_model=WorkspaceOut)
    def retry_provisioning(slug: str, who: Caller = Depends(caller), db: Session = Depends(session)):
        """Run provisioning again: completes a workspace left ``failed``; a no-op on a ready one."""
        ws = store.provision(db, who, provisioner, store.managed(db, who, slug, "workspace.provision"))
        sync_rules()
        return _provisioned(ws, who, 200)

    @api.post("/workspaces/{slug}/archive", response_model=WorkspaceOut)
    def archive_workspace(slug: str, who: Caller = Depends(caller), db: Session = Depends(session)):
        """Archive: the data stays, new servers are refused."""
        ws = store.archive(db, who, slug)
        sync_rules()
        return WorkspaceOut.of(ws, who)

    @api.post("/workspaces/{slug}/unarchive", response_model=WorkspaceOut)
    def unarchive_workspace(slug: str, who: Caller = Depends(caller), db: Session = Depends(session)):
        """Bring an archived workspace back (owners and admins): servers may start again."""
        ws = store.unarchive(db, who, slug)
        sync_rules()
        return WorkspaceOut.of(ws, who)

    @api.put("/workspaces/{slug}/members/{username}", response_model=WorkspaceOut)
    def set_member(
        slug: str, username: str, body: MemberSet, who: Caller = Depends(caller), db: Session = Depends(session)
    ):
        """Add a member (a user the platform knows) or change a member's role; the last owner stays owner."""
        ws = store.set_member(db, who, slug, username, body.role, known_user=directory.exists)
        sync_rules()
        return WorkspaceOut.of(ws, who)

    @api.delete("/workspaces/{slug}/members/{username}", response_model=WorkspaceOut)
    def remove_member(slug: str, username: str, who: Caller = Depends(caller), db: Session = Depends(session)):
        ws = store.remove_member(db, who, slug, username)
        sync_rules()
        return WorkspaceOut.of(ws, who)

    @api.get("/workspaces/{slug}/audit", response_model=list[AuditOut])
    def workspace_audit(
        slug: str,
        response: Response,
        filters: AuditFilter = Depends(),
        who: Caller = Depends(caller),
        db: Session = Depends(session),
    ):
        """The workspace's audit log, newest first (owners and admins); the header X-Total-Count says how many
        events match the filters in all."""
        events, total = store.audit_log(db, who, slug, **filters.model_dump())
        response.headers["X-Total-Count"] = str(total)
        return [AuditOut.of(ev) for ev in events]

    @api.get("/audit", response_model=list[AuditOut])
    def audit(
        response: Response,
        filters: AuditFilter = Depends(),
        who: Caller = Depends(caller),
        db: Session = Depends(session),
    ):
        """The whole audit log, newest first (admins); X-Total-Count as for a workspace's."""
        events, total = store.audit_log(db, who, None, **filters.model_dump())
        response.headers["X-Total-Count"] = str(total)
        return [AuditOut.of(ev) for ev in events]

    directory = UserDirectory(identity.auth.api_url, identity.auth.api_token, KeycloakUsers(settings))
    broker = Broker(settings)
    storage = RunStorage(broker)
    scheduler = Scheduler(
        settings,
        make_session,
        executor_for(settings),
        HubUsersAPI(identity.auth.api_url, identity.auth.api_token),
        storage,
    )
    mount = prefix + "/iceberg"
    workspace_buckets: TTLCache = TTLCache(maxsize=4096, ttl=300)

    def bucket_of(namespace: str) -> str:
        """A workspace's namespace keeps its files in the workspace's bucket; any other namespace (the platform's,
        reached by admins and Trino only) in the warehouse. Only workspaces are cached: one made later is seen
        at once."""
        if namespace in workspace_buckets:
            return workspace_buckets[namespace]
        try:
            names = WorkspaceNames.from_namespace(namespace)
        except InvalidName:
            return settings.warehouse_bucket
        with make_session() as s:
            if not store.exists(s, names.slug):
                return settings.warehouse_bucket
        workspace_buckets[namespace] = names.bucket
        return names.bucket

    catalog = CatalogProxy(settings, settings.catalog_proxy_uri, mount, bucket_of)
    engines = EngineIdentity(settings)

    @app.api_route(mount + "/{path:path}", methods=["GET", "HEAD", "POST", "PUT", "DELETE"], include_in_schema=False)
    async def iceberg(path: str, request: Request) -> Response:
        """The Iceberg REST catalog for notebooks (a hub token as bearer) and Trino (the platform's Keycloak
        client), authorized per namespace; see catalog_routes for what is forwarded."""
        try:
            engine = await engines.engine(request)
            who = None if engine else await identity.caller(request)
        except HTTPException as e:
            return JSONResponse(error_body(e.status_code, str(e.detail)), status_code=e.status_code)

        async def principal_for(namespace: str | None) -> Principal:
            if engine is not None:
                return Principal(engine, None, engine=True)
            # A call under /namespaces/{ns} looks up the caller's access to that namespace alone.
            access = None if who.admin else await asyncio.to_thread(_namespaces_of, who, namespace)
            return Principal(who.name, access)

        actor = Caller(engine) if engine else who

        def vend_s3(namespace: str, writable: bool) -> dict | None:
            # The proxy authorized the namespace already.
            bucket = bucket_of(namespace)
            if bucket == settings.warehouse_bucket and not (engine or who.admin):
                return None  # the platform's own namespaces: admins and Trino only
            cred = broker.s3_bucket(actor.name, bucket, writable)
            log.info("catalog: S3 credential for %s on %s (%s)", actor.name, bucket, "rw" if writable else "ro")
            return cred

        def audit(action: str, namespace: str, outcome: str, detail: dict) -> None:
            try:
                target = WorkspaceNames.from_namespace(namespace).slug
            except InvalidName:
                target = namespace[:255]
            with make_session() as s:
                store.audit(s, actor, action, target, outcome, namespace=namespace, **detail)
                s.commit()

        return await catalog.forward(request, principal_for, vend_s3, audit)

    def _namespaces_of(who: Caller, namespace: str | None = None) -> dict[str, bool]:
        with make_session() as s:
            return store.namespace_access(s, who, namespace)

    @api.post("/workspaces/{slug}/credentials", tags=["credentials"])
    def credentials(
        slug: str, body: CredentialRequest, who: Caller = Depends(caller), db: Session = Depends(session)
    ) -> dict:
        """Short-lived credentials for the caller in this workspace (members only); each issue is audited."""
        ws, role = store.member_role(db, who, slug)
        names = WorkspaceNames(ws.slug)
        issued = {}
        for kind in dict.fromkeys(body.kinds):
            cred = broker.issue(kind, who.name, names, role)
            store.audit(
                db, who, "credential.issue", slug, "ok", kind=kind, role=role.value, expires_at=cred["expires_at"]
            )
            issued[kind] = cred
        db.commit()
        return issued

    @api.get("/me")
    def me(who: Caller = Depends(caller)):
        return {"name": who.name, "admin": who.admin, "groups": sorted(who.groups)}

    app.include_router(api)
    private_pem = broker.keys.broker_private.read_bytes()
    app.include_router(
        trino_router(
            prefix,
            jwks=lambda: jwks(private_pem),
            rules_text=rules_text,
            rules_token=lambda: settings.credentials.trino_rules_token.get_secret_value(),
            audit_refusal=audit_rules_refusal,
        )
    )

    # -- pages
    @app.get(f"{prefix}/oauth_callback", include_in_schema=False)
    async def oauth_callback(request: Request, code: str = "", state: str = ""):
        saved = request.cookies.get(STATE_COOKIE, "")
        expected, _, next_url = saved.partition("|")
        if not code or not state or not secrets.compare_digest(state, expected):
            raise HTTPException(403, "The login did not match this browser's session; start again from the hub.")
        token = await identity.token_for_code(code)
        if not next_url.startswith(prefix):
            next_url = prefix + "/"
        response = RedirectResponse(next_url, status_code=302)
        response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="lax", path=prefix)
        response.delete_cookie(STATE_COOKIE, path=prefix)
        return response

    @app.get(prefix + "/", response_class=HTMLResponse, include_in_schema=False)
    def index(request: Request, who: Caller = Depends(page_caller), db: Session = Depends(session)):
        workspaces = [WorkspaceOut.of(ws, who) for ws in store.list_for(db, who)]
        events = [AuditOut.of(ev) for ev in store.audit_log(db, who, None, 50)[0]] if who.admin else []
        rules = workspace_pages.naming_rules()
        return _page(request, "workspaces.html", who=who, workspaces=workspaces, events=events, rules=rules)

    @app.get(prefix, include_in_schema=False)
    def index_slash() -> RedirectResponse:
        return RedirectResponse(prefix + "/")

    @app.get(prefix + "/health", include_in_schema=False)
    def health() -> dict:
        return {"ok": True}

    def _page(request: Request, template: str, status_code: int = 200, **context) -> HTMLResponse:
        xsrf = request.cookies.get(XSRF_COOKIE) or secrets.token_urlsafe(24)
        response = TEMPLATES.TemplateResponse(
            request, template, {"prefix": prefix, "hub_url": "", "xsrf": xsrf, **context}, status_code=status_code
        )
        response.set_cookie(XSRF_COOKIE, xsrf, samesite="strict", path=prefix)
        return response

    app.include_router(job_routes.router(prefix, session, caller, page_caller, scheduler, storage, _page))
    token = settings.credentials.query_history_token.get_secret_value
    app.include_router(history_routes.router(prefix, session, caller, page_caller, _page, make_session, token))
    app.include_router(workspace_pages.router(prefix, session, caller, page_caller, _page, directory))
    return app


def _provisioned(ws, who: Caller, ok_status: int) -> JSONResponse:
    body = WorkspaceOut.of(ws, who).model_dump(mode="json")
    if body["state"] == "failed":
        return JSONResponse(
            {**body, "detail": f"Workspace {ws.slug!r} is recorded but not ready: {ws.failure_reason}"},
            status_code=503,
        )
    return JSONResponse(body, status_code=ok_status)
