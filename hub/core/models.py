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

    members: Mapped[list[Membership]] = relationship(
        back_populates="workspace", cascade="all, delete-orphan", order_by="Membership.username"
    )

    __table_args__ = (
        CheckConstraint("cpu_limit > 0 AND memory_limit_gb > 0 AND storage_limit_gb > 0 AND max_servers >= 0"),
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
