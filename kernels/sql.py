"""``%sql`` on Trino: jupysql with a connection to the workspace's schema as the logged-in user.

The connection is made lazily (nothing is contacted until the first query) and authenticates with JWTs from the
credential broker, renewed as they near expiry; no password is typed into a notebook.

jupysql stays what it is, with its own defaults (``%%sql``, ``<<``, ``--save``, row limits; ``%sql`` returns its
ResultSet) but ``displaycon``; the kernel wraps its magics (``%sql``, ``%jupysql``, ``%sqlcmd``, ``%sqlplot``, and
again after ``%load_ext sql`` or ``%reload_ext sql``) so that:

- whichever runs first connects to Trino;
- an error is one or a few lines that name it, without traceback or ``UsageError:`` prefix (jupysql's own messages
  add hints for other databases); a position is shown with a caret, a permission error says who can change it
  (:mod:`.messages`);
- a long query shows Trino's progress, and interrupting the kernel cancels it in Trino and shows one line with the
  query's history link (:mod:`.query`);
- columns Trino leaves unnamed (``_col0``) are named after their expressions (:mod:`.columns`);
- after a statement that changes the catalog, the server's catalog cache is told to forget what it holds.
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
from typing import Any

from IPython.core.extensions import ExtensionManager as _IPythonExtensionManager
from IPython.core.magic import MAGIC_NO_VAR_EXPAND_ATTR, no_var_expand

from .credentials import BrokerClient, BrokerError, trino_connect
from .grid import mark as mark_result
from .query import TRACKER, describe_error, trino_error

log = logging.getLogger(__name__)

ALIAS = "trino"

# Statements after which the catalog (tables, schemas, snapshots) may have changed.
_WRITES = re.compile(
    r"^\s*(create|drop|alter|insert|delete|update|merge|truncate|comment|refresh|execute|call)\b", re.I | re.M
)


def autolimit() -> int:
    """jupysql's ``SqlMagic.autolimit`` in this IPython (0, no limit, where jupysql is not loaded)."""
    from IPython import get_ipython

    ip = get_ipython()
    magic = ip.magics_manager.registry.get("SqlMagic") if ip is not None else None
    return int(getattr(magic, "autolimit", 0) or 0)


def engine(broker: BrokerClient | None = None, tracker: Any = TRACKER) -> Any:
    """A SQLAlchemy engine on Trino whose DBAPI connections come from :func:`agp.kernels.credentials.trino_connect`;
    the DataFrames they make hold at most ``autolimit`` rows, as jupysql's results do."""
    from sqlalchemy import create_engine

    broker = broker or BrokerClient.from_environment()

    def creator() -> Any:
        conn = trino_connect(broker, tracker=tracker)
        conn.row_limit = autolimit
        return conn

    # The URL only names the dialect; every connection is made by the creator, with the broker's credentials.
    return create_engine("trino://", creator=creator, pool_pre_ping=False)


# jupysql's magics (``%jupysql`` is its second name for ``%sql``): stand-ins until the first use, then wrapped.
LAZY_MAGICS = ("sql", "jupysql", "sqlcmd", "sqlplot")
LINE_ONLY = ("sqlcmd", "sqlplot")
# Where the kernel's SqlMagic differs from jupysql's defaults. Everything else (autopandas off: ``%sql`` returns
# jupysql's ResultSet; autolimit, displaylimit, feedback, named_parameters...) is jupysql's, as its docs show it.
DEFAULTS = {"displaycon": False}  # one connection: its name above every result says nothing


