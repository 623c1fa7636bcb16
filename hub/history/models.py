"""The ``query_history`` table: one row per Trino query, made by its created event and completed by its completed
event (migration 0003)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, DateTime, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from agp.core.models import Base


class QueryEntry(Base):
    __tablename__ = "query_history"

    query_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    user: Mapped[str] = mapped_column(String(255), index=True)
    # The workspace the entry is shown under, and every workspace whose members see it (agp.hub.history.events).
    workspace: Mapped[str | None] = mapped_column(String(64), index=True)
    workspaces: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list)
    query: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), index=True)
    error_code: Mapped[int | None] = mapped_column(Integer)
    error_name: Mapped[str | None] = mapped_column(String(255))
    error_type: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    error_line: Mapped[int | None] = mapped_column(Integer)
    error_column: Mapped[int | None] = mapped_column(Integer)
    created: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    started: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    elapsed_ms: Mapped[int | None] = mapped_column(BigInteger)
    queued_ms: Mapped[int | None] = mapped_column(BigInteger)
    cpu_ms: Mapped[int | None] = mapped_column(BigInteger)
    rows: Mapped[int | None] = mapped_column(BigInteger)  # rows of the result (or written, for a write)
    bytes: Mapped[int | None] = mapped_column(BigInteger)  # bytes of the result
    read_rows: Mapped[int | None] = mapped_column(BigInteger)
    read_bytes: Mapped[int | None] = mapped_column(BigInteger)
    tables_read: Mapped[list[str]] = mapped_column(JSON, default=list)  # catalog.schema.table
    tables_written: Mapped[list[str]] = mapped_column(JSON, default=list)
    source: Mapped[str | None] = mapped_column(String(255))
    client_tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    session_catalog: Mapped[str | None] = mapped_column(String(255))
    session_schema: Mapped[str | None] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
