"""Request and response bodies of the workspace API (they make its OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agp.core.models import AuditEvent, Workspace
from agp.core.permissions import Caller, effective_role


class Quotas(BaseModel):
    cpu_limit: float | None = Field(None, gt=0, le=256, description="CPU cores per server")
    memory_limit_gb: float | None = Field(None, gt=0, le=2048, description="memory per server, GiB")
    storage_limit_gb: int | None = Field(None, gt=0, le=1_000_000, description="bucket size, GiB")
    max_servers: int | None = Field(None, ge=0, le=10_000, description="servers running at once")
    max_concurrent_runs: int | None = Field(
        None, ge=0, le=1000, description="job runs at once; more wait in the queue (0 holds every run queued)"
    )


class WorkspaceCreate(Quotas):
    model_config = ConfigDict(extra="forbid")

    slug: str = Field(max_length=10_000, description="the workspace name; see the naming rule in the 422 answer")
    display_name: str | None = Field(None, max_length=200)
    description: str = Field("", max_length=4000)
    keycloak_group: str | None = Field(None, max_length=255, description="members of this Keycloak group are members")
    group_role: str = Field("editor", pattern="^(owner|editor|viewer)$")


class WorkspaceUpdate(Quotas):
    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=4000)
    keycloak_group: str | None = Field(None, max_length=255)
    group_role: str | None = Field(None, pattern="^(owner|editor|viewer)$")


class MemberSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: str = Field(pattern="^(owner|editor|viewer)$")


class CredentialRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kinds: list[Literal["trino", "s3", "catalog"]] = Field(["trino", "s3", "catalog"], min_length=1, max_length=3)


class MemberOut(BaseModel):
    username: str
    role: str
    added_by: str
    added_at: datetime | None


class WorkspaceOut(BaseModel):
    slug: str
    display_name: str
    description: str
    state: str
    failure_reason: str | None
    created_by: str
    created_at: datetime | None
    keycloak_group: str | None
    group_role: str
    bucket: str | None
    namespace: str | None
    trino_schema: str | None
    cpu_limit: float
    memory_limit_gb: float
    storage_limit_gb: int
    max_servers: int
    max_concurrent_runs: int
    your_role: str | None
    members: list[MemberOut]

    @classmethod
    def of(cls, ws: Workspace, caller: Caller) -> WorkspaceOut:
        role = effective_role(ws, caller)
        return cls(
            **{k: getattr(ws, k) for k in cls.model_fields if k not in {"members", "your_role", "state", "group_role"}},
            state=str(getattr(ws.state, "value", ws.state)),
            group_role=str(getattr(ws.group_role, "value", ws.group_role)),
            your_role=role.value if role else None,
            members=[
                MemberOut(
                    username=m.username,
                    role=str(getattr(m.role, "value", m.role)),
                    added_by=m.added_by,
                    added_at=m.added_at,
                )
                for m in ws.members
            ],
        )


class AuditFilter(BaseModel):
    """Query parameters of an audit log's page."""

    limit: int = Field(100, ge=1, le=1000, description="events per page")
    offset: int = Field(0, ge=0, description="events to skip, newest first")
    action: str | None = Field(None, max_length=64, description="actions that start with this (member. finds all)")
    actor: str | None = Field(None, max_length=255, description="who acted, exactly")
    outcome: str | None = Field(None, max_length=32, description="ok, denied, refused, error ... exactly")


class AuditOut(BaseModel):
    at: datetime | None
    actor: str
    action: str
    target: str
    outcome: str
    detail: dict

    @classmethod
    def of(cls, ev: AuditEvent) -> AuditOut:
        return cls(at=ev.at, actor=ev.actor, action=ev.action, target=ev.target, outcome=ev.outcome, detail=ev.detail)