def install_lazy(ip: Any) -> None:
    """Register stand-ins for jupysql's magics; the first use of any loads and configures jupysql, then runs.

    ``%load_ext sql`` (the first cell of jupysql's guides) configures jupysql the same way
    (:class:`ExtensionManager`), so it keeps the workspace's connection.
    """

    def make(name: str):
        def stand_in(line: str = "", cell: str | None = None, local_ns: dict | None = None) -> Any:
            if getattr(ip.magics_manager.magics["line"].get(name), "agp_stand_in", False):
                with STACK_IMPORTS:
                    configure(ip)
            kind = "line" if cell is None else "cell"
            magic = ip.magics_manager.magics[kind][name]
            if getattr(magic, "agp_stand_in", False):  # jupysql has no such magic of this kind
                from .messages import SqlError

                raise SqlError(f"{'%' if cell is None else '%%'}{name} is not a magic jupysql offers.")
            kwargs = {"local_ns": local_ns} if getattr(magic, "needs_local_scope", False) else {}
            return magic(line, **kwargs) if cell is None else magic(line, cell, **kwargs)

        stand_in.needs_local_scope = True  # type: ignore[attr-defined]
        # As jupysql's own magics (@no_var_expand): IPython must not expand {…} and $… in the line first, or
        # jupysql's documented {{variable}} reaches Trino as {variable}.
        no_var_expand(stand_in)
        stand_in.agp_stand_in = True  # type: ignore[attr-defined]
        stand_in.__doc__ = f"%{name} (jupysql on the workspace's Trino; loaded at first use)"
        return stand_in

    for name in LAZY_MAGICS:
        ip.register_magic_function(make(name), magic_kind="line_cell", magic_name=name)
    use_extension_manager(ip)
    if getattr(ip, "kernel", None) is not None:
        warm_up()


# What the first ``%sql`` imports besides jupysql (:func:`agp.kernels.deferred.import_jupysql`), in that order; then
# pandas, which ``result.DataFrame()`` needs next (jupysql itself no longer imports it).
WARM_UP_MODULES = (
    "sqlalchemy",
    "trino.sqlalchemy",
    "agp.core.clients",
    "agp.kernels.connection",
    "agp.kernels.persist",
    "agp.kernels.safe_html",
    "agp.kernels.frames",
    "pandas",
)


# Held by the warm-up while it imports the stack and by the first ``%sql`` while it loads and connects jupysql. Two
# threads importing the same packages at once is not safe: where packages import each other in a cycle (jupysql's
# modules do), Python's deadlock avoidance hands one thread a partly initialised module ("cannot import name
# 'ResultSet' from partially initialized module 'sql.run.resultset'", seen with a %sql right after the warm-up began).
STACK_IMPORTS = threading.RLock()
# Clear while a jupysql magic runs: the warm-up's last import (pandas) waits for it rather than share the GIL with it.
SQL_IDLE = threading.Event()
SQL_IDLE.set()


def warm_up(delay: float = 0.3) -> threading.Timer:
    """Import jupysql and its stack in the background ``delay`` seconds after the extension is loaded (the kernel's
    last step before it answers), so the first ``%sql`` is quick too; the delay keeps the kernel's own start (which
    the warm-up would share the GIL with) as fast as a plain one.

    Only imports (no connection, no configuration: that stays with the first ``%sql``, in the main thread). A
    ``%sql`` run meanwhile waits for the imports (:data:`STACK_IMPORTS`) rather than making them alongside; pandas
    comes last, outside the lock and once no ``%sql`` is running (:data:`SQL_IDLE`), as nothing of ``%sql`` needs it.
    """

    def run() -> None:
        from .deferred import import_jupysql

        *stack, last = WARM_UP_MODULES
        try:
            with STACK_IMPORTS:
                import_jupysql()
                for module in stack:
                    importlib.import_module(module)
            SQL_IDLE.wait()
            importlib.import_module(last)
        except Exception:  # the first %sql reports it properly
            log.debug("warm-up import failed", exc_info=True)

    timer = threading.Timer(delay, run)
    timer.daemon = True
    timer.name = "agp-sql-warm-up"
    timer.start()
    return timer


