"""The seed's Phase 1 verification against the real lab: S3, the Iceberg REST catalog and Trino agree."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pyarrow as pa
import pytest

pytestmark = pytest.mark.integration


def test_file_put_into_minio_is_listed_back(lab, s3, settings):
    key = f"tests/{uuid.uuid4().hex}/hello.txt"
    s3.put_object(Bucket=settings.warehouse_bucket, Key=key, Body=b"hello antigravity")
    try:
        listed = s3.list_objects_v2(Bucket=settings.warehouse_bucket, Prefix=key.rsplit("/", 1)[0])
        assert [o["Key"] for o in listed.get("Contents", [])] == [key]
        body = s3.get_object(Bucket=settings.warehouse_bucket, Key=key)["Body"].read()
        assert body == b"hello antigravity"
    finally:
        s3.delete_object(Bucket=settings.warehouse_bucket, Key=key)


def test_table_written_by_pyiceberg_is_read_by_trino(catalog, trino_conn, new_namespace):
    ns = new_namespace()
    rows = {"id": [1, 2, 3], "city": ["Bern", "Oslo", "Lima"], "load_mw": [12.5, 7.25, 3.0]}
    table = catalog.create_table(
        f"{ns}.readings",
        schema=pa.schema([("id", pa.int64()), ("city", pa.string()), ("load_mw", pa.float64())]),
    )
    table.append(pa.table(rows))

    cur = trino_conn.cursor()
    cur.execute(f'SELECT id, city, load_mw FROM iceberg."{ns}".readings ORDER BY id')
    assert cur.fetchall() == [list(r) for r in zip(*rows.values(), strict=True)]


def test_table_written_by_trino_is_read_by_pyiceberg(catalog, trino_conn, new_namespace):
    ns = new_namespace()
    cur = trino_conn.cursor()
    cur.execute(f'CREATE TABLE iceberg."{ns}".squares AS SELECT n, n * n AS square FROM UNNEST(sequence(1, 5)) AS t(n)')
    assert cur.fetchall() == [[5]]

    got = catalog.load_table(f"{ns}.squares").scan().to_arrow().sort_by("n").to_pydict()
    assert got == {"n": [1, 2, 3, 4, 5], "square": [1, 4, 9, 16, 25]}


def test_trino_sees_a_catalog_namespace_as_a_schema(catalog, trino_conn, new_namespace):
    ns = new_namespace()
    cur = trino_conn.cursor()
    cur.execute("SHOW SCHEMAS FROM iceberg")
    assert ns in {row[0] for row in cur.fetchall()}


def test_doctor_checks_every_service_and_lists_buckets(lab, settings):
    out = subprocess.run(
        [sys.executable, "-m", "agp.compose.cli", "doctor", "--json"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["ok"] is True
    names = {c["name"] for c in result["checks"]}
    catalog = "nessie" if settings.catalog == "nessie" else "catalog"
    assert {"postgres health", "minio health", f"{catalog} health", "trino health", "keycloak health"} <= names
    assert settings.warehouse_bucket in result["buckets"]


def test_doctor_fails_clearly_when_a_service_is_unreachable(spare_settings, tmp_path):
    # A lab that is not running: every check fails, nothing raises, the exit code says so.
    from agp.compose.doctor import run_checks

    result = run_checks(spare_settings())
    assert result["ok"] is False
    assert all(not c["ok"] for c in result["checks"])
    assert result["buckets"] == []
