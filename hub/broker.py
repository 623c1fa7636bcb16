"""The credential broker: short-lived Trino, S3 and catalog credentials for one (user, workspace).

Each credential carries its expiry. Nothing is handed out unless the membership table says the user belongs to
the workspace at the moment of asking, so a removed member gets nothing new and what they hold runs out.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from agp.core.models import Role
from agp.core.names import WorkspaceNames
from agp.core.settings import Settings
from agp.core.tokens import KeyPaths, mint_trino_token

KINDS = ("trino", "s3", "catalog")
READ_ACTIONS = ["s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"]
WRITE_ACTIONS = [
    *READ_ACTIONS,
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
]


def session_policy(bucket: str, writable: bool) -> dict:
    """The inline policy of a brokered S3 credential: this one bucket, read or read-write, nothing else."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": WRITE_ACTIONS if writable else READ_ACTIONS,
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            }
        ],
    }


@dataclass
class _Cached:
    value: dict
    refresh_at: float


class Broker:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.keys = KeyPaths(settings.keys_dir)
        self._private = self.keys.broker_private.read_bytes()
        self._ca = self.keys.trino_ca.read_text()
        c = settings.credentials
        self._sts = boto3.client(
            "sts",
            endpoint_url=settings.s3_endpoint,
            aws_access_key_id=c.broker_access_key,
            aws_secret_access_key=c.broker_secret_key.get_secret_value(),
            region_name=settings.s3_region,
            config=Config(retries={"max_attempts": 2}, connect_timeout=5),
        )
        self._cache: dict[tuple, _Cached] = {}
        self._lock = threading.Lock()

    def issue(self, kind: str, user: str, names: WorkspaceNames, role: Role) -> dict[str, Any]:
        if kind == "trino":
            return self._trino(user, names)
        if kind == "s3":
            return self._s3(user, names, role)
        if kind == "catalog":
            return self._catalog(names)
        raise ValueError(f"Unknown credential kind {kind!r}; one of {', '.join(KINDS)}.")

    def _trino(self, user: str, names: WorkspaceNames) -> dict[str, Any]:
        token, exp = mint_trino_token(self._private, user, ttl=self.settings.credential_ttl, workspace=names.slug)
        s = self.settings
        return {
            "kind": "trino",
            "token": token,
            "expires_at": exp,
            "user": user,
            "host": s.host_of("trino_https"),
            "port": s.ports.trino_https,
            "http_scheme": "https",
            "catalog": "iceberg",
            "schema": names.schema,
            "ca_certificate": self._ca,
        }

    def _s3(self, user: str, names: WorkspaceNames, role: Role) -> dict[str, Any]:
        return self.s3(user, names, writable=role in (Role.owner, Role.editor))

    def s3(self, user: str, names: WorkspaceNames, writable: bool) -> dict[str, Any]:
        """A temporary S3 credential for the workspace's bucket only, read-write or read-only."""
        return self.s3_bucket(user, names.bucket, writable, names.slug)

    def s3_bucket(self, user: str, bucket: str, writable: bool, label: str | None = None) -> dict[str, Any]:
        """A temporary S3 credential for ``bucket`` only (the broker user's own policy bounds which buckets)."""
        label = label or bucket
        key = ("s3", user, bucket, writable)
        now = time.time()
        with self._lock:
            hit = self._cache.get(key)
            if hit and hit.refresh_at > now:
                return hit.value
        # MinIO's AssumeRole ignores the RoleArn; the session policy is what narrows the credential.
        answer = self._sts.assume_role(
            RoleArn="arn:minio:iam:::role/agp-workspace",
            RoleSessionName=f"{user}-{label}"[:64],
            DurationSeconds=self.settings.credential_ttl,
            Policy=json.dumps(session_policy(bucket, writable)),
        )["Credentials"]
        exp = int(answer["Expiration"].timestamp())
        value = {
            "kind": "s3",
            "access_key_id": answer["AccessKeyId"],
            "secret_access_key": answer["SecretAccessKey"],
            "session_token": answer["SessionToken"],
            "expires_at": exp,
            "endpoint": self.settings.s3_endpoint,
            "region": self.settings.s3_region,
            "bucket": bucket,
            "writable": writable,
        }
        with self._lock:
            # Safe to share for a third of its life: the same user, workspace and rights, checked on each ask.
            self._cache[key] = _Cached(value, now + (exp - now) / 3)
        return value

    def _catalog(self, names: WorkspaceNames) -> dict[str, Any]:
        return {
            "kind": "catalog",
            "uri": self.settings.catalog_proxy_uri,
            "warehouse": "warehouse",
            "namespace": names.namespace,
            "expires_at": None,
            "auth": "the server's hub token as a bearer token; the workspace service authorizes each namespace",
        }
