"""Jobs and runs in the workspace database: one function per action, each checking who may do it and audited.

Rules: members who write (owners, editors) submit jobs; every member (viewers too) sees the workspace's jobs, runs,
logs and outputs; a job's owner changes, pauses, deletes and triggers it; a run is cancelled by its owner, the
workspace's owners and platform admins. A run always runs as its job's owner.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agp.core.models import ENDED, Job, JobRun, Role, RunState, State, Workspace
from agp.core.permissions import Caller, can_manage, effective_role

from .. import store
from ..store import Refused, audit
from . import cron

KINDS = {"notebook": ".ipynb", "script": ".py"}
MAX_SOURCE = 16 * 1024 * 1024  # bytes of a submitted notebook or script
WRITERS = (Role.owner, Role.editor)


def _workspace(db: Session, caller: Caller, slug: str) -> Workspace:
    return store.get(db, caller, slug)  # members and admins; others get the missing workspace's 404


workspace = _workspace


def can_write(ws: Workspace, caller: Caller) -> bool:
    return effective_role(ws, caller) in WRITERS


def _check_definition(kind: str, filename: str, source: str, schedule: str | None, timezone: str) -> None:
    if kind not in KINDS:
        raise Refused(422, "A job's kind is notebook or script.")
    if not filename or "/" in filename or "\\" in filename or filename.startswith(".") or len(filename) > 255:
        raise Refused(422, "A job's filename is a plain file name, such as report.ipynb.")
    if not filename.endswith(KINDS[kind]):
        raise Refused(422, f"A {kind} job's file name ends with {KINDS[kind]}.")
    if len(source.encode()) > MAX_SOURCE:
        raise Refused(413, f"The {kind} is larger than {MAX_SOURCE // (1024 * 1024)} MiB.")
    if kind == "notebook":
        try:
            nb = json.loads(source)
        except ValueError as e:
            raise Refused(422, f"{filename} is not a notebook (its JSON does not parse: {e}).") from e
        if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
            raise Refused(422, f"{filename} is not a notebook (it has no cells).")
    if schedule is not None:
        try:
            cron.check(schedule, timezone)
        except cron.InvalidSchedule as e:
            raise Refused(422, str(e)) from e
    else:
        try:
            cron.zone(timezone)
        except cron.InvalidSchedule as e:
            raise Refused(422, str(e)) from e


def submit(
    db: Session,
    caller: Caller,
    slug: str,
    *,
    kind: str,
    filename: str,
    source: str,
    name: str | None = None,
    parameters: dict[str, Any] | None = None,
    timeout_seconds: int = 3600,
    max_retries: int = 0,
    schedule: str | None = None,
    timezone: str = "UTC",
    run_now: bool = True,
) -> tuple[Job, JobRun | None]:
    ws = _workspace(db, caller, slug)
    if not can_write(ws, caller):
        audit(db, caller, "job.create", slug, "denied", filename=filename[:255])
        db.commit()
        raise Refused(403, f"Only owners and editors of {slug!r} run jobs in it; ask an owner for the editor role.")
    if State(ws.state) != State.ready:
        raise Refused(409, f"Workspace {slug!r} is {State(ws.state).value}; it runs no jobs.")
    schedule = " ".join(schedule.split()) if schedule and schedule.strip() else None
    _check_definition(kind, filename, source, schedule, timezone)
    now = datetime.now(UTC)
    job = Job(
        workspace_id=ws.id,
        name=(name or filename.rsplit(".", 1)[0])[:200],
        owner=caller.name,
        kind=kind,
        filename=filename,
        source=source,
        parameters=parameters or {},
        timeout_seconds=timeout_seconds,
        max_retries=max_retries,
        schedule=schedule,
        timezone=timezone,
        paused=False,
        next_fire_at=cron.next_fire(schedule, timezone, now) if schedule else None,
    )
    db.add(job)
    db.flush()
    run = _new_run(db, job, "manual", job.parameters) if run_now else None
    audit(
        db,
        caller,
        "job.create",
        slug,
        "ok",
        job=job.id,
        name=job.name,
        kind=kind,
        schedule=schedule,
        run=run.id if run else None,
    )
    db.commit()
    return job, run


def _new_run(db: Session, job: Job, trigger: str, parameters: dict, scheduled_for: datetime | None = None) -> JobRun:
    run = JobRun(
        job_id=job.id,
        workspace_id=job.workspace_id,
        owner=job.owner,
        trigger=trigger,
        scheduled_for=scheduled_for,
        parameters=parameters,
        state=RunState.queued,
        attempt=0,
        max_attempts=job.max_retries + 1,
        cancel_requested=False,
    )
    db.add(run)
    db.flush()
    return run


def list_jobs(db: Session, caller: Caller, slug: str) -> list[Job]:
    ws = _workspace(db, caller, slug)
    return list(db.scalars(select(Job).where(Job.workspace_id == ws.id).order_by(Job.id.desc())))


def _of_workspace(db: Session, caller: Caller, slug: str, model: type, row_id: int, what: str):
    """The ``model`` row ``row_id`` if it belongs to ``slug`` and the caller sees ``slug``; else the same 404 as for a
    missing row (ids are global: another workspace's id tells nothing)."""
    ws = _workspace(db, caller, slug)
    row = db.get(model, row_id)
    if row is None or row.workspace_id != ws.id:
        raise Refused(404, f"There is no {what} {row_id} in {slug!r}.")
    return row


def get_job(db: Session, caller: Caller, slug: str, job_id: int) -> Job:
    return _of_workspace(db, caller, slug, Job, job_id, "job")


def _owned_job(db: Session, caller: Caller, slug: str, job_id: int, action: str) -> Job:
    job = get_job(db, caller, slug, job_id)
    if job.owner != caller.name:
        audit(db, caller, action, slug, "denied", job=job_id)
        db.commit()
        raise Refused(403, f"Job {job_id} is {job.owner}'s; only its owner changes or runs it.")
    return job


def update_job(db: Session, caller: Caller, slug: str, job_id: int, **changes: Any) -> Job:
    job = _owned_job(db, caller, slug, job_id, "job.update")
    applied = {k: v for k, v in changes.items() if v is not None or k == "schedule"}
    # An owner who is a viewer now (or whose group lost its role) writes nothing in the workspace, their job's code,
    # parameters and schedule included (other members see them, and they run again once the role is back); pausing
    # it stays open to them, as deleting it does.
    if applied and applied != {"paused": True} and not can_write(job.workspace, caller):
        audit(db, caller, "job.update", slug, "denied", job=job_id)
        db.commit()
        raise Refused(403, f"Only owners and editors of {slug!r} change jobs in it; pausing yours stays possible.")
    if "schedule" in applied and isinstance(applied["schedule"], str):
        applied["schedule"] = " ".join(applied["schedule"].split()) or None
    schedule = applied.get("schedule", job.schedule)
    timezone = applied.get("timezone", job.timezone)
    _check_definition(job.kind, job.filename, changes.get("source") or job.source, schedule, timezone)
    for key, value in applied.items():
        setattr(job, key, value)
    if {"schedule", "timezone", "paused"} & applied.keys():
        job.next_fire_at = cron.next_fire(schedule, timezone, datetime.now(UTC)) if schedule else None
    audit(
        db,
        caller,
        "job.update",
        slug,
        "ok",
        job=job_id,
        **{k: str(v)[:200] for k, v in applied.items() if k != "source"},
    )
    db.commit()
    return job


def delete_job(db: Session, caller: Caller, slug: str, job_id: int, delete_files: Callable[[int], None]) -> None:
    """Delete a job with its ended runs and their files (``delete_files(run_id)``); refused while a run is not
    finished."""
    job = _owned_job(db, caller, slug, job_id, "job.delete")
    runs = list(db.scalars(select(JobRun).where(JobRun.job_id == job.id)))
    if any(RunState(r.state) not in ENDED for r in runs):
        raise Refused(409, f"Job {job_id} has runs that are not finished; cancel them first.")
    for run in runs:
        delete_files(run.id)  # first: a failure leaves the rows, and the job can be deleted again
    db.delete(job)
    audit(db, caller, "job.delete", slug, "ok", job=job_id, runs=len(runs))
    db.commit()


def run_now(db: Session, caller: Caller, slug: str, job_id: int, parameters: dict | None = None) -> JobRun:
    job = _owned_job(db, caller, slug, job_id, "job.run")
    ws = job.workspace
    if not can_write(ws, caller):
        audit(db, caller, "job.run", slug, "denied", job=job_id)
        db.commit()
        raise Refused(403, f"Only owners and editors of {slug!r} run jobs in it.")
    run = _new_run(db, job, "manual", {**job.parameters, **(parameters or {})})
    audit(db, caller, "job.run", slug, "ok", job=job_id, run=run.id)
    db.commit()
    return run


def _active() -> list[str]:
    return [RunState.queued.value, RunState.running.value]


def list_runs(
    db: Session,
    caller: Caller,
    slug: str,
    job_id: int | None = None,
    state: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[JobRun]:
    ws = _workspace(db, caller, slug)
    query = select(JobRun).where(JobRun.workspace_id == ws.id)
    if job_id is not None:
        query = query.where(JobRun.job_id == job_id)
    if state:
        query = query.where(JobRun.state == state)
    query = query.order_by(JobRun.id.desc()).offset(max(0, offset)).limit(max(1, min(limit, 500)))
    return list(db.scalars(query))


def get_run(db: Session, caller: Caller, slug: str, run_id: int) -> JobRun:
    return _of_workspace(db, caller, slug, JobRun, run_id, "run")


def cancel(db: Session, caller: Caller, slug: str, run_id: int) -> JobRun:
    run = get_run(db, caller, slug, run_id)
    if run.owner != caller.name and not can_manage(run.workspace, caller):
        audit(db, caller, "run.cancel", slug, "denied", run=run_id)
        db.commit()
        raise Refused(403, f"Run {run_id} is {run.owner}'s; its owner and the owners of {slug!r} cancel it.")
    if RunState(run.state) in ENDED:
        return run
    run.cancel_requested = True
    if RunState(run.state) == RunState.queued:
        run.state, run.ended_at, run.reason = RunState.cancelled, datetime.now(UTC), f"Cancelled by {caller.name}."
    audit(db, caller, "run.cancel", slug, "ok", run=run_id)
    db.commit()
    return run


def runner_run(db: Session, caller: Caller, slug: str, run_id: int) -> JobRun:
    """The run as its runner asks for it: by the run's owner, while it runs."""
    run = get_run(db, caller, slug, run_id)
    if run.owner != caller.name or RunState(run.state) != RunState.running:
        raise Refused(409, f"Run {run_id} is not running as {caller.name}.")
    return run


def running_count(db: Session, workspace_id: int) -> int:
    return (
        db.scalar(
            select(func.count())
            .select_from(JobRun)
            .where(JobRun.workspace_id == workspace_id, JobRun.state == RunState.running)
        )
        or 0
    )
