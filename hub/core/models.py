"""The workspace service's tables: workspaces with their resources and quotas, memberships, and the audit log."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class State(str, enum.Enum):
    provisioning = "provisioning"
    ready = "ready"
    failed = "failed"
    archived = "archived"


class Role(str, enum.Enum):
    owner = "owner"
    editor = "editor"
    viewer = "viewer"


ROLE_RANK = {Role.viewer: 1, Role.editor: 2, Role.owner: 3}


class Workspace(Base):
    __tablename__ = "workspaces"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    display_name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[State] = mapped_column(String(20), default=State.provisioning)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    # A Keycloak group (full path, e.g. "/finance") whose members are members with group_role.
    keycloak_group: Mapped[str | None] = mapped_column(String(255))
    group_role: Mapped[Role] = mapped_column(String(20), default=Role.editor)
    # Resources, recorded as provisioning creates them.
    bucket: Mapped[str | None] = mapped_column(String(63))
    namespace: Mapped[str | None] = mapped_column(String(64))
    trino_schema: Mapped[str | None] = mapped_column(String(64))
    # Quotas.
    cpu_limit: Mapped[float] = mapped_column(Float, default=2.0)
    memory_limit_gb: Mapped[float] = mapped_column(Float, default=4.0)
    storage_limit_gb: Mapped[int] = mapped_column(Integer, default=50)
    max_servers: Mapped[int] = mapped_column(Integer, default=10)
    max_concurrent_runs: Mapped[int] = mapped_column(Integer, default=4)

    members: Mapped[list[Membership]] = relationship(
        back_populates="workspace", cascade="all, delete-orphan", order_by="Membership.username"
    )

    __table_args__ = (
        CheckConstraint("cpu_limit > 0 AND memory_limit_gb > 0 AND storage_limit_gb > 0 AND max_servers >= 0"),
        CheckConstraint("max_concurrent_runs >= 0", name="ck_workspaces_max_concurrent_runs"),
    )


class Membership(Base):
    __tablename__ = "memberships"

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    username: Mapped[str] = mapped_column(String(255), index=True)
    role: Mapped[Role] = mapped_column(String(20))
    added_by: Mapped[str] = mapped_column(String(255))
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    workspace: Mapped[Workspace] = relationship(back_populates="members")

    __table_args__ = (UniqueConstraint("workspace_id", "username"),)


class AuditEvent(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), index=True)
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(255), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[dict] = mapped_column(JSON, default=dict)


class RunState(str, enum.Enum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    timed_out = "timed_out"


ENDED = (RunState.succeeded, RunState.failed, RunState.cancelled, RunState.timed_out)


class Job(Base):
    """A notebook or script of a workspace, run on demand or on a schedule as its owner."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(255), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # notebook | script
    filename: Mapped[str] = mapped_column(String(255))
    # The notebook (JSON) or script as submitted: a run executes this snapshot, not the file as it is later.
    source: Mapped[str] = mapped_column(Text)
    parameters: Mapped[dict] = mapped_column(JSON, default=dict)
    timeout_seconds: Mapped[int] = mapped_column(Integer, default=3600)
    max_retries: Mapped[int] = mapped_column(Integer, default=0)
    schedule: Mapped[str | None] = mapped_column(String(120))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    paused: Mapped[bool] = mapped_column(default=False)
    # The next time the schedule is due (UTC); the scheduler claims due jobs row by row.
    next_fire_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    workspace: Mapped[Workspace] = relationship()

    __table_args__ = (
        CheckConstraint("kind IN ('notebook', 'script')", name="ck_jobs_kind"),
        CheckConstraint("timeout_seconds > 0 AND max_retries >= 0", name="ck_jobs_limits"),
    )


class JobRun(Base):
    """One run of a job: queued, then attempts until it succeeds, fails for good, is cancelled or times out."""

    __tablename__ = "job_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    owner: Mapped[str] = mapped_column(String(255))
    trigger: Mapped[str] = mapped_column(String(16))  # manual | schedule
    # For a scheduled run, the fire time it was made for: unique per job, so no period fires twice.
    scheduled_for: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    parameters: Mapped[dict] = mapped_column(JSON, default=dict)
    state: Mapped[RunState] = mapped_column(String(16), default=RunState.queued, index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=1)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempt_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    # Where the current attempt runs, as its executor recorded it (a process, a Kubernetes Job): JSON.
    executor: Mapped[str | None] = mapped_column(String(32))
    runner_ref: Mapped[str | None] = mapped_column(Text)
    # The hub token made for this attempt (its id, to revoke it when the attempt ends).
    token_id: Mapped[str | None] = mapped_column(String(64))
    output_key: Mapped[str | None] = mapped_column(String(512))  # the executed notebook in the workspace's bucket
    log_key: Mapped[str | None] = mapped_column(String(512))  # the whole log there, once the run ended

    job: Mapped[Job] = relationship()
    workspace: Mapped[Workspace] = relationship()

    __table_args__ = (UniqueConstraint("job_id", "scheduled_for", name="uq_job_runs_period"),)
