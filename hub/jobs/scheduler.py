"""The scheduler: the workspace service's loop that fires schedules, starts runs, notices their end.

Exactly once: a due schedule is claimed row by row (``SELECT … FOR UPDATE SKIP LOCKED``), its run inserted with its
fire time, unique per job, and its next fire time advanced in the same transaction. A service that stops between
two rounds loses nothing (the job is still due when it is back, and fires once, for the first period it missed)
and doubles nothing (a second scheduler skips locked rows, and the unique fire time refuses a second run).
Queued runs are claimed the same way, under a lock of their workspace's row, so that no more than the workspace's
``max_concurrent_runs`` run at once. A runner records nothing itself: the executor reports how it ended.

We write the loop rather than use APScheduler: its job stores keep *its* jobs' next times but no run history,
and several processes firing from one store is what its documentation says it does not support (3.x); the state
that matters here (runs, attempts, quotas) is ours, in our tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, selectinload

from agp.core.models import Job, JobRun, RunState, State, Workspace
from agp.core.names import WorkspaceNames
from agp.core.permissions import Caller, effective_role
from agp.core.settings import Settings
from agp.spawner.workspace import data_plane_env, labels, workspace_env

from ..store import audit
from . import cron
from .executor import Executor, ExecutorError, Outcome, RunSpec
from .storage import RunStorage

log = logging.getLogger(__name__)
SYSTEM = Caller("scheduler")
TOKEN_SCOPES = ("access:services!service=workspaces",)


@dataclass
class HubUsersAPI:
    """The hub's REST API as the workspace service: who a user is now, and the runs' own tokens."""

    api_url: str
    token: str

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    async def caller(self, name: str) -> Caller | None:
        """The user as the hub knows them now (admin, groups), or ``None`` if the hub has no such user."""
        async with httpx.AsyncClient(timeout=20) as client:
            r = await client.get(f"{self.api_url}/users/{quote(name, safe='')}", headers=self._headers())
        if r.status_code == 404:
            return None
        r.raise_for_status()
        model = r.json()
        return Caller(name, bool(model.get("admin")), frozenset(model.get("groups") or []))

    async def new_token(self, name: str, seconds: int, note: str) -> tuple[str, str]:
        """A hub API token of user ``name`` that reaches the workspace service only and expires; ``(token, id)``."""
        body = {"expires_in": int(seconds), "scopes": list(TOKEN_SCOPES), "note": note}
        async with httpx.AsyncClient(timeout=20) as client:
            r = await client.post(
                f"{self.api_url}/users/{quote(name, safe='')}/tokens", json=body, headers=self._headers()
            )
        if r.status_code != 201:
            raise ExecutorError(
                "The hub did not issue the run's credentials.",
                f"POST tokens for {name}: HTTP {r.status_code} {r.text[:300]}",
            )
        model = r.json()
        return model["token"], model["id"]

    async def revoke(self, name: str, token_id: str) -> None:
        async with httpx.AsyncClient(timeout=20) as client:
            r = await client.delete(
                f"{self.api_url}/users/{quote(name, safe='')}/tokens/{quote(token_id, safe='')}",
                headers=self._headers(),
            )
        if r.status_code not in (204, 404):
            log.warning("could not revoke token %s of %s: HTTP %s", token_id, name, r.status_code)


def utcnow() -> datetime:
    return datetime.now(UTC)


def fire_due(db: Session, now: datetime) -> list[int]:
    """Make the run of every due schedule (one per job, for the first period due) and advance the schedules."""
    due = db.scalars(
        select(Job)
        .join(Workspace, Workspace.id == Job.workspace_id)
        .where(Job.schedule.is_not(None), Job.paused.is_(False), Job.next_fire_at <= now, Workspace.state == "ready")
        .order_by(Job.next_fire_at)
        .limit(100)
        .with_for_update(of=Job, skip_locked=True)
    ).all()
    made = []
    for job in due:
        fire_at = job.next_fire_at
        row = (
            insert(JobRun)
            .values(
                job_id=job.id,
                workspace_id=job.workspace_id,
                owner=job.owner,
                trigger="schedule",
                scheduled_for=fire_at,
                parameters=job.parameters,
                state=RunState.queued.value,
                attempt=0,
                max_attempts=job.max_retries + 1,
                cancel_requested=False,
            )
            .on_conflict_do_nothing(constraint="uq_job_runs_period")
            .returning(JobRun.id)
        )
        run_id = db.scalar(row)
        job.next_fire_at = cron.next_fire(job.schedule, job.timezone, max(now, fire_at))
        if run_id is not None:
            made.append(run_id)
            missed = _missed(job, fire_at, now)
            log.info(
                "job %s fired for %s as run %s%s",
                job.id,
                fire_at.isoformat(),
                run_id,
                f" ({missed} later period(s) missed while the service was down: one run for them)" if missed else "",
            )
    db.commit()
    return made


def _missed(job: Job, fire_at: datetime, now: datetime, cap: int = 1000) -> int:
    n, t = 0, fire_at
    while n < cap:
        t = cron.next_fire(job.schedule, job.timezone, t)
        if t > now:
            return n
        n += 1
    return n


def claim_queued(db: Session, now: datetime) -> list[int]:
    """Mark queued runs running, oldest first, within each workspace's quota; returns their ids."""
    workspaces = db.scalars(
        select(JobRun.workspace_id)
        .where(JobRun.state == RunState.queued, JobRun.cancel_requested.is_(False))
        .distinct()
    ).all()
    claimed: list[int] = []
    for ws_id in workspaces:
        ws = db.scalars(select(Workspace).where(Workspace.id == ws_id).with_for_update(skip_locked=True)).first()
        if ws is None:
            continue  # another scheduler holds it this round
        running = len(
            db.scalars(select(JobRun.id).where(JobRun.workspace_id == ws_id, JobRun.state == RunState.running)).all()
        )
        room = max(0, ws.max_concurrent_runs - running)
        if room == 0:
            continue
        queued = db.scalars(
            select(JobRun)
            .where(JobRun.workspace_id == ws_id, JobRun.state == RunState.queued, JobRun.cancel_requested.is_(False))
            .order_by(JobRun.id)
            .limit(room)
            .with_for_update(skip_locked=True)
        ).all()
        for run in queued:
            run.state = RunState.running
            run.attempt += 1
            run.attempt_started_at = now
            run.started_at = run.started_at or now
            run.runner_ref = None
            claimed.append(run.id)
    db.commit()
    return claimed


