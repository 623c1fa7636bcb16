"""What a user sees when the catalog says no: the catalog's own reason, in pyiceberg's exception, through the proxy.

Before the catalog change, a commit Nessie rejected reached pyiceberg as ``CommitStateUnknownException: HTTP 400``
(the reason only in Nessie's log). Iceberg's REST catalog answers each rejection with its type and reason, and
a stack trace of the server, which the proxy keeps in the service's log and out of the answer.
"""

from __future__ import annotations

import pyarrow as pa
import pytest
import requests
from pyiceberg.catalog import load_catalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError
from pyiceberg.types import LongType, StringType

pytestmark = pytest.mark.integration


@pytest.fixture
def alice_catalog(new_workspace, admin_api, user_api, settings):
    ws = new_workspace()
    r = admin_api("PUT", f"/workspaces/{ws['slug']}/members/alice", json={"role": "editor"})
    assert r.status_code == 200, r.text
    token = user_api("alice").http.headers["Authorization"].split()[1]
    catalog = load_catalog("alice", type="rest", uri=settings.catalog_proxy_uri, token=token, warehouse="warehouse")
    catalog.token = token
    return catalog, ws["namespace"]


def test_a_rejected_commit_says_why(alice_catalog):
    catalog, ns = alice_catalog
    catalog.create_table(f"{ns}.readings", pa.schema([("meter", pa.int64())]))
    first, second = catalog.load_table(f"{ns}.readings"), catalog.load_table(f"{ns}.readings")
    with first.update_schema() as update:
        update.add_column("unit", StringType())
    # second still holds the schema from before first's change.
    with pytest.raises(CommitFailedException) as failed, second.update_schema() as update:
        update.add_column("quality", LongType())
    message = str(failed.value)
    assert "Requirement failed: current schema changed" in message, message
    assert "at org.apache" not in message and "stack" not in message, f"the server's stack trace leaks: {message}"
    # The first change stands, the second left nothing.
    assert [f.name for f in catalog.load_table(f"{ns}.readings").schema().fields] == ["meter", "unit"]


def test_a_missing_table_is_named(alice_catalog, settings):
    catalog, ns = alice_catalog
    with pytest.raises(NoSuchTableError) as missing:
        catalog.load_table(f"{ns}.nothing_here")
    assert f"{ns}.nothing_here" in str(missing.value)
    # The answer itself, as any HTTP client gets it: the catalog's error object without the server's stack.
    r = requests.get(
        f"{settings.catalog_proxy_uri}/v1/agp/namespaces/{ns}/tables/nothing_here",
        headers={"Authorization": f"Bearer {catalog.token}"},
        timeout=30,
    )
    assert r.status_code == 404
    assert set(r.json()["error"]) == {"message", "type", "code"}, r.json()
    assert r.json()["error"]["type"] == "NoSuchTableException"


def test_a_purge_deletes_the_tables_own_files(alice_catalog, s3):
    """The catalog deletes a purged table's files in the table's own bucket (and only there: test_catalog_attacks)."""
    catalog, ns = alice_catalog
    table = catalog.create_table(f"{ns}.scratch", pa.schema([("n", pa.int64())]))
    for n in range(2):
        table.append(pa.table({"n": [n]}))
    bucket, prefix = table.location().removeprefix("s3://").split("/", 1)
    assert s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/")["KeyCount"] >= 6  # data, manifests, metadata
    catalog.purge_table(f"{ns}.scratch")
    left = s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/").get("Contents", [])
    assert not left, f"the purge left {[o['Key'] for o in left]}"
