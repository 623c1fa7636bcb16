"""The server extension's jobs handlers: run a notebook or a script of this server as a job of its workspace.

Every handler forwards to the workspace service (``AGP_WORKSPACE_SERVICE_URL``) with this server's own hub token
(``JUPYTERHUB_API_TOKEN``), for this server's workspace (``AGP_WORKSPACE``), so the service sees the user as who
they are and checks their membership itself. What may be forwarded is this table, and nothing else: each request
is parsed into checked values (a run id is a whole number, a path stays inside the server's root) and the service's
request is rebuilt from them.

=====  ==========================  ===========================================================  ========
verb   here (``/agp/jobs/...``)    the service (``/api/workspaces/{ws}/...``)                   kind
=====  ==========================  ===========================================================  ========
GET    ``runs``                    ``GET runs`` (``job_id``, ``state``, ``limit``, ``offset``)  reads
GET    ``runs/{id}``               ``GET runs/{id}``                                            reads
POST   ``runs/{id}/cancel``        ``POST runs/{id}/cancel``                                    writes
GET    ``runs/{id}/log``           ``GET runs/{id}/log`` (``offset``)                           reads
POST   ``""`` (a new job)          ``POST jobs``; the source read here from ``path``            writes
POST   ``runs/{id}/open``          ``GET runs/{id}``, ``GET runs/{id}/output``; saved here      reads
=====  ==========================  ===========================================================  ========

Errors of the service keep their status and its ``detail`` sentence; a service that does not answer is a 503.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlencode

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import ensure_async, url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse

KINDS = {".ipynb": "notebook", ".py": "script"}
RUN_STATES = ("queued", "running", "succeeded", "failed", "cancelled", "timed_out")
ENVIRONMENT = ("AGP_WORKSPACE_SERVICE_URL", "JUPYTERHUB_API_TOKEN", "AGP_WORKSPACE")


class Refused(ValueError):
    """A request this server does not forward; ``str()`` is the sentence the user sees (HTTP 400)."""


# --- pure: checked values from what the browser sent -------------------------------------------------------------


@dataclass(frozen=True)
class JobRequest:
    """A checked ``POST /agp/jobs`` body (the source is read later, from ``path``)."""

    path: str
    kind: str
    name: str
    parameters: dict[str, Any]
    timeout_seconds: int | None
    max_retries: int | None
    schedule: str | None
    timezone: str | None
    run_now: bool

    @property
    def filename(self) -> str:
        return PurePosixPath(self.path).name

    def service_body(self, source: str) -> dict[str, Any]:
        """The service's ``POST jobs`` body; what the user left out keeps the service's default."""
        body: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "filename": self.filename,
            "source": source,
            "parameters": self.parameters,
            "schedule": self.schedule,
            "run_now": self.run_now,
        }
        for key in ("timeout_seconds", "max_retries", "timezone"):
            if getattr(self, key) is not None:
                body[key] = getattr(self, key)
        return body


def checked_path(value: Any) -> str:
    """An API path of a notebook or script inside the server's root, normalized (``a//b.py`` is ``a/b.py``)."""
    if not isinstance(value, str) or not value.strip():
        raise Refused("Name the notebook or script to run (path, relative to the server's root).")
    if "\0" in value or "\\" in value or value.startswith("/") or re.match(r"^[A-Za-z]:", value):
        raise Refused(f"{value!r} is not a path relative to the server's root.")
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise Refused(f"{value!r} is outside the server's root.")
    path = "/".join(parts)
    if PurePosixPath(path).suffix.lower() not in KINDS:
        raise Refused(f"{path} is neither a notebook (.ipynb) nor a Python script (.py): only those run as jobs.")
    return path


def _optional_int(body: dict, key: str, low: int, high: int) -> int | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Refused(f"{key} is a whole number from {low} to {high}.")
    return value


def _optional_text(body: dict, key: str, limit: int) -> str | None:
    value = body.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or len(value) > limit or "\n" in value:
        raise Refused(f"{key} is one line of at most {limit} characters.")
    return value.strip()


def parse_job_request(body: Any) -> JobRequest:
    """The checked values of a ``POST /agp/jobs`` body, or :class:`Refused` naming what is wrong (pure)."""
    if not isinstance(body, dict):
        raise Refused("The body is a JSON object: {path, name?, parameters?, timeout_seconds?, ...}.")
    unknown = set(body) - {
        "path",
        "name",
        "parameters",
        "timeout_seconds",
        "max_retries",
        "schedule",
        "timezone",
        "run_now",
    }
    if unknown:
        raise Refused(f"Unknown field(s): {', '.join(sorted(unknown))}.")
    path = checked_path(body.get("path"))
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict) or not all(isinstance(k, str) and k for k in parameters):
        raise Refused("parameters is a JSON object of names and values.")
    run_now = body.get("run_now", True)
    if not isinstance(run_now, bool):
        raise Refused("run_now is true or false.")
    return JobRequest(
        path=path,
        kind=KINDS[PurePosixPath(path).suffix.lower()],
        name=_optional_text(body, "name", 200) or PurePosixPath(path).stem,
        parameters=parameters,
        timeout_seconds=_optional_int(body, "timeout_seconds", 1, 7 * 24 * 3600),
        max_retries=_optional_int(body, "max_retries", 0, 10),
        schedule=_optional_text(body, "schedule", 120),
        timezone=_optional_text(body, "timezone", 64),
        run_now=run_now,
    )


