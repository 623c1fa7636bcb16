"""The jobs API (under ``api/workspaces/{slug}/``) and pages (``w/{slug}/jobs``, ``w/{slug}/runs/{id}``)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from agp.core.models import ENDED, Job, JobRun, Role, RunState
from agp.core.permissions import Caller, effective_role

from ..store import Refused
from . import store as jobs
from .scheduler import Scheduler
from .storage import RunStorage

log = logging.getLogger(__name__)
MAX_OUTPUT = 64 * 1024 * 1024  # bytes of an executed notebook a runner uploads
# An executed notebook is its author's HTML and JavaScript: shown as a sandboxed document (no script runs, it has an
# origin of its own, so it reads no cookie and calls no API as the viewer).
SANDBOX_CSP = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:"
# A run's log and executed notebook are its author's bytes (HTML and script, if they like): served as what they are,
# never read as a page of ours by a browser that guesses a type from the content.
NOT_SNIFFED = {"X-Content-Type-Options": "nosniff"}


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=200, description="default: the file name without its extension")
    kind: str = Field(
        pattern="^(notebook|script)$",
        description="notebook (.ipynb, run on the Antigravity kernel) or script (.py, run with Python)",
    )
    filename: str = Field(max_length=255)
    source: str = Field(description="the notebook's JSON or the script's text; runs execute this copy")
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="injected as papermill does, or passed to a script as --name value"
    )
    timeout_seconds: int = Field(3600, gt=0, le=7 * 24 * 3600, description="an attempt running longer is stopped")
    max_retries: int = Field(0, ge=0, le=10, description="attempts after a failed or timed-out one")
    schedule: str | None = Field(None, max_length=120, description="cron: 5 fields, or 6 with seconds first")
    timezone: str = Field("UTC", max_length=64, description="IANA zone the schedule is read in")
    run_now: bool = Field(True, description="start a run at once")


class JobUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=200)
    parameters: dict[str, Any] | None = None
    timeout_seconds: int | None = Field(None, gt=0, le=7 * 24 * 3600)
    max_retries: int | None = Field(None, ge=0, le=10)
    schedule: str | None = Field(None, max_length=120, description="empty string removes the schedule")
    timezone: str | None = Field(None, max_length=64)
    paused: bool | None = None
    source: str | None = None


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parameters: dict[str, Any] = Field(default_factory=dict, description="over the job's own")


class JobOut(BaseModel):
    id: int
    workspace: str
    name: str
    owner: str
    kind: str
    filename: str
    parameters: dict[str, Any]
    timeout_seconds: int
    max_retries: int
    schedule: str | None
    timezone: str
    paused: bool
    next_fire_at: datetime | None
    created_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(workspace=job.workspace.slug, **{k: getattr(job, k) for k in cls.model_fields if k != "workspace"})


class RunOut(BaseModel):
    id: int
    job_id: int
    job_name: str
    workspace: str
    owner: str
    trigger: str
    scheduled_for: datetime | None
    parameters: dict[str, Any]
    state: str
    reason: str | None
    attempt: int
    max_attempts: int
    queued_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    has_output: bool
    kind: str
    filename: str
    page_url: str

    @classmethod
    def of(cls, run: JobRun, prefix: str) -> RunOut:
        slug = run.workspace.slug
        return cls(
            id=run.id,
            job_id=run.job_id,
            job_name=run.job.name,
            workspace=slug,
            owner=run.owner,
            trigger=run.trigger,
            scheduled_for=run.scheduled_for,
            parameters=run.parameters,
            state=str(getattr(run.state, "value", run.state)),
            reason=run.reason,
            attempt=run.attempt,
            max_attempts=run.max_attempts,
            queued_at=run.queued_at,
            started_at=run.started_at,
            ended_at=run.ended_at,
            has_output=run.output_key is not None,
            kind=run.job.kind,
            filename=run.job.filename,
            page_url=f"{prefix}/w/{slug}/runs/{run.id}",
        )


def router(
    prefix: str,
    session: Callable[..., Any],
    caller: Callable[..., Any],
    page_caller: Callable[..., Any],
    scheduler: Scheduler,
    storage: RunStorage,
    page: Callable[..., HTMLResponse],
) -> APIRouter:
    r = APIRouter()
    api = f"{prefix}/api/workspaces/{{slug}}"

    @r.post(api + "/jobs", status_code=201, tags=["jobs"])
    def submit(slug: str, body: JobCreate, who: Caller = Depends(caller), db: Session = Depends(session)) -> dict:
        """Submit a job (owners and editors); with ``run_now`` it is queued at once, with ``schedule`` it fires."""
        job, run = jobs.submit(db, who, slug, **body.model_dump())
        scheduler.wake.set()
        return {"job": JobOut.of(job), "run": RunOut.of(run, prefix) if run else None}

    @r.get(api + "/jobs", response_model=list[JobOut], tags=["jobs"])
    def list_jobs(slug: str, who: Caller = Depends(caller), db: Session = Depends(session)):
        return [JobOut.of(j) for j in jobs.list_jobs(db, who, slug)]

    @r.get(api + "/jobs/{job_id}", response_model=JobOut, tags=["jobs"])
    def get_job(slug: str, job_id: int, who: Caller = Depends(caller), db: Session = Depends(session)):
        return JobOut.of(jobs.get_job(db, who, slug, job_id))

    @r.patch(api + "/jobs/{job_id}", response_model=JobOut, tags=["jobs"])
    def update_job(
        slug: str, job_id: int, body: JobUpdate, who: Caller = Depends(caller), db: Session = Depends(session)
    ):
        """Change a job (its owner): an empty ``schedule`` removes it, ``paused`` stops it firing."""
        changes = body.model_dump(exclude_unset=True)
        return JobOut.of(jobs.update_job(db, who, slug, job_id, **changes))

    @r.delete(api + "/jobs/{job_id}", status_code=204, tags=["jobs"])
    def delete_job(slug: str, job_id: int, who: Caller = Depends(caller), db: Session = Depends(session)):
        """Delete a job (its owner) with its ended runs, their logs and executed notebooks."""
        jobs.delete_job(db, who, slug, job_id, lambda run_id: storage.delete_run(slug, run_id))
        return Response(status_code=204)

    @r.post(api + "/jobs/{job_id}/runs", status_code=201, response_model=RunOut, tags=["jobs"])
    def run_now(
        slug: str,
        job_id: int,
        body: RunCreate | None = None,
        who: Caller = Depends(caller),
        db: Session = Depends(session),
    ):
        run = jobs.run_now(db, who, slug, job_id, (body or RunCreate()).parameters)
        scheduler.wake.set()
        return RunOut.of(run, prefix)

    @r.get(api + "/runs", response_model=list[RunOut], tags=["jobs"])
    def list_runs(
        slug: str,
        job_id: int | None = None,
        state: str | None = None,
        limit: int = 50,
        offset: int = 0,
        who: Caller = Depends(caller),
        db: Session = Depends(session),
    ):
        """The workspace's runs, newest first (every member)."""
        return [RunOut.of(x, prefix) for x in jobs.list_runs(db, who, slug, job_id, state, limit, offset)]

    @r.get(api + "/runs/{run_id}", response_model=RunOut, tags=["jobs"])
    def get_run(slug: str, run_id: int, who: Caller = Depends(caller), db: Session = Depends(session)):
        return RunOut.of(jobs.get_run(db, who, slug, run_id), prefix)

    @r.post(api + "/runs/{run_id}/cancel", response_model=RunOut, tags=["jobs"])
    def cancel(slug: str, run_id: int, who: Caller = Depends(caller), db: Session = Depends(session)):
        """Cancel a run (its owner, the workspace's owners): a queued one at once, a running one is stopped."""
        run = jobs.cancel(db, who, slug, run_id)
        scheduler.wake.set()
        return RunOut.of(run, prefix)

    async def log_text(who: Caller, slug: str, run_id: int, offset: int) -> tuple[bytes, JobRun]:
        run = await asyncio.to_thread(_get_run, session, who, slug, run_id)
        live = await scheduler.live_log(run, 0)
        finished_attempts = run.attempt - 1 if live is not None else run.attempt
        earlier = await asyncio.to_thread(storage.logs, slug, run.id, finished_attempts) if finished_attempts else b""
        return (earlier + (live or b""))[max(0, offset) :], run

    @r.get(api + "/runs/{run_id}/log", tags=["jobs"], response_class=Response)
    async def run_log(slug: str, run_id: int, offset: int = 0, who: Caller = Depends(caller)) -> Response:
        """The run's log (stdout and stderr of every attempt) from byte ``offset``; readable while it runs."""
        data, run = await log_text(who, slug, run_id, offset)
        return Response(
            data,
            media_type="text/plain; charset=utf-8",
            headers={
                "X-Run-State": str(getattr(run.state, "value", run.state)),
                "X-Log-Next-Offset": str(max(0, offset) + len(data)),
                **NOT_SNIFFED,
            },
        )

    @r.get(api + "/runs/{run_id}/output", tags=["jobs"])
    def run_output(slug: str, run_id: int, who: Caller = Depends(caller), db: Session = Depends(session)):
        """The executed notebook, with its outputs (as far as it got)."""
        return Response(_output(db, who, slug, run_id), media_type="application/x-ipynb+json", headers=NOT_SNIFFED)

    def _output(db: Session, who: Caller, slug: str, run_id: int) -> bytes:
        run = jobs.get_run(db, who, slug, run_id)
        data = storage.get(slug, run.output_key) if run.output_key else None
        if data is None:
            raise Refused(
                404,
                f"Run {run_id} has no executed notebook"
                + (" (a script's output is its log)." if run.job.kind == "script" else " yet."),
            )
        return data

    # -- the runner's own calls (the run's owner, with the run's token, while it runs)
    @r.get(api + "/runs/{run_id}/input", include_in_schema=False)
    def run_input(slug: str, run_id: int, who: Caller = Depends(caller), db: Session = Depends(session)) -> dict:
        run = jobs.runner_run(db, who, slug, run_id)
        job = run.job
        return {"kind": job.kind, "filename": job.filename, "source": job.source, "parameters": run.parameters}

    @r.put(api + "/runs/{run_id}/output", status_code=204, include_in_schema=False)
    async def put_output(slug: str, run_id: int, request: Request, who: Caller = Depends(caller)) -> Response:
        # Who may upload is checked before the body is read: any hub user could otherwise make the service hold
        # 64 MiB per request.
        await asyncio.to_thread(_runner_check, session, who, slug, run_id)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_OUTPUT:
                raise HTTPException(413, f"An executed notebook is at most {MAX_OUTPUT // (1024 * 1024)} MiB.")
        body = bytes(body)
        try:
            nb = json.loads(body)
            if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
                raise ValueError("no cells")
        except ValueError as e:
            raise HTTPException(422, "The output is not a notebook.") from e
        await asyncio.to_thread(_save_output, session, who, slug, run_id, body, storage)
        return Response(status_code=204)

    # -- pages
    @r.get(prefix + "/w/{slug}/jobs", response_class=HTMLResponse, include_in_schema=False)
    def jobs_page(slug: str, request: Request, who: Caller = Depends(page_caller), db: Session = Depends(session)):
        runs = [RunOut.of(x, prefix) for x in jobs.list_runs(db, who, slug, limit=100)]
        defined = [JobOut.of(j) for j in jobs.list_jobs(db, who, slug)]
        ws = jobs.workspace(db, who, slug)
        role = effective_role(ws, who)
        return page(
            request,
            "jobs.html",
            who=who,
            slug=slug,
            runs=runs,
            jobs=defined,
            can_submit=jobs.can_write(ws, who),
            manages=who.admin or role == Role.owner,
        )

    @r.get(prefix + "/w/{slug}/runs/{run_id}", response_class=HTMLResponse, include_in_schema=False)
    async def run_page(slug: str, run_id: int, request: Request, who: Caller = Depends(page_caller)):
        data, run = await log_text(who, slug, run_id, 0)
        out = await asyncio.to_thread(lambda: RunOut.of(_get_run(session, who, slug, run_id), prefix))
        return page(
            request,
            "run.html",
            who=who,
            slug=slug,
            run=out,
            log=data[-200_000:].decode("utf-8", "replace"),
            ended=RunState(run.state) in ENDED,
        )

    @r.get(prefix + "/w/{slug}/runs/{run_id}/output.html", include_in_schema=False)
    def output_page(slug: str, run_id: int, who: Caller = Depends(page_caller), db: Session = Depends(session)):
        import nbformat
        from nbconvert import HTMLExporter

        nb = nbformat.reads(_output(db, who, slug, run_id).decode(), as_version=4)
        html, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
        return HTMLResponse(html, headers={"Content-Security-Policy": SANDBOX_CSP, **NOT_SNIFFED})

    return r


def _get_run(session: Callable[..., Any], who: Caller, slug: str, run_id: int) -> JobRun:
    gen = session()
    db = next(gen)
    try:
        run = jobs.get_run(db, who, slug, run_id)
        _ = run.job, run.workspace  # loaded while the session is open
        return run
    finally:
        gen.close()


def _runner_check(session: Callable[..., Any], who: Caller, slug: str, run_id: int) -> None:
    gen = session()
    db = next(gen)
    try:
        jobs.runner_run(db, who, slug, run_id)
    finally:
        gen.close()


def _save_output(
    session: Callable[..., Any], who: Caller, slug: str, run_id: int, body: bytes, storage: RunStorage
) -> None:
    gen = session()
    db = next(gen)
    try:
        run = jobs.runner_run(db, who, slug, run_id)
        run.output_key = storage.put_output(slug, run.id, body)
        db.commit()
    finally:
        gen.close()
