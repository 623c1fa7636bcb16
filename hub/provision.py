"""Provisioning a workspace's data plane: its bucket, its Iceberg namespace, and Trino's view of it.

One idempotent action. Each step first looks whether its resource exists; what this attempt created is removed
again when a later step fails, so a failure never leaves an orphan, and a retry completes the work.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from agp.core import clients
from agp.core.names import WorkspaceNames
from agp.core.settings import Settings

log = logging.getLogger(__name__)


SCHEMA_QUERY = "SELECT schema_name FROM iceberg.information_schema.schemata WHERE schema_name = ?"


class ProvisionError(RuntimeError):
    """A provisioning step failed; ``str()`` is the sentence for the user, ``step`` names the step."""

    def __init__(self, step: str, message: str):
        super().__init__(message)
        self.step = step


@dataclass
class Outcome:
    bucket: str
    namespace: str
    trino_schema: str
    created: list[str] = field(default_factory=list)


class Provisioner:
    def __init__(self, settings: Settings, trino_timeout: float = 20.0):
        self.settings = settings
        self.trino_timeout = trino_timeout

    def provision(self, names: WorkspaceNames) -> Outcome:
        created: list[tuple[str, str]] = []
        try:
            step = "bucket"
            if self._ensure_bucket(names.bucket):
                created.append(("bucket", names.bucket))
            step = "namespace"
            if self._ensure_namespace(names):
                created.append(("namespace", names.namespace))
            step = "trino"
            self._check_trino(names.schema)
        except Exception as e:
            log.exception("provisioning %s failed at step %s", names.slug, step)
            self._rollback(created)
            raise ProvisionError(step, _sentence(step, e)) from e
        return Outcome(names.bucket, names.namespace, names.schema, [f"{kind}:{name}" for kind, name in created])

    # -- steps; each returns True when it created something
    def _ensure_bucket(self, bucket: str) -> bool:
        from botocore.exceptions import ClientError

        s3 = clients.provisioner_s3_client(self.settings)
        try:  # provisioning may neither list the store's buckets nor look into one: it asks for the bucket
            s3.create_bucket(Bucket=bucket)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") == "BucketAlreadyOwnedByYou":
                return False
            raise
        return True

    def _ensure_namespace(self, names: WorkspaceNames) -> bool:
        from pyiceberg.exceptions import NamespaceAlreadyExistsError

        catalog = clients.load_catalog(self.settings)
        if (names.namespace,) in catalog.list_namespaces():
            return False
        try:
            catalog.create_namespace(
                names.namespace, {"location": f"s3://{names.bucket}/", "agp.workspace": names.slug}
            )
        except NamespaceAlreadyExistsError:
            return False
        return True

    def _check_trino(self, schema: str) -> None:
        deadline = time.monotonic() + self.trino_timeout
        with clients.trino_connect(self.settings) as conn:
            cur = conn.cursor()
            while True:
                cur.execute(
                    "SELECT schema_name FROM iceberg.information_schema.schemata WHERE schema_name = ?", [schema]
                )
                if cur.fetchall():
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Trino does not show schema {schema} after {self.trino_timeout:.0f} s")
                time.sleep(0.5)

    def _rollback(self, created: list[tuple[str, str]]) -> None:
        for kind, name in reversed(created):
            try:
                if kind == "namespace":
                    clients.load_catalog(self.settings).drop_namespace(name)
                elif kind == "bucket":
                    clients.provisioner_s3_client(self.settings).delete_bucket(Bucket=name)
                log.info("rolled back %s %s", kind, name)
            except Exception:
                log.exception("rolling back %s %s failed; it is left for the next attempt to adopt", kind, name)


def _sentence(step: str, error: Exception) -> str:
    what = {
        "bucket": "the S3 store (MinIO) could not create the workspace bucket",
        "namespace": "the Iceberg REST catalog could not create the namespace",
        "trino": "Trino could not confirm the workspace schema",
    }[step]
    return f"Provisioning failed: {what} ({type(error).__name__}). Fix the service, then retry."
