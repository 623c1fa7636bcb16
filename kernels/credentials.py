"""Kernel-side helpers: Trino, S3, Iceberg catalog and Spark settings with short-lived credentials from the broker.

In a workspace server, ``BrokerClient.from_environment()`` finds the workspace service, the server's own hub
token and the workspace in the environment the spawner set; credentials are fetched on demand, cached until a
minute before they expire, and fetched again after. No long-lived secret is stored in the notebook.
"""

from __future__ import annotations

import functools
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class BrokerError(RuntimeError):
    """The broker refused or could not be reached; ``str()`` says why in one sentence."""


@dataclass
class BrokerClient:
    service_url: str
    token: str
    workspace: str
    margin: float = 60.0
    _cache: dict[str, dict] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> BrokerClient:
        env = os.environ if environ is None else environ
        missing = [k for k in ("AGP_WORKSPACE_SERVICE_URL", "JUPYTERHUB_API_TOKEN", "AGP_WORKSPACE") if not env.get(k)]
        if missing:
            raise BrokerError(
                f"This is not a workspace server ({', '.join(missing)} not set); start one from the hub's home page."
            )
        return cls(env["AGP_WORKSPACE_SERVICE_URL"], env["JUPYTERHUB_API_TOKEN"], env["AGP_WORKSPACE"])

    def get(self, kind: str) -> dict[str, Any]:
        with self._lock:
            hit = self._cache.get(kind)
            if hit and (hit["expires_at"] is None or hit["expires_at"] - self.margin > time.time()):
                return hit
        import requests  # here, not at the top: the kernel imports this module at its start

        url = f"{self.service_url.rstrip('/')}/api/workspaces/{self.workspace}/credentials"
        try:
            r = requests.post(url, json={"kinds": [kind]}, headers={"Authorization": f"token {self.token}"}, timeout=30)
        except requests.RequestException as e:
            raise BrokerError(
                f"The workspace service at {self.service_url} does not answer ({type(e).__name__})."
            ) from e
        if r.status_code != 200:
            raise BrokerError(refusal(kind, self.workspace, r.status_code, r.headers.get("Content-Type", ""), r.text))
        cred = r.json()[kind]
        with self._lock:
            self._cache[kind] = cred
        return cred

    def workspace_info(self, timeout: float = 10) -> dict[str, Any]:
        """The workspace as the service shows it to this user (``/api/workspaces/<slug>``: its names, the user's
        role, its members and their roles)."""
        import requests

        url = f"{self.service_url.rstrip('/')}/api/workspaces/{self.workspace}"
        try:
            r = requests.get(url, headers={"Authorization": f"token {self.token}"}, timeout=timeout)
        except requests.RequestException as e:
            raise BrokerError(
                f"The workspace service at {self.service_url} does not answer ({type(e).__name__})."
            ) from e
        if r.status_code != 200:
            raise BrokerError(
                f"The workspace service did not show workspace {self.workspace!r} (HTTP {r.status_code})."
            )
        return r.json()

    def ca_file(self) -> Path:
        """Trino's CA certificate as a file (requests wants a path)."""
        pem = self.get("trino")["ca_certificate"]
        path = Path(tempfile.gettempdir()) / f"agp-trino-ca-{os.getuid()}.pem"
        if not path.exists() or path.read_text() != pem:
            path.write_text(pem)
        return path


def refusal(kind: str, workspace: str, status: int, content_type: str, body: str) -> str:
    """The sentence for a credential request the service refused (pure): its JSON ``detail``; for a page that is
    not JSON (the hub's proxy while the service restarts), what the status means, never the page itself."""
    detail = None
    if "json" in content_type:
        try:
            import json

            answer = json.loads(body)
            detail = answer.get("detail") if isinstance(answer, dict) else None
        except ValueError:
            detail = None
    if detail is None and status in (502, 503, 504):
        return (
            f"The workspace service is not available right now (HTTP {status}); "
            "no credentials were issued. Try again in a moment."
        )
    return f"No {kind} credentials for workspace {workspace!r}: {detail or 'refused'} (HTTP {status})"


def _broker(broker: BrokerClient | None) -> BrokerClient:
    return broker or BrokerClient.from_environment()


