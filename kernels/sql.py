"""``%sql`` on Trino: jupysql with a connection to the workspace's schema as the logged-in user.

The connection is made lazily (nothing is contacted until the first query) and authenticates with JWTs from the
credential broker, renewed as they near expiry; no password is typed into a notebook.
"""

from __future__ import annotations

from typing import Any

from .credentials import BrokerClient, trino_connect

ALIAS = "trino"


def engine(broker: BrokerClient | None = None) -> Any:
    """A SQLAlchemy engine on Trino whose DBAPI connections come from :func:`agp.kernels.credentials.trino_connect`."""
    from sqlalchemy import create_engine

    broker = broker or BrokerClient.from_environment()
    # The URL only names the dialect; every connection is made by the creator, with the broker's credentials.
    return create_engine("trino://", creator=lambda: trino_connect(broker), pool_pre_ping=False)


def configure(ip: Any, broker: BrokerClient | None = None) -> None:
    """Load jupysql into ``ip`` and make the workspace's Trino schema the current connection."""
    from sql.connection import ConnectionManager

    ip.extension_manager.load_extension("sql")
    for line in ("SqlMagic.autopandas = True", "SqlMagic.displaycon = False", "SqlMagic.feedback = 0"):
        ip.run_line_magic("config", line)
    ConnectionManager.set(engine(broker), displaycon=False, alias=ALIAS)
