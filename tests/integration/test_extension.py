"""The server extension in a workspace server started from the hub: workspace info and the catalog, as its user."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(user_api, hub_url):
    alice = user_api("alice")
    r = alice.hub("POST", "/users/alice/servers/demo")
    assert r.status_code in (201, 202), r.text
    alice.wait_server("alice", "demo")
    yield lambda path, **kw: alice.http.get(f"{hub_url}/user/alice/demo/agp{path}", timeout=60, **kw)
    alice.hub("DELETE", "/users/alice/servers/demo")


def test_workspace(server):
    ws = server("/workspace").json()
    assert ws["workspace"] == "demo"
    assert ws["trino"] == {"host": "127.0.0.1", "catalog": "iceberg", "schema": "demo"}
    assert ws["s3"]["bucket"] == "agp-ws-demo"


def test_namespaces_and_tables_with_search_and_paging(server, user_api):
    # Only namespaces of alice's workspaces (demo, and any another test of the session gave her).
    mine = {w["namespace"] for w in user_api("alice")("GET", "/workspaces").json() if w.get("namespace")}
    listed = server("/catalog/namespaces").json()["items"]
    assert "demo" in listed and set(listed) <= mine, f"only the workspaces of the user: {listed} vs {sorted(mine)}"
    tables = server("/catalog/namespaces/demo/tables", params={"search": "METER"}).json()
    assert tables["items"] == ["meter_readings"] and tables["total"] == 1
    page = server("/catalog/namespaces/demo/tables", params={"limit": 1, "offset": 0}).json()
    assert page["limit"] == 1 and len(page["items"]) == 1 and page["total"] >= 1


def test_table_detail_has_schema_partitions_snapshots_and_properties(server):
    detail = server("/catalog/namespaces/demo/tables/meter_readings").json()
    assert [c["name"] for c in detail["schema"]] == ["meter_id", "city", "reading_kwh", "day"]
    assert detail["partition_spec"] == []
    assert detail["snapshots"] and detail["snapshots"][0]["operation"] == "append"
    assert detail["location"].startswith("s3://agp-ws-demo/")


def test_preview_runs_through_trino_as_the_user(server):
    rows = server("/catalog/namespaces/demo/tables/meter_readings/preview", params={"limit": 2}).json()
    assert rows["columns"] == ["meter_id", "city", "reading_kwh", "day"]
    # A preview is LIMIT n without ORDER BY: any two of the demo's rows, in the order Trino reads the files (after
    # another test rewrote the table, the second row came first)
    demo = [
        [101, "Bern", 12.5, "2026-11-01"],
        [101, "Bern", 13.1, "2026-11-02"],
        [102, "Oslo", 7.25, "2026-11-01"],
        [102, "Oslo", 7.4, "2026-11-02"],
        [103, "Lima", 3.0, "2026-11-01"],
    ]
    assert len(rows["rows"]) == 2 and rows["rows"][0] != rows["rows"][1]
    assert all(row in demo for row in rows["rows"]), rows["rows"]


def test_another_workspace_is_not_in_the_catalog(server, new_workspace):
    """A namespace of another workspace answers exactly as one that does not exist: 404, in every handler."""
    other = new_workspace()["namespace"]
    for path in (
        f"/catalog/namespaces/{other}/tables",
        f"/catalog/namespaces/{other}/tables/anything",
        "/catalog/namespaces/no_such_ns/tables",
        "/catalog/namespaces/demo/tables/no_such_table",
    ):
        r = server(path)
        assert r.status_code == 404, f"{path}: HTTP {r.status_code}"
        assert other not in r.text.replace(f"namespaces/{other}", "")
    r = server(f"/catalog/namespaces/{other}/tables/anything/preview")
    missing = server("/catalog/namespaces/no_such_ns/tables/anything/preview")
    # Trino itself words the two apart ("Table ... does not exist" / "Schema ... does not exist"); neither has data.
    assert r.status_code == missing.status_code == 404


def test_handlers_require_login(hub_url):
    import requests

    r = requests.get(f"{hub_url}/user/alice/demo/agp/workspace", allow_redirects=False, timeout=30)
    assert r.status_code in (302, 401, 403)


def test_table_detail_lists_the_tables_history(server, catalog):
    """Every commit is in the detail's snapshots (Nessie 0.99 kept the current one only)."""
    import uuid

    import pyarrow as pa

    name = f"demo.history_{uuid.uuid4().hex[:8]}"
    table = catalog.create_table(name, pa.schema([("n", pa.int64())]))
    try:
        for n in range(3):
            table.append(pa.table({"n": [n]}))
        detail = server(f"/catalog/namespaces/demo/tables/{name.split('.')[1]}").json()
        snapshots = detail["snapshots"]
        assert [s["operation"] for s in snapshots] == ["append"] * 3
        assert len({s["snapshot_id"] for s in snapshots}) == 3
        assert detail["current_snapshot_id"] == table.refresh().current_snapshot().snapshot_id
    finally:
        catalog.purge_table(name)
