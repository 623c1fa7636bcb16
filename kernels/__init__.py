"""Kernel specs and their start-up: the "Python 3 (Antigravity)" kernel loads ``%sql`` and the helpers.

``%load_ext agp.kernels`` (what the kernel does at start) configures jupysql on the workspace's Trino schema;
imports are lazy so the kernel starts as fast as a plain one.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def spark(*args: Any, **kwargs: Any) -> Any:
    """The workspace's SparkSession (see :mod:`agp.kernels.spark_session`); imported lazily, Spark is heavy."""
    from .spark_session import spark as _spark

    return _spark(*args, **kwargs)


def spark_ui_url() -> str | None:
    """Where the Spark UI of this kernel's session opens (through the workspace server in a hub server)."""
    from .spark_session import spark_ui_url as _url

    return _url()


def __getattr__(name: str) -> Any:
    # ``from agp.kernels import CatalogBrowser`` imports ipywidgets only when it is asked for.
    if name == "CatalogBrowser":
        from .widgets import CatalogBrowser

        return CatalogBrowser
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_ipython_extension(ip: Any) -> None:
    """Kernel start: ``%sql``, ``%%sql``, ``%sqlcmd`` and ``%sqlplot`` are registered as stand-ins that load
    jupysql (SQLAlchemy, the Trino dialect; pandas, matplotlib and PySpark only when used) at their first use, or
    before it from a background warm-up once the kernel is up."""
    from .sql import install_lazy

    install_lazy(ip)
    from .grid import install as install_result_grid

    install_result_grid(ip)  # %sql results in the interactive grid; %config ResultGrid.enabled = False: tables
    default_pyiceberg_catalog()


def default_pyiceberg_catalog(environ: Any = None) -> None:
    """Make pyiceberg's documented ``load_catalog("default")`` (and its CLI) the workspace's catalog: pyiceberg reads
    ``PYICEBERG_CATALOG__DEFAULT__*`` from the environment. The workspace service's catalog, as this server (its own
    hub token, already in this process's environment); what a user configures (a variable or ~/.pyiceberg.yaml's
    ``default``) is left as it is."""
    import os

    env = os.environ if environ is None else environ
    service, token = env.get("AGP_WORKSPACE_SERVICE_URL"), env.get("JUPYTERHUB_API_TOKEN")
    if not service or not token or any(k.startswith("PYICEBERG_CATALOG__DEFAULT__") for k in env):
        return
    env["PYICEBERG_CATALOG__DEFAULT__TYPE"] = "rest"
    env["PYICEBERG_CATALOG__DEFAULT__URI"] = service.rstrip("/") + "/iceberg"
    env["PYICEBERG_CATALOG__DEFAULT__TOKEN"] = token
    env["PYICEBERG_CATALOG__DEFAULT__WAREHOUSE"] = env.get("AGP_CATALOG_WAREHOUSE", "warehouse")
