"""``%sql`` on Trino: jupysql with a connection to the workspace's schema as the logged-in user.

The connection is made lazily (nothing is contacted until the first query) and authenticates with JWTs from the
credential broker, renewed as they near expiry; no password is typed into a notebook.

jupysql's ``%sql`` stays what it is (``%%sql``, ``<<``, ``--save``, row limits); the kernel wraps it so that:

- a Trino error is one or a few lines that name it (jupysql's own messages add hints for other databases);
- a long query shows Trino's progress, and interrupting the kernel cancels it in Trino (:mod:`.query`);
- after a statement that changes the catalog, the server's catalog cache is told to forget what it holds.
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
from typing import Any

from .credentials import BrokerClient, BrokerError, trino_connect
from .query import TRACKER, describe_error

log = logging.getLogger(__name__)

ALIAS = "trino"

# Statements after which the catalog (tables, schemas, snapshots) may have changed.
_WRITES = re.compile(
    r"^\s*(create|drop|alter|insert|delete|update|merge|truncate|comment|refresh|execute|call)\b", re.I | re.M
)


def engine(broker: BrokerClient | None = None, tracker: Any = TRACKER) -> Any:
    """A SQLAlchemy engine on Trino whose DBAPI connections come from :func:`agp.kernels.credentials.trino_connect`."""
    from sqlalchemy import create_engine

    broker = broker or BrokerClient.from_environment()
    # The URL only names the dialect; every connection is made by the creator, with the broker's credentials.
    return create_engine("trino://", creator=lambda: trino_connect(broker, tracker=tracker), pool_pre_ping=False)


LAZY_MAGICS = ("sql", "sqlcmd", "sqlplot")
DEFAULTS = {"autopandas": True, "displaycon": False, "feedback": 0}


def install_lazy(ip: Any) -> None:
    """Register stand-ins for jupysql's magics; the first use of any loads and configures jupysql, then runs."""

    def make(name: str):
        def stand_in(line: str = "", cell: str | None = None, local_ns: dict | None = None) -> Any:
            if getattr(ip.magics_manager.magics["line"].get(name), "agp_stand_in", False):
                try:
                    configure(ip)
                except BrokerError as e:
                    from IPython.core.error import UsageError

                    raise UsageError(str(e)) from None
            kind = "line" if cell is None else "cell"
            magic = ip.magics_manager.magics[kind][name]
            if getattr(magic, "agp_stand_in", False):  # jupysql has no such magic of this kind
                from IPython.core.error import UsageError

                raise UsageError(f"{'%' if cell is None else '%%'}{name} is not a magic jupysql offers.")
            kwargs = {"local_ns": local_ns} if getattr(magic, "needs_local_scope", False) else {}
            return magic(line, **kwargs) if cell is None else magic(line, cell, **kwargs)

        stand_in.needs_local_scope = True  # type: ignore[attr-defined]
        stand_in.agp_stand_in = True  # type: ignore[attr-defined]
        stand_in.__doc__ = f"%{name} (jupysql on the workspace's Trino; loaded at first use)"
        return stand_in

    for name in LAZY_MAGICS:
        ip.register_magic_function(make(name), magic_kind="line_cell", magic_name=name)
    if getattr(ip, "kernel", None) is not None:
        warm_up()


WARM_UP_MODULES = ("pandas", "sqlalchemy", "trino.sqlalchemy", "sql.magic", "sql.connection")


def warm_up(delay: float = 1.0) -> threading.Thread:
    """Import jupysql and its stack in the background once the kernel is up, so the first ``%sql`` is quick too.

    Only imports (no connection, no configuration: that stays with the first ``%sql``, in the main thread); Python's
    import locks make a cell that imports the same modules meanwhile wait for them, not fail.
    """

    def run() -> None:
        for module in WARM_UP_MODULES:
            try:
                importlib.import_module(module)
            except Exception:  # the first %sql reports it properly
                log.debug("warm-up import of %s failed", module, exc_info=True)
                return

    timer = threading.Timer(delay, run)
    timer.daemon = True
    timer.name = "agp-sql-warm-up"
    timer.start()
    return timer