def runs_query(arguments: dict[str, str]) -> dict[str, str]:
    """The runs list's query for the service, from the browser's (pure; unknown arguments are dropped)."""
    query: dict[str, str] = {}
    for key in ("job_id", "limit", "offset"):
        value = arguments.get(key)
        if value not in (None, ""):
            if not value.isdigit():
                raise Refused(f"{key} is a whole number.")
            query[key] = value
    state = arguments.get("state")
    if state:
        if state not in RUN_STATES:
            raise Refused(f"state is one of {', '.join(RUN_STATES)}.")
        query["state"] = state
    return query


def output_path(folder: str, job_name: str, run_id: int) -> str:
    """Where a run's executed notebook is saved: ``<folder>/<job name>-run-<id>.ipynb``, the name made safe (pure)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", job_name).strip(".-")[:80] or "job"
    return f"{folder.strip('/')}/{safe}-run-{run_id}.ipynb"


def service_error(status: int, body: bytes) -> str:
    """The one sentence of a service's error answer (FastAPI's ``detail``, a string or a list of problems)."""
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        detail = f"{where}: {first.get('msg', 'invalid')}" if where else first.get("msg")
    if not isinstance(detail, str) or not detail.strip():
        detail = f"The workspace service answered HTTP {status}."
    return detail.strip().splitlines()[0][:300]


def distrust(notebook: dict) -> dict:
    """The notebook with no cell marked trusted (pure, in place). A run's output is written by its job's code, or by
    anyone who writes in the workspace's bucket, and is opened in the server of whoever clicks it: saved through the
    contents manager, cells marked ``trusted`` get the notebook signed with this user's secret, and JupyterLab then
    runs its HTML's scripts and JavaScript outputs in this server's origin, as this user."""
    for cell in notebook.get("cells", []):
        if isinstance(cell.get("metadata"), dict):
            cell["metadata"].pop("trusted", None)
    return notebook


def http_error(status: int, sentence: str) -> web.HTTPError:
    """jupyter_server's JSON error (``message`` is the sentence; ``reason`` its status line, kept to ASCII)."""
    reason = sentence.encode("ascii", "replace").decode()[:200]
    return web.HTTPError(status, log_message=sentence.replace("%", "%%"), reason=reason)


# --- I/O: the service client and the handlers --------------------------------------------------------------------


class ServiceClient:
    """This server's calls to the workspace service's jobs API, as its user (the server's hub token)."""

    def __init__(self, environ: dict[str, str], timeout: float):
        missing = [k for k in ENVIRONMENT if not environ.get(k)]
        if missing:
            raise http_error(
                503,
                f"Jobs need a workspace server ({', '.join(missing)} not set); start one from the hub's home page.",
            )
        self.base = environ["AGP_WORKSPACE_SERVICE_URL"].rstrip("/")
        self.token = environ["JUPYTERHUB_API_TOKEN"]
        self.workspace = environ["AGP_WORKSPACE"]
        self.timeout = timeout

    def url(self, *segments: str | int, query: dict[str, str] | None = None) -> str:
        url = "/".join([self.base, "api", "workspaces", self.workspace, *(str(s) for s in segments)])
        return f"{url}?{urlencode(query)}" if query else url

    async def fetch(self, method: str, url: str, body: Any = None) -> HTTPResponse:
        headers = {"Authorization": f"token {self.token}", "Accept": "application/json"}
        data = None
        if method == "POST":
            headers["Content-Type"] = "application/json"
            data = json.dumps({} if body is None else body)
        request = HTTPRequest(
            url, method=method, headers=headers, body=data, request_timeout=self.timeout, follow_redirects=False
        )
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except OSError as e:  # refused, unreachable, no such host
            raise http_error(503, f"The workspace service does not answer ({type(e).__name__}); try again.") from e
        if response.code == 599:  # tornado's "no answer": a timeout or a closed connection
            raise http_error(503, f"The workspace service does not answer ({response.reason}); try again.")
        if response.code >= 400:
            raise http_error(response.code, service_error(response.code, response.body or b""))
        return response

    async def json(self, method: str, url: str, body: Any = None) -> Any:
        response = await self.fetch(method, url, body)
        try:
            return json.loads(response.body)
        except ValueError as e:
            raise http_error(502, "The workspace service answered something that is not JSON.") from e


class _JobsBase(APIHandler):
    @property
    def jobs(self) -> JobsBackend:
        return self.settings["agp_jobs"]

    def service(self) -> ServiceClient:
        return ServiceClient(self.jobs.environ, self.jobs.timeout)

    def finish_json(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(value))

    def body(self) -> Any:
        if not self.request.body:
            return {}
        try:
            return json.loads(self.request.body)
        except ValueError as e:
            raise http_error(400, "The body is not JSON.") from e


