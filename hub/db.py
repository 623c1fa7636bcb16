"""The workspace database's migrations, run at start; its engines and sessions are the runtime core's."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

from agp.core.db import make_engine, sessions, shared_engine

__all__ = ["make_engine", "sessions", "shared_engine", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration; safe to run at every start (and from several processes)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        # One migrator at a time across processes (the hub and the service start together).
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(424242)")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
