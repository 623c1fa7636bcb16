"""Where a run's files are kept once written: the workspace's own bucket, under ``.agp-jobs/runs/<run id>/``.

The service writes them with a credential of that bucket alone (the broker's), so a run's log and executed
notebook sit beside the workspace's tables, are backed up and removed with them, and count against its storage.
"""

from __future__ import annotations

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from agp.core.names import WorkspaceNames

from ..broker import Broker

PREFIX = ".agp-jobs/runs"


def run_prefix(run_id: int) -> str:
    return f"{PREFIX}/{run_id}/"


class RunStorage:
    def __init__(self, broker: Broker):
        self.broker = broker

    def _client(self, slug: str):
        bucket = WorkspaceNames(slug).bucket
        c = self.broker.s3_bucket("agp-jobs", bucket, writable=True, label=f"jobs-{slug}")
        client = boto3.client(
            "s3",
            endpoint_url=c["endpoint"],
            region_name=c["region"],
            aws_access_key_id=c["access_key_id"],
            aws_secret_access_key=c["secret_access_key"],
            aws_session_token=c["session_token"],
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
        )
        return client, bucket

    def put(self, slug: str, key: str, data: bytes, content_type: str) -> str:
        client, bucket = self._client(slug)
        client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
        return key

    def get(self, slug: str, key: str) -> bytes | None:
        client, bucket = self._client(slug)
        try:
            return client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise

    def put_log(self, slug: str, run_id: int, attempt: int, data: bytes) -> str:
        return self.put(slug, f"{run_prefix(run_id)}attempt-{attempt}.log", data, "text/plain; charset=utf-8")

    def put_output(self, slug: str, run_id: int, notebook: bytes) -> str:
        return self.put(slug, f"{run_prefix(run_id)}output.ipynb", notebook, "application/x-ipynb+json")

    def logs(self, slug: str, run_id: int, attempts: int) -> bytes:
        """The logs of attempts 1..``attempts`` one after the other."""
        out = b""
        for n in range(1, attempts + 1):
            data = self.get(slug, f"{run_prefix(run_id)}attempt-{n}.log")
            if data is not None:
                out += data
        return out

    def delete_run(self, slug: str, run_id: int) -> None:
        client, bucket = self._client(slug)
        listed = client.list_objects_v2(Bucket=bucket, Prefix=run_prefix(run_id))
        keys = [{"Key": o["Key"]} for o in listed.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
