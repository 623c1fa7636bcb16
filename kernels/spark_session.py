"""Spark in one call: ``from agp.kernels import spark; session = spark()``.

The session is wired to the workspace's Iceberg catalog (through the workspace service, with the server's own
token) and to its bucket (a temporary S3 credential from the broker), with the workspace namespace as default.
Iceberg's jars are fetched from Maven Central once into the cache. Calling it again returns the same session;
the kernel's exit stops it.

In a notebook, the first call shows its start as one line that updates (jars resolved, JVM starting, catalog open,
then the session's Spark UI link); the JVM's own output (its warnings, log4j's) goes to a log file in the user's
cache, which that line names when the start fails, not into the cell (``spark(verbose=True)`` shows it in the
cell). Running jobs show a progress bar in the cell that runs them (:mod:`agp.kernels.spark_progress`).

In a server started by JupyterHub the UI is reached through the server's own proxy (jupyter-server-proxy,
``<server>/proxy/<port>/``, behind the server's login), so the browser needs no other port than the hub's:
:func:`spark_ui_url` gives that path.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import secrets
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from . import spark_progress
from .credentials import BrokerClient, BrokerError, spark_conf
from .messages import ShortLines

log = logging.getLogger(__name__)
_session: Any = None
_ui_url: str | None = None
_monitor: spark_progress.ProgressMonitor | None = None
_lock = threading.Lock()
_stop_registered = False


def jars(cache_dir: Path | None = None) -> list[Path]:
    """Iceberg's Spark runtime and AWS bundle, verified, from the cache (fetched once)."""
    from agp.core import fetch, versions

    downloads = (cache_dir or Path(os.environ.get("AGP_CACHE_DIR") or Path.home() / ".cache" / "agp")) / "downloads"
    return [fetch.download(artifact, downloads) for artifact in versions.SPARK_JARS]


def builder_conf(
    broker: BrokerClient, jar_paths: list[Path], master: str, console_progress: bool = True
) -> dict[str, str]:
    """Every setting of the session (pure): catalog and S3 from the broker, Iceberg's extensions, lean local mode.

    ``console_progress=False`` turns Spark's console bar off (in a kernel it goes to the server's log, and the
    notebook has its own bar).
    """
    return {
        "spark.master": master,
        "spark.app.name": f"agp-{broker.workspace}",
        "spark.jars": ",".join(str(p) for p in jar_paths),
        "spark.sql.extensions": "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        "spark.ui.showConsoleProgress": "true" if console_progress else "false",
        "spark.sql.shuffle.partitions": "4",
        "spark.driver.memory": "1g",
        **connect_conf(broker),
    }


def proxy_base(service_prefix: str, port: int) -> str:
    """The Spark UI's path behind the Jupyter server's proxy: ``/user/alice/demo/`` and 4040 give
    ``/user/alice/demo/proxy/4040``."""
    return f"{service_prefix.rstrip('/')}/proxy/{port}"


def ui_conf(port: int, service_prefix: str | None, public_url: str | None = None) -> dict[str, str]:
    """The UI's port and, in a hub server (``service_prefix`` is its ``JUPYTERHUB_SERVICE_PREFIX``), the base
    path its links get so that they work through the server's proxy, and the public address (the hub's,
    ``AGP_PUBLIC_URL``) its redirects point to (pure)."""
    conf = {"spark.ui.port": str(port)}
    if service_prefix:
        conf["spark.ui.proxyBase"] = proxy_base(service_prefix, port)
        if public_url:
            conf["spark.ui.proxyRedirectUri"] = public_url.rstrip("/")
    return conf


def ui_url(service_prefix: str | None, port: int | None, spark_url: str | None) -> str | None:
    """Where a user opens the UI: its jobs page through the server's proxy in a hub server, else Spark's own URL
    (``None`` when the UI is off)."""
    if port is None or spark_url is None:
        return None
    return f"{proxy_base(service_prefix, port)}/jobs/" if service_prefix else spark_url


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (Spark moves to the next one if it is taken by the time it binds)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _alive(session: Any) -> bool:
    """Whether ``session`` still runs: a classic session has a live JVM context; a Spark Connect one is not
    stopped."""
    if session is None:
        return False
    if is_connect(session):
        return not session.is_stopped
    return session.sparkContext._jsc is not None


