"""Spark in one call: ``from agp.kernels import spark; session = spark()``.

The session is wired to the workspace's Iceberg catalog (through the workspace service, with the server's own
token) and to its bucket (a temporary S3 credential from the broker), with the workspace namespace as default.
Iceberg's jars are fetched from Maven Central once into the cache. Calling it again returns the same session;
the kernel's exit stops it.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from pathlib import Path
from typing import Any

from .credentials import BrokerClient, spark_conf

log = logging.getLogger(__name__)
_session: Any = None
_lock = threading.Lock()


def jars(cache_dir: Path | None = None) -> list[Path]:
    """Iceberg's Spark runtime and AWS bundle, verified, from the cache (fetched once)."""
    from agp.compose import fetch, versions

    downloads = (cache_dir or Path(os.environ.get("AGP_CACHE_DIR") or Path.home() / ".cache" / "agp")) / "downloads"
    return [fetch.download(artifact, downloads) for artifact in versions.SPARK_JARS]


def builder_conf(broker: BrokerClient, jar_paths: list[Path], master: str) -> dict[str, str]:
    """Every setting of the session (pure): catalog and S3 from the broker, Iceberg's extensions, lean local mode."""
    return {
        "spark.master": master,
        "spark.app.name": f"agp-{broker.workspace}",
        "spark.jars": ",".join(str(p) for p in jar_paths),
        "spark.sql.extensions": "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        "spark.sql.catalog.iceberg.token": broker.token,
        "spark.sql.catalog.iceberg.default-namespace": broker.get("catalog")["namespace"],
        "spark.ui.showConsoleProgress": "true",
        "spark.sql.shuffle.partitions": "4",
        "spark.driver.memory": "1g",
        **spark_conf(broker),
    }


def spark(broker: BrokerClient | None = None, master: str | None = None) -> Any:
    """The workspace's SparkSession, made on the first call and returned as it is after."""
    global _session
    with _lock:
        if _session is not None and _session.sparkContext._jsc is not None:
            return _session
        from pyspark.sql import SparkSession

        broker = broker or BrokerClient.from_environment()
        master = master or os.environ.get("AGP_SPARK_MASTER", "local[2]")
        builder = SparkSession.builder
        for key, value in builder_conf(broker, jars(), master).items():
            builder = builder.config(key, value)
        _session = builder.getOrCreate()
        _session.sql(f"USE iceberg.`{broker.get('catalog')['namespace']}`")
        atexit.register(_stop)
        return _session


def _stop() -> None:
    global _session
    if _session is not None:
        _session.stop()
        _session = None