def trino_connect(broker: BrokerClient | None = None, tracker: Any = None, **kwargs: Any):
    """A ``trino`` DBAPI connection as the logged-in user; its JWT is renewed from the broker as it nears expiry.

    With a ``tracker`` (:class:`agp.kernels.query.Tracker`), every cursor reports its progress to it and can be
    cancelled by it.
    """
    import trino

    broker = _broker(broker)
    cred = broker.get("trino")

    class _BrokerJWT(trino.auth.Authentication):
        def set_http_session(self, http_session: Any) -> Any:
            http_session.auth = _Bearer(broker)
            return http_session

        def get_exceptions(self) -> tuple:
            return ()

    from agp.core.clients import tls_session

    session = tls_session(broker.ca_file())
    options = {"catalog": cred["catalog"], "schema": cred["schema"], **kwargs}
    connection_class = trino.dbapi.Connection if tracker is None else _tracked_connection(tracker)
    return connection_class(
        host=cred["host"],
        port=cred["port"],
        user=cred["user"],
        http_scheme="https",
        auth=_BrokerJWT(),
        http_session=session,
        **options,
    )


@functools.cache  # one class per tracker, not one per connection
def _tracked_connection(tracker: Any) -> type:
    import trino

    from .columns import ReadableCursor
    from .frames import FrameConnection

    class TrackedConnection(FrameConnection, trino.dbapi.Connection):
        """Cursors report progress to ``tracker``; ``df()``/``pl()`` build DataFrames column by column; columns
        Trino leaves unnamed get readable names (:mod:`agp.kernels.columns`)."""

        def cursor(self, *args: Any, **kwargs: Any):
            kwargs.setdefault("stats_callback", tracker.callback)
            cursor = ReadableCursor(super().cursor(*args, **kwargs))
            tracker.watch(cursor)
            self.remember(cursor)
            return cursor

    return TrackedConnection


class _Bearer:
    """A requests auth (any callable that takes and returns the prepared request): the broker's current JWT."""

    def __init__(self, broker: BrokerClient):
        self.broker = broker

    def __call__(self, request: Any) -> Any:
        request.headers["Authorization"] = f"Bearer {self.broker.get('trino')['token']}"
        return request


def s3_client(broker: BrokerClient | None = None):
    """A boto3 S3 client whose temporary credentials refresh themselves from the broker."""
    import boto3
    import botocore.session
    from botocore.config import Config
    from botocore.credentials import RefreshableCredentials

    broker = _broker(broker)

    def fetch() -> dict:
        c = broker.get("s3")
        return {
            "access_key": c["access_key_id"],
            "secret_key": c["secret_access_key"],
            "token": c["session_token"],
            "expiry_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(c["expires_at"])),
        }

    cred = broker.get("s3")
    core = botocore.session.get_session()
    core._credentials = RefreshableCredentials.create_from_metadata(fetch(), fetch, "agp-broker")
    return boto3.Session(botocore_session=core).client(
        "s3",
        endpoint_url=cred["endpoint"],
        region_name=cred["region"],
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
    )


def catalog_properties(broker: BrokerClient | None = None) -> dict[str, str]:
    """pyiceberg properties for the workspace's REST catalog (through the workspace service, as this server).

    No S3 key: the catalog's own config supplies the S3 endpoint, and every table it loads or creates comes with the
    caller's bucket-scoped credential (fresh at each load), so a catalog object never holds an expiring key.
    """
    broker = _broker(broker)
    cat = broker.get("catalog")
    return {"type": "rest", "uri": cat["uri"], "token": broker.token, "warehouse": cat["warehouse"]}


def load_catalog(broker: BrokerClient | None = None):
    """A pyiceberg catalog for the workspace; tables loaded from it carry their own short-lived S3 credential."""
    from pyiceberg.catalog import load_catalog as _load

    return _load("workspace", **catalog_properties(broker))


def spark_conf(broker: BrokerClient | None = None, catalog: str = "iceberg") -> dict[str, str]:
    """Spark settings for the workspace's Iceberg catalog and S3 (pure of secrets but the server's token).

    No S3 key is given to Spark: the catalog hands out the caller's bucket-scoped credential with every table it
    loads, and Iceberg's ``VendedCredentialsProvider`` renews it from the catalog before it expires, so a session
    outlives any one credential.
    """
    broker = _broker(broker)
    cat, s3 = broker.get("catalog"), broker.get("s3")
    prefix = f"spark.sql.catalog.{catalog}"
    return {
        prefix: "org.apache.iceberg.spark.SparkCatalog",
        f"{prefix}.type": "rest",
        f"{prefix}.uri": cat["uri"],
        f"{prefix}.warehouse": cat["warehouse"],
        f"{prefix}.io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
        f"{prefix}.s3.endpoint": s3["endpoint"],
        f"{prefix}.s3.path-style-access": "true",
        f"{prefix}.client.region": s3["region"],
        "spark.sql.defaultCatalog": catalog,
    }