def is_connect(session: Any) -> bool:
    return type(session).__module__.startswith("pyspark.sql.connect")


def connect_conf(broker: BrokerClient) -> dict[str, str]:
    """The session-level settings of the workspace's catalog as this user (pure but for the broker): all a Spark
    Connect session carries, and part of a classic one (:func:`builder_conf`). For Connect, Iceberg's jars and SQL
    extensions belong to the server's own configuration.
    """
    cat = broker.get("catalog")
    return {
        **spark_conf(broker),
        **catalog_auth_conf(cat["uri"], broker.token),
        "spark.sql.catalog.iceberg.default-namespace": cat["namespace"],
    }


def catalog_auth_conf(uri: str, token: str, catalog: str = "iceberg") -> dict[str, str]:
    """How Iceberg's REST client authenticates to the catalog (pure): the server's own token as a bearer token,
    named the way Iceberg 1.10 expects (an explicit auth manager and token endpoint; without them it logs two
    deprecation warnings at every start). The token is never exchanged or refreshed there: it lives as long as
    the server, so the endpoint is only named, never called."""
    prefix = f"spark.sql.catalog.{catalog}"
    return {
        f"{prefix}.rest.auth.type": "oauth2",
        f"{prefix}.token": token,
        f"{prefix}.oauth2-server-uri": f"{uri.rstrip('/')}/v1/oauth/tokens",
        f"{prefix}.token-refresh-enabled": "false",
    }


def spark_ui_url() -> str | None:
    """The Spark UI of the session made by :func:`spark`: a path on the Jupyter server (``/user/<name>/<server>/
    proxy/<port>/jobs/``) in a hub server, Spark's own URL elsewhere; ``None`` before a session exists (and for
    Spark Connect, whose UI is the server's)."""
    return _ui_url if _alive(_session) else None


class SparkStartError(ShortLines, RuntimeError):
    """The session did not start; ``str()`` is one sentence (the notebook shows it without a traceback)."""


def spark(broker: BrokerClient | None = None, master: str | None = None, verbose: bool = False) -> Any:
    """The workspace's SparkSession, made on the first call and returned as it is after.

    ``verbose=True`` lets the JVM write its own output (warnings, log4j) into the cell instead of its log file.
    """
    global _session, _ui_url, _monitor, _stop_registered
    with _lock:
        if _alive(_session):
            return _session
        from pyspark.sql import SparkSession

        if _monitor is not None:
            _monitor.stop()
            _monitor = None
        broker = broker or BrokerClient.from_environment()
        master = master or os.environ.get("AGP_SPARK_MASTER", "local[2]")
        if master.startswith("sc://"):
            # Spark Connect: the cluster is the server's; this kernel brings the user's catalog settings.
            try:
                builder = SparkSession.builder.remote(master)
                for key, value in connect_conf(broker).items():
                    builder = builder.config(key, value)
                session = builder.getOrCreate()
                session.sql(f"USE iceberg.`{broker.get('catalog')['namespace']}`")
            except Exception as e:
                log.info("Spark Connect did not start", exc_info=e)
                raise SparkStartError(start_failure(e, "connect", None)) from None
            _session = session
            if not _stop_registered:
                atexit.register(_stop)
                _stop_registered = True
            return _session
        service_prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or None
        shell = spark_progress.kernel_shell()
        line = StartLine(shell)
        log_file = None if shell is None or verbose else jvm_log_file()
        try:
            line.phase("jars")
            jar_paths = jars()
            line.done("jars", str(len(jar_paths)))
            # Python functions (UDFs, RDD maps) run in workers of this interpreter, not whatever python3 PATH finds.
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            if master.startswith("local"):
                # The driver and its UI listen on loopback only; users reach the UI through the server's proxy.
                os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            conf = {
                **builder_conf(broker, jar_paths, master, console_progress=shell is None),
                **ui_conf(free_port(), service_prefix, os.environ.get("AGP_PUBLIC_URL")),
                # The driver's RPC and block-transfer ports share the machine's loopback with other users' kernels:
                # they answer only those who know this session's secret (the UI redacts it in its environment page).
                "spark.authenticate": "true",
                "spark.authenticate.secret": secrets.token_urlsafe(32),
            }
            builder = SparkSession.builder
            for key, value in conf.items():
                builder = builder.config(key, value)
            line.phase("jvm", ticking=True)
            with _jvm_output_to(log_file):
                session = builder.getOrCreate()
            line.phase("catalog")
            session.sql(f"USE iceberg.`{broker.get('catalog')['namespace']}`")
        except (Exception, KeyboardInterrupt) as e:
            line.failed(log_file)
            if isinstance(e, KeyboardInterrupt):
                raise
            log.info("Spark did not start (%s)", line.current, exc_info=e)  # info: a warning would reach the cell
            raise SparkStartError(start_failure(e, line.current, log_file)) from None
        _session = session
        _ui_url = _expose_ui(_session.sparkContext, service_prefix)
        line.ready(_ui_url)
        if not _stop_registered:
            atexit.register(_stop)
            _stop_registered = True
        if shell is not None:
            _monitor = _notebook_extras(shell, _session.sparkContext)
            _invalidate_after_spark_jobs(shell)
        return _session