def configure(ip: Any, broker: BrokerClient | None = None) -> None:
    """Load jupysql into ``ip``; the workspace's Trino schema becomes its connection at the first ``%sql``.

    jupysql asks the database for its version when a connection is set, so setting it at kernel start would cost
    a round trip to Trino and, with Trino down, leave ``%sql`` without a connection for the whole session.
    """
    broker = broker or BrokerClient.from_environment()
    chosen = dict(ip.config.get("SqlMagic", {}))  # what the user set with %config before the first %sql
    from IPython.utils.capture import capture_output

    # jupysql parses statements with sqlglot only to find table names; its warnings about Trino syntax it does not
    # know ("SHOW TABLES … Falling back to parsing as a 'Command'") would land in the cell as stderr.
    logging.getLogger("sqlglot").setLevel(logging.ERROR)

    # jupysql greets with tips about where its settings could live; the notebook user did not ask (kept in the log).
    with capture_output() as greeting:
        ip.extension_manager.load_extension("sql")
    if greeting.stdout.strip():
        log.info("jupysql: %s", " ".join(greeting.stdout.split()))
    for key, value in DEFAULTS.items():
        if key in chosen or (key == "autopandas" and chosen.get("autopolars")):
            continue
        ip.run_line_magic("config", f"SqlMagic.{key} = {value!r}")
    wrap_magic(ip, broker)


def connect(broker: BrokerClient) -> None:
    """Make Trino jupysql's current connection, unless the user has chosen another one."""
    from sql.connection import ConnectionManager

    if ConnectionManager.current is None:
        from .persist import connection

        ConnectionManager.set(connection(engine(broker), broker, ALIAS), displaycon=False, alias=ALIAS)


def wrap_magic(ip: Any, broker: BrokerClient | None = None) -> None:
    """Register ``%sql``/``%%sql`` again around jupysql's: short errors, cancel on interrupt, cache invalidation."""
    from IPython.core.error import UsageError

    original = ip.magics_manager.magics["line"]["sql"]
    if getattr(original, "agp_wrapped", False):
        return

    def endpoint() -> str | None:
        cred = broker._cache.get("trino") if broker is not None else None
        return f"{cred['host']}:{cred['port']}" if cred else None

    def sql(line: str = "", cell: str | None = None, local_ns: dict | None = None) -> Any:
        try:
            if broker is not None:
                connect(broker)
            if cell is None:
                return original(line, local_ns=local_ns)
            return original(line, cell, local_ns=local_ns)
        except KeyboardInterrupt:
            ids = TRACKER.cancel_running()
            if ids:
                print(f"Cancelled in Trino: {', '.join(ids)}")
            raise
        except UsageError as e:
            if e.__cause__ is None:  # jupysql's own usage errors (bad arguments) are already short
                raise
            log.info("%%sql failed", exc_info=e.__cause__)
            TRACKER.cancel_running()
            raise UsageError(describe_error(e.__cause__, endpoint())) from None
        except Exception as e:
            # Errors jupysql lets through (the first connection, the broker): the same short form.
            log.info("%%sql failed", exc_info=e)
            TRACKER.cancel_running()
            raise UsageError(describe_error(e, endpoint())) from None
        finally:
            if _WRITES.search(f"{line}\n{cell or ''}"):
                invalidate_server_catalog()

    sql.needs_local_scope = True  # type: ignore[attr-defined]
    sql.agp_wrapped = True  # type: ignore[attr-defined]
    sql.__doc__ = original.__doc__
    ip.register_magic_function(sql, magic_kind="line_cell", magic_name="sql")


def invalidate_server_catalog(environ: dict[str, str] | None = None) -> bool:
    """Tell this kernel's workspace server to drop its cached catalog answers; False where there is none."""
    from .server import ServerCatalog

    server = ServerCatalog.from_environment(environ)
    return server is not None and server.invalidate()