class ExtensionManager(_IPythonExtensionManager):
    """IPython's extension manager; loading (or reloading) jupysql also gives it the workspace's connection and
    the kernel's defaults, so ``%load_ext sql`` and ``%reload_ext sql`` keep ``%sql`` on Trino."""

    def load_extension(self, module_str: str) -> Any:
        if module_str == "sql":  # pandas, matplotlib and PySpark come when used (agp.kernels.deferred)
            from .deferred import import_jupysql

            with STACK_IMPORTS:
                import_jupysql()
        result = super().load_extension(module_str)
        if module_str == "sql" and result is None:
            adopt(self.shell)
        return result

    def reload_extension(self, module_str: str) -> None:
        super().reload_extension(module_str)
        if module_str == "sql":
            adopt(self.shell)


def use_extension_manager(ip: Any) -> None:
    """Give ``ip`` an :class:`ExtensionManager` in place of IPython's (keeping what it has loaded)."""
    current = getattr(ip, "extension_manager", None)
    if current is None or isinstance(current, ExtensionManager):
        return
    manager = ExtensionManager(shell=ip, parent=ip)
    manager.loaded = current.loaded  # the same set: the extension being loaded now is recorded in it afterwards
    ip.extension_manager = manager
    ip.configurables = [manager if c is current else c for c in ip.configurables]


def configure(ip: Any, broker: BrokerClient | None = None) -> None:
    """Load jupysql into ``ip`` (as a ``%sql`` stand-in does at first use); the workspace's Trino schema becomes
    its connection at the first magic that needs one.

    jupysql asks the database for its version when a connection is set, so setting it at kernel start would cost
    a round trip to Trino and, with Trino down, leave ``%sql`` without a connection for the whole session.
    """
    from IPython.utils.capture import capture_output

    # jupysql greets with tips about where its settings could live; the notebook user did not ask (kept in the log).
    with capture_output() as greeting:
        ip.extension_manager.load_extension("sql")
    if greeting.stdout.strip():
        log.info("jupysql: %s", " ".join(greeting.stdout.split()))
    adopt(ip, broker)


def adopt(ip: Any, broker: BrokerClient | None = None) -> None:
    """jupysql is loaded in ``ip``: apply the kernel's defaults and wrap its magics (idempotent)."""
    # jupysql parses statements with sqlglot only to find table names; its warnings about Trino syntax it does not
    # know ("SHOW TABLES … Falling back to parsing as a 'Command'") would land in the cell as stderr.
    logging.getLogger("sqlglot").setLevel(logging.ERROR)
    from .safe_html import install as escape_result_html

    escape_result_html()
    magic = ip.magics_manager.registry.get("SqlMagic")
    if magic is not None:
        apply_defaults(magic, dict(ip.config.get("SqlMagic", {})))
    for name in LAZY_MAGICS:
        wrap_magic(ip, broker, name)


def apply_defaults(magic: Any, chosen: dict[str, Any], defaults: dict[str, Any] = DEFAULTS) -> dict[str, Any]:
    """Set :data:`DEFAULTS` on jupysql's SqlMagic where the user chose nothing (``%config`` before the first
    ``%sql``: ``chosen``; jupysql's pyproject.toml or ~/.jupysql/config: a value that is not the trait's default).
    Returns what it set."""
    applied = {}
    for key, value in defaults.items():
        trait = magic.traits().get(key)
        if trait is None or key in chosen or getattr(magic, key) != trait.default_value:
            continue
        setattr(magic, key, value)
        applied[key] = value
    return applied


def connect(broker: BrokerClient | None) -> None:
    """Make Trino jupysql's current connection, unless the user has chosen another one."""
    from sql.connection import ConnectionManager

    if ConnectionManager.current is None:
        from .connection import speak_trino
        from .persist import connection

        broker = broker or BrokerClient.from_environment()
        ConnectionManager.set(speak_trino(connection(engine(broker), broker, ALIAS)), displaycon=False, alias=ALIAS)