def start_failure(error: BaseException, phase: str | None, log_file: Path | None) -> str:
    """One sentence for a session that did not start in ``phase`` (pure)."""
    text = (str(error).strip().splitlines() or [type(error).__name__])[0].strip().rstrip(".")
    if isinstance(error, BrokerError):
        return f"{text}."
    where = f"; its log: {log_file}" if log_file else ""
    if phase == "jars":
        return f"Spark did not start: Iceberg's jars are missing ({text})."
    if phase == "jvm" and ("JAVA_GATEWAY_EXITED" in text or "Java gateway process exited" in text):
        return f"Spark did not start: its JVM exited before it was ready{where}."
    if phase == "catalog":
        return f"Spark started, but the workspace's catalog did not open: {text}{where}."
    return f"Spark did not start: {text}{where}."


def jvm_log_file(home: Path | None = None) -> Path:
    """Where this kernel's Spark JVM writes its output: ``~/.cache/agp/spark/driver-<kernel pid>.log`` (a folder
    only the user reads), or a private temporary file where the home is not writable."""
    folder = (home or Path.home()) / ".cache" / "agp" / "spark"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = folder / f"driver-{os.getpid()}.log"
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        return path
    except OSError:
        fd, name = tempfile.mkstemp(prefix="agp-spark-driver-", suffix=".log")
        os.close(fd)
        return Path(name)


@contextlib.contextmanager
def _jvm_output_to(log_file: Path | None) -> Iterator[None]:
    """Processes started meanwhile (Spark's JVM) write their stdout and stderr into ``log_file`` (appended), not
    into the cell: ipykernel forwards what is written to file descriptors 1 and 2 to the notebook, and a child
    keeps the descriptors it was started with. ``None``: they write where the kernel's own descriptors go."""
    if log_file is None:
        yield
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    target = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    saved = [os.dup(1), os.dup(2)]
    try:
        os.dup2(target, 1)
        os.dup2(target, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, target):
            os.close(fd)


