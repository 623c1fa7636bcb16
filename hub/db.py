"""The workspace database: engine, sessions, and migrations run at start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str) -> Engine:
    # pool_pre_ping: a PostgreSQL restart costs one failed ping, not a failed request.
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, future=True)


_shared: dict[str, Engine] = {}


def shared_engine(url: str) -> Engine:
    """One engine per URL for the hub process (its template callables and spawners), made on first use."""
    if url not in _shared:
        _shared[url] = make_engine(url)
    return _shared[url]


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration; safe to run at every start (and from several processes)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        # One migrator at a time across processes (the hub and the service start together).
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(424242)")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