class RunsHandler(_JobsBase):
    @web.authenticated
    async def get(self):
        try:
            query = runs_query({k: self.get_argument(k) for k in self.request.arguments})
        except Refused as e:
            raise http_error(400, str(e)) from e
        service = self.service()
        self.finish_json(await service.json("GET", service.url("runs", query=query)))


class RunHandler(_JobsBase):
    @web.authenticated
    async def get(self, run_id: str):
        service = self.service()
        self.finish_json(await service.json("GET", service.url("runs", int(run_id))))


class CancelHandler(_JobsBase):
    @web.authenticated
    async def post(self, run_id: str):
        service = self.service()
        self.finish_json(await service.json("POST", service.url("runs", int(run_id), "cancel")))


class LogHandler(_JobsBase):
    """The run's log from ``offset`` on, as text; ``X-Run-State`` and ``X-Log-Next-Offset`` say how to go on."""

    @web.authenticated
    async def get(self, run_id: str):
        offset = self.get_argument("offset", "0")
        if not offset.isdigit():
            raise http_error(400, "offset is a whole number.")
        service = self.service()
        response = await service.fetch("GET", service.url("runs", int(run_id), "log", query={"offset": offset}))
        for header in ("X-Run-State", "X-Log-Next-Offset"):
            if header in response.headers:
                self.set_header(header, response.headers[header])
        self.set_header("Cache-Control", "no-store")
        self.finish(response.body or b"", set_content_type="text/plain; charset=utf-8")


class SubmitHandler(_JobsBase):
    """``POST``: a job of the workspace from a notebook or script of this server (run now and/or on a schedule)."""

    @web.authenticated
    async def post(self):
        try:
            job = parse_job_request(self.body())
        except Refused as e:
            raise http_error(400, str(e)) from e
        service = self.service()  # before reading the file: a server without a service says so first
        source = await self._source(job)
        created = await service.json("POST", service.url("jobs"), job.service_body(source))
        self.log.info("agp: job %r of %s submitted by %s", job.name, job.path, self.current_user.username)
        self.finish_json(created, status=201)

    async def _source(self, job: JobRequest) -> str:
        cm = self.contents_manager
        if not await ensure_async(cm.file_exists(job.path)):
            raise http_error(404, f"There is no file {job.path} in this server.")
        root = getattr(cm, "root_dir", None)  # a contents manager on files: a link may point out of the root
        if root and not _inside(root, job.path):
            raise http_error(400, f"{job.path} links to a file outside the server's root; copy the file in instead.")
        if job.kind == "notebook":
            import nbformat

            model = await ensure_async(cm.get(job.path, content=True, type="notebook"))
            return nbformat.writes(model["content"])
        model = await ensure_async(cm.get(job.path, content=True, type="file", format="text"))
        return model["content"]


class OpenOutputHandler(_JobsBase):
    """``POST``: the run's executed notebook, saved as ``job-outputs/<job>-run-<id>.ipynb``; answers its path."""

    @web.authenticated
    async def post(self, run_id: str):
        import nbformat

        service = self.service()
        run = await service.json("GET", service.url("runs", int(run_id)))
        output = await service.json("GET", service.url("runs", int(run_id), "output"))
        try:
            notebook = nbformat.from_dict(output)
            nbformat.validate(notebook)
        except Exception as e:
            self.log.warning("agp: the output of run %s is not a valid notebook: %s", run_id, e)
            raise http_error(502, f"The output of run {run_id} is not a valid notebook.") from e
        distrust(notebook)
        path = output_path(self.jobs.outputs_folder, str(run.get("job_name") or "job"), int(run_id))
        cm = self.contents_manager
        folder = path.rsplit("/", 1)[0]
        if not await ensure_async(cm.dir_exists(folder)):
            await ensure_async(cm.save({"type": "directory"}, folder))
        await ensure_async(cm.save({"type": "notebook", "format": "json", "content": notebook}, path))
        self.finish_json({"path": path})


def _inside(root: str, path: str) -> bool:
    real_root = os.path.realpath(root)
    return os.path.commonpath([real_root, os.path.realpath(os.path.join(real_root, path))]) == real_root


@dataclass
class JobsBackend:
    """What the jobs handlers need: the server's environment, the service's timeout, the outputs' folder."""

    environ: dict[str, str]
    timeout: float
    outputs_folder: str


def handlers(base_url: str) -> list[tuple[str, type]]:
    root = url_path_join(base_url, "agp", "jobs")
    run = r"(\d{1,18})"
    return [
        (root, SubmitHandler),
        (url_path_join(root, "runs"), RunsHandler),
        (url_path_join(root, "runs", run), RunHandler),
        (url_path_join(root, "runs", run, "cancel"), CancelHandler),
        (url_path_join(root, "runs", run, "log"), LogHandler),
        (url_path_join(root, "runs", run, "open"), OpenOutputHandler),
    ]