class StartLine:
    """The one line a session's start shows in its cell (``display_data``, then ``update_display_data`` with
    its ``display_id``); while the JVM starts, a thread updates its seconds. Nothing outside a kernel."""

    def __init__(self, shell: Any, clock: Callable[[], float] = time.monotonic, interval: float = 1.0) -> None:
        self.shell, self.clock, self.interval = shell, clock, interval
        self.started = clock()
        self.display_id = uuid.uuid4().hex
        self.current: str | None = None
        self.detail: dict[str, str] = {}
        self._shown = False
        self._lock = threading.Lock()
        self._ticking: tuple[threading.Thread, threading.Event] | None = None

    def phase(self, name: str, ticking: bool = False) -> None:
        self._stop_ticking()
        self.current = name
        self._show(name, "running")
        if ticking and self.shell is not None:
            import contextvars

            stop = threading.Event()

            def tick() -> None:
                while not stop.wait(self.interval):
                    self._show(name, "running")

            # In the cell's context (ipykernel's parent header is a context variable): the updates go to this cell.
            thread = threading.Thread(
                target=contextvars.copy_context().run, args=(tick,), name="agp-spark-start", daemon=True
            )
            thread.start()
            self._ticking = (thread, stop)

    def done(self, name: str, detail: str) -> None:
        self.detail[name] = detail

    def ready(self, ui_url: str | None) -> None:
        self._stop_ticking()
        self._show("ready", "ready", ui_url)

    def failed(self, log_file: Path | None) -> None:
        self._stop_ticking()
        self._show("failed", "failed", detail={"phase": self.current or "", "log": str(log_file or "")})

    def _stop_ticking(self) -> None:
        if self._ticking is not None:
            thread, stop = self._ticking
            stop.set()
            thread.join(5)
            self._ticking = None

    def _show(self, phase: str, state: str, ui_url: str | None = None, detail: dict | None = None) -> None:
        text = spark_progress.start_text(phase, self.clock() - self.started, detail or self.detail)
        if self.shell is None:
            log.info("Spark %s", text)
            return
        try:
            from IPython.display import display, update_display

            data = spark_progress.start_bundle(text, state, ui_url)
            with self._lock:
                if self._shown:
                    update_display(data, raw=True, display_id=self.display_id)
                else:
                    display(data, raw=True, display_id=self.display_id)
                    self._shown = True
        except Exception:  # the line is a courtesy: never the reason a start fails
            log.debug("could not show Spark's start", exc_info=True)


def _expose_ui(sc: Any, service_prefix: str | None) -> str | None:
    """The UI's URL for the user; behind the proxy, the base path of its links for the port it really bound."""
    try:
        spark_url = sc.uiWebUrl
        port = urlparse(spark_url).port if spark_url else None
        # Spark reads the links' base path from this JVM property on each request: set it for the port the UI
        # really bound (Spark takes the next one when the chosen port was taken meanwhile), and clear what an
        # earlier session of the same JVM left.
        system = sc._jvm.java.lang.System
        if service_prefix and port is not None:
            system.setProperty("spark.ui.proxyBase", proxy_base(service_prefix, port))
        else:
            system.clearProperty("spark.ui.proxyBase")
        return ui_url(service_prefix, port, spark_url)
    except Exception:
        log.warning("could not work out the Spark UI's address", exc_info=True)
        return None


def _notebook_extras(shell: Any, sc: Any) -> spark_progress.ProgressMonitor | None:
    """The progress bar's thread (its bars link to the Spark UI's job pages); never raises."""
    root = None
    if _ui_url:
        root = _ui_url.removesuffix("/jobs/") if os.environ.get("JUPYTERHUB_SERVICE_PREFIX") else _ui_url
    try:
        return spark_progress.ProgressMonitor(sc, shell, root).start()
    except Exception:
        log.warning("could not start the Spark progress bar", exc_info=True)
        return None


_hooked_shells: set[int] = set()


def _invalidate_after_spark_jobs(shell: Any) -> None:
    """After a cell in which Spark ran jobs, tell the server to drop its cached catalog answers (Spark may have
    committed to a table; a read costs one fresh listing, which is cheap against a stale one). Never raises."""
    if id(shell) in _hooked_shells:
        return
    _hooked_shells.add(id(shell))
    seen: dict[str, int | None] = {"jobs": None}

    def jobs() -> int | None:
        session = _session
        if not _alive(session) or is_connect(session):
            return None
        # Job ids only grow; the newest one changes when a cell ran any job.
        return max(session.sparkContext.statusTracker().getJobIdsForGroup(None), default=-1)

    def before(*_: Any) -> None:
        try:
            seen["jobs"] = jobs()
        except Exception:
            seen["jobs"] = None

    def after(*_: Any) -> None:
        try:
            if seen["jobs"] is not None and jobs() != seen["jobs"]:
                from .sql import invalidate_server_catalog

                invalidate_server_catalog()
        except Exception:
            log.debug("could not refresh the server's catalog cache after Spark jobs", exc_info=True)

    shell.events.register("pre_run_cell", before)
    shell.events.register("post_run_cell", after)


def _stop() -> None:
    global _session, _monitor, _ui_url
    if _monitor is not None:
        _monitor.stop()
        _monitor = None
    if _session is not None:
        _session.stop()
        _session = None
    _ui_url = None