def wrap_magic(ip: Any, broker: BrokerClient | None = None, name: str = "sql") -> None:
    """Register jupysql's magic ``name`` again, wrapped: it connects to Trino at first use, errors are short,
    interrupting cancels the query in Trino, and a statement that changes the catalog refreshes the server's cache.
    """
    from IPython.core.error import UsageError

    from .messages import QueryInterrupted, SqlError, history_url, interrupted_line

    original = ip.magics_manager.magics["line"].get(name)
    if original is None or getattr(original, "agp_wrapped", False) or getattr(original, "agp_stand_in", False):
        return
    used: dict[str, BrokerClient] = {}

    def endpoint() -> str | None:
        cred = used["broker"]._cache.get("trino") if "broker" in used else None
        return f"{cred['host']}:{cred['port']}" if cred else None

    def magic(line: str = "", cell: str | None = None, local_ns: dict | None = None) -> Any:
        SQL_IDLE.clear()
        try:
            if "broker" not in used:
                used["broker"] = broker or BrokerClient.from_environment()
            with STACK_IMPORTS:
                connect(used["broker"])
            if name in LINE_ONLY:
                if cell is not None:
                    raise SqlError(f"%%{name} is not a magic jupysql offers.")
                return original(line)
            result = original(line, local_ns=local_ns) if cell is None else original(line, cell, local_ns=local_ns)
            return mark_result(result)  # a DataFrame %sql returns shows in the result grid (agp.kernels.grid)
        except KeyboardInterrupt:
            ids = TRACKER.cancel_running()
            raise QueryInterrupted(interrupted_line(ids, {i: history_url(i) for i in ids})) from None
        except SqlError:
            raise
        except UsageError as e:
            if e.__cause__ is None:  # jupysql's own usage errors (bad arguments) are already short
                raise SqlError(str(e)) from None
            log.info("%%%s failed", name, exc_info=e.__cause__)
            TRACKER.cancel_running()
            raise SqlError(explain(e.__cause__, endpoint(), used.get("broker"))) from None
        except BrokerError as e:
            raise SqlError(str(e)) from None
        except Exception as e:
            # Errors jupysql lets through (the first connection, the broker): the same short form.
            log.info("%%%s failed", name, exc_info=e)
            TRACKER.cancel_running()
            raise SqlError(explain(e, endpoint(), used.get("broker"))) from None
        finally:
            SQL_IDLE.set()
            if name not in LINE_ONLY and _WRITES.search(f"{line}\n{cell or ''}"):
                invalidate_server_catalog()

    magic.needs_local_scope = True  # type: ignore[attr-defined]
    if getattr(original, MAGIC_NO_VAR_EXPAND_ATTR, False):
        no_var_expand(magic)  # as the magic it wraps: jupysql's %sql expands {{variables}} itself
    magic.agp_wrapped = True  # type: ignore[attr-defined]
    magic.__doc__ = original.__doc__
    kind = "line" if name in LINE_ONLY else "line_cell"
    ip.register_magic_function(magic, magic_kind=kind, magic_name=name)


def explain(error: BaseException, endpoint: str | None, broker: BrokerClient | None) -> str:
    """:func:`agp.kernels.query.describe_error`; a permission error also says the user's role in the workspace
    and who can change it (asked of the workspace service: one sentence still when it does not answer)."""
    from .messages import permission_sentence

    trino = trino_error(error)
    if trino is not None and getattr(trino, "error_name", None) == "PERMISSION_DENIED" and broker is not None:
        try:
            info = broker.workspace_info()
        except Exception:
            log.info("could not ask the workspace service about workspace %s", broker.workspace, exc_info=True)
            info = None
        text = permission_sentence(trino.message, broker.workspace, info)
        return f"{text} (query {trino.query_id})" if getattr(trino, "query_id", None) else text
    return describe_error(error, endpoint)


def invalidate_server_catalog(environ: dict[str, str] | None = None) -> bool:
    """Tell this kernel's workspace server to drop its cached catalog answers; False where there is none."""
    from .server import ServerCatalog

    server = ServerCatalog.from_environment(environ)
    return server is not None and server.invalidate()
