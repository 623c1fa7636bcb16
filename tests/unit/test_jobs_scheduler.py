"""The scheduler's start of a run against a database it can run here (SQLite) and stand-ins for the hub and the
executor (the lab's tier runs it against the real ones)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
from sqlalchemy import ARRAY, create_engine
from sqlalchemy.orm import sessionmaker

from agp.core.models import Base, Job, JobRun, Membership, Role, RunState, State, Workspace
from agp.core.permissions import Caller
from agp.core.settings import Settings
from agp.hub.jobs.scheduler import Scheduler


class Hub:
    """The hub's users API: silent (as while it starts, before its API listens), or answering."""

    def __init__(self, silent: bool):
        self.silent = silent

    async def caller(self, name: str) -> Caller:
        if self.silent:
            raise httpx.ConnectError("All connection attempts failed")
        return Caller(name)

    async def new_token(self, name: str, seconds: int, note: str) -> tuple[str, str]:
        return "a-token", "token-id"


class Executor:
    name = "stand-in"

    def __init__(self):
        self.started: list = []

    async def start(self, spec) -> str:
        self.started.append(spec)
        return '{"ref": 1}'


def a_claimed_run(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    # Only the tables this needs: whichever other models a run has imported by now (query_history's PostgreSQL
    # arrays) do not exist in SQLite.
    tables = [t for t in Base.metadata.sorted_tables if not any(isinstance(c.type, ARRAY) for c in t.columns)]
    Base.metadata.create_all(engine, tables=tables)
    make = sessionmaker(engine, expire_on_commit=False)
    now = datetime.now(UTC)
    with make() as db:
        ws = Workspace(slug="nightly", display_name="Nightly", created_by="admin", state=State.ready)
        db.add(ws)
        db.flush()
        db.add(Membership(workspace_id=ws.id, username="alice", role=Role.editor, added_by="admin"))
        job = Job(workspace_id=ws.id, name="j", owner="alice", kind="notebook", filename="j.ipynb", source="{}")
        db.add(job)
        db.flush()
        # As claim_queued leaves it: running, its first attempt counted, no runner yet.
        run = JobRun(
            job_id=job.id,
            workspace_id=ws.id,
            owner="alice",
            trigger="manual",
            state=RunState.running,
            attempt=1,
            started_at=now,
            attempt_started_at=now,
        )
        db.add(run)
        db.commit()
        return make, run.id


def test_a_run_waits_in_the_queue_while_the_hub_does_not_answer(tmp_path):
    """The hub starts its managed services before its API listens, and restarts on a chart upgrade: a run claimed
    then is not the hub's to fail (it was, on the test cluster: 'The hub did not answer who the job's owner is')."""
    make, run_id = a_claimed_run(tmp_path)
    executor = Executor()
    scheduler = Scheduler(Settings(), make, executor, Hub(silent=True), storage=None)
    asyncio.run(scheduler._start(run_id))
    with make() as db:
        run = db.get(JobRun, run_id)
        assert (run.state, run.attempt, run.started_at, run.reason) == (RunState.queued, 0, None, None)
    assert executor.started == []


def test_a_run_starts_once_the_hub_answers(tmp_path):
    make, run_id = a_claimed_run(tmp_path)
    executor = Executor()
    scheduler = Scheduler(Settings(), make, executor, Hub(silent=False), storage=None)
    asyncio.run(scheduler._start(run_id))
    with make() as db:
        run = db.get(JobRun, run_id)
        assert (run.state, run.attempt, run.runner_ref) == (RunState.running, 1, '{"ref": 1}')
    (spec,) = executor.started
    assert spec.owner == "alice" and spec.workspace == "nightly" and spec.tag == f"agp-run-{run_id}-1"
