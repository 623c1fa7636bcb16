"""The workspace database: engines and sessions (the hub, the workspace service and the spawners read it). Its
schema's migrations are the workspace service's (``agp.hub.db.upgrade``)."""

from __future__ import annotations

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str) -> Engine:
    # pool_pre_ping: a PostgreSQL restart costs one failed ping, not a failed request.
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, future=True)


_shared: dict[str, Engine] = {}


def shared_engine(url: str) -> Engine:
    """One engine per URL for the hub process (its template callables and spawners), made on first use."""
    if url not in _shared:
        _shared[url] = make_engine(url)
    return _shared[url]


def sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