class Scheduler:
    def __init__(
        self,
        settings: Settings,
        make_session: Callable[[], Session],
        executor: Executor,
        hub: HubUsersAPI,
        storage: RunStorage,
    ):
        self.settings = settings
        self.make_session = make_session
        self.executor = executor
        self.hub = hub
        self.storage = storage
        self._stopping: dict[int, asyncio.Task] = {}
        self._pruned_at = 0.0
        self.wake = asyncio.Event()

    # -- the loop
    async def run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        if hasattr(self.executor, "notify"):
            self.executor.notify = lambda: loop.call_soon_threadsafe(self.wake.set)
        await asyncio.to_thread(self.recover)
        while True:
            try:
                await self.round()
            except Exception:
                log.exception("jobs: a scheduler round failed; the next one retries")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.settings.jobs.poll_interval)
            self.wake.clear()

    def recover(self) -> None:
        """At start: runs marked running that never got a runner (the service stopped in between) queue again."""
        with self.make_session() as db:
            lost = db.scalars(
                select(JobRun).where(JobRun.state == RunState.running, JobRun.runner_ref.is_(None)).with_for_update()
            ).all()
            for run in lost:
                run.state, run.attempt = RunState.queued, max(0, run.attempt - 1)
                log.info("jobs: run %s had not started when the service stopped; queued again", run.id)
            db.commit()

    async def round(self) -> None:
        now = utcnow()
        await asyncio.to_thread(self._in_session, fire_due, now)
        for run_id in await asyncio.to_thread(self._in_session, claim_queued, now):
            await self._start(run_id)
        for run in await asyncio.to_thread(self._running):
            await self._watch(run)
        if time.monotonic() - self._pruned_at > 3600:
            self._pruned_at = time.monotonic()
            await asyncio.to_thread(self.prune)

    def _in_session(self, fn: Callable[..., Any], *args: Any) -> Any:
        with self.make_session() as db:
            return fn(db, *args)

    def _running(self) -> list[JobRun]:
        with self.make_session() as db:
            return list(
                db.scalars(
                    select(JobRun)
                    .where(
                        JobRun.state == RunState.running,
                        JobRun.runner_ref.is_not(None),
                        JobRun.executor == self.executor.name,
                    )
                    .options(selectinload(JobRun.job))
                )
            )

    # -- start
    async def _start(self, run_id: int) -> None:
        with self.make_session() as db:
            run = db.get(JobRun, run_id)
            job, ws = run.job, run.workspace
            slug, owner = ws.slug, run.owner
            spec_args = dict(
                run_id=run.id,
                attempt=run.attempt,
                workspace=slug,
                owner=owner,
                kind=job.kind,
                filename=job.filename,
                timeout_seconds=job.timeout_seconds,
                cpu_limit=float(ws.cpu_limit),
                memory_limit_gb=float(ws.memory_limit_gb),
            )
            names = WorkspaceNames(slug)
            environment = workspace_env(data_plane_env(self.settings), names, ws)
            run_labels = {**labels(owner, names), "app.kubernetes.io/component": "job-run"}
        try:
            refusal = await self._refusal(owner, slug)
        except httpx.HTTPError:
            # The hub is not answering (it starts its managed services before its API listens, and restarts on a
            # chart upgrade): not the run's fault, so it waits in the queue for a later round.
            log.warning("jobs: the hub did not say who %s is; run %s stays queued", owner, run_id, exc_info=True)
            await asyncio.to_thread(self._requeue, run_id)
            return
        if refusal:
            await asyncio.to_thread(self._end, run_id, RunState.failed, refusal, audit_outcome="refused")
            return
        token_id = None
        try:
            seconds = spec_args["timeout_seconds"] + int(self.settings.jobs.cancel_grace) + 600
            token, token_id = await self.hub.new_token(
                owner, seconds, f"job run {run_id} attempt {spec_args['attempt']}"
            )
            spec = RunSpec(**spec_args, token=SecretStr(token), environment=environment, labels=run_labels)
            ref = await self.executor.start(spec)
        except (ExecutorError, httpx.HTTPError) as e:
            detail = getattr(e, "log_message", repr(e))
            log.error("jobs: run %s attempt %s did not start: %s", run_id, spec_args["attempt"], detail)
            if token_id:
                await self.hub.revoke(owner, token_id)
            sentence = str(e) if isinstance(e, ExecutorError) else "The run could not be started; try again later."
            await asyncio.to_thread(self._attempt_ended, run_id, Outcome(False, sentence), b"")
            return
        with self.make_session() as db:
            run = db.get(JobRun, run_id)
            run.runner_ref, run.token_id, run.executor = ref, token_id, self.executor.name
            audit(
                db,
                Caller(owner),
                "run.start",
                slug,
                "ok",
                run=run_id,
                attempt=spec_args["attempt"],
                trigger=run.trigger,
            )
            db.commit()
        log.info(
            "jobs: run %s attempt %s of job %s started as %s in %s", run_id, spec_args["attempt"], job.id, owner, slug
        )

    def _requeue(self, run_id: int) -> None:
        """A claimed run that did not start, back in the queue as it was (this attempt does not count)."""
        with self.make_session() as db:
            run = db.get(JobRun, run_id)
            if run.state == RunState.running and run.runner_ref is None:
                run.state, run.attempt = RunState.queued, max(0, run.attempt - 1)
                if run.attempt == 0:
                    run.started_at = None
                db.commit()

    async def _refusal(self, owner: str, slug: str) -> str | None:
        """Why ``owner`` may not run a job in ``slug`` now, or ``None``: checked at every attempt's start. Raises
        ``httpx.HTTPError`` when the hub does not answer."""
        who = await self.hub.caller(owner)
        with self.make_session() as db:
            ws = db.scalars(select(Workspace).where(Workspace.slug == slug)).first()
            role = effective_role(ws, who) if (ws and who) else None
            state = State(ws.state) if ws else None
        if state != State.ready:
            return f"Refused: workspace {slug!r} is {state.value if state else 'gone'}; it runs no jobs."
        if role is None or role.value not in ("owner", "editor"):
            return f"Refused: {owner} may no longer write in workspace {slug!r}, so their job does not run."
        return None

    # -- watch
    async def _watch(self, run: JobRun) -> None:
        timeout = run.job.timeout_seconds if run.job else None
        elapsed = (utcnow() - run.attempt_started_at).total_seconds() if run.attempt_started_at else 0
        if run.id not in self._stopping and (run.cancel_requested or (timeout and elapsed > timeout)):
            why = "cancelled" if run.cancel_requested else f"timed out after {timeout} s"
            log.info("jobs: run %s %s; stopping it", run.id, why)
            self._stopping[run.id] = asyncio.create_task(
                self.executor.cancel(run.runner_ref, self.settings.jobs.cancel_grace)
            )
        outcome = await self.executor.poll(run.runner_ref)
        if outcome is None:
            return
        task = self._stopping.pop(run.id, None)
        if task is not None and not task.done():
            with contextlib.suppress(Exception):
                await task
        text = await self.executor.log(run.runner_ref, 0, 64 << 20)
        await asyncio.to_thread(self._attempt_ended, run.id, outcome, text)
        if run.token_id:
            await self.hub.revoke(run.owner, run.token_id)
        await self.executor.cleanup(run.runner_ref)

    def _attempt_ended(self, run_id: int, outcome: Outcome, log_text: bytes) -> None:
        with self.make_session() as db:
            run = db.get(JobRun, run_id)
            if run.state != RunState.running:
                return
            slug = run.workspace.slug
            if log_text:
                try:
                    run.log_key = self.storage.put_log(slug, run.id, run.attempt, log_text)
                except Exception:  # the run's end is recorded all the same; its log of this attempt is lost
                    log.exception("jobs: could not keep the log of run %s attempt %s", run.id, run.attempt)
            elapsed = (utcnow() - run.attempt_started_at).total_seconds() if run.attempt_started_at else 0
            timeout = run.job.timeout_seconds
            if run.cancel_requested:
                state, reason = RunState.cancelled, run.reason or "Cancelled."
            elif not outcome.succeeded and elapsed >= timeout:
                state, reason = RunState.timed_out, f"Timed out after {timeout} s."
            elif outcome.succeeded:
                state, reason = RunState.succeeded, None
            else:
                state, reason = RunState.failed, outcome.reason or "The run failed."
            if state in (RunState.failed, RunState.timed_out) and run.attempt < run.max_attempts:
                run.state, run.runner_ref, run.token_id = RunState.queued, None, None
                run.reason = f"Attempt {run.attempt} of {run.max_attempts} {state.value.replace('_', ' ')}: {reason}"
                audit(db, SYSTEM, "run.retry", slug, "ok", run=run.id, attempt=run.attempt, reason=reason)
                log.info("jobs: run %s attempt %s %s (%s); retrying", run.id, run.attempt, state.value, reason)
                db.commit()
                self.wake.set()
                return
            run.state, run.reason, run.ended_at = state, reason, utcnow()
            run.runner_ref = None
            audit(
                db,
                SYSTEM,
                "run.end",
                slug,
                state.value if state != RunState.succeeded else "ok",
                run=run.id,
                attempt=run.attempt,
                reason=reason,
            )
            db.commit()
            log.info(
                "jobs: run %s %s after %s attempt(s)%s",
                run.id,
                state.value,
                run.attempt,
                f": {reason}" if reason else "",
            )
        self.wake.set()

    def _end(self, run_id: int, state: RunState, reason: str, audit_outcome: str = "ok") -> None:
        with self.make_session() as db:
            run = db.get(JobRun, run_id)
            run.state, run.reason, run.ended_at, run.runner_ref = state, reason, utcnow(), None
            audit(db, Caller(run.owner), "run.start", run.workspace.slug, audit_outcome, run=run_id, reason=reason)
            db.commit()
        log.warning("jobs: run %s %s: %s", run_id, state.value, reason)

    # -- live log and retention
    async def live_log(self, run: JobRun, offset: int) -> bytes | None:
        """The current attempt's log while it runs here, else ``None``."""
        if run.state != RunState.running or not run.runner_ref or run.executor != self.executor.name:
            return None
        return await self.executor.log(run.runner_ref, offset)

    def prune(self) -> int:
        cutoff = utcnow() - timedelta(days=self.settings.jobs.retention_days)
        with self.make_session() as db:
            old = db.scalars(select(JobRun).where(JobRun.ended_at < cutoff).limit(1000)).all()
            for run in old:
                try:
                    self.storage.delete_run(run.workspace.slug, run.id)
                except Exception:
                    log.exception("jobs: could not delete the files of run %s; kept its row", run.id)
                    continue
                db.delete(run)
            db.commit()
        if old:
            log.info("jobs: pruned %d run(s) that ended before %s", len(old), cutoff.isoformat())
        return len(old)


def executor_for(settings: Settings) -> Executor:
    """The executor ``settings.jobs_executor`` names (imported here: the Kubernetes one needs the cluster client)."""
    if settings.jobs_executor == "kubernetes":
        from .kube import KubeExecutor

        return KubeExecutor(settings)
    from .local import LocalExecutor

    return LocalExecutor(settings)
