"""Catalog listings stay complete past the REST catalog's page size: through the proxy and in the extension.

The catalog pages its Iceberg REST listings when asked for a ``pageSize`` (the proxy advertises ``rest-page-size``
in ``/v1/config``); pyiceberg sends that size and follows ``next-page-token``. The workspace service's catalog proxy
has to pass both through, also on the namespace pages it filters by membership.
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest
from pyiceberg.schema import Schema
from pyiceberg.types import IntegerType, NestedField

pytestmark = pytest.mark.integration

SCHEMA = Schema(NestedField(1, "x", IntegerType(), required=False))


def make_tables(catalog, namespace: str, n: int) -> list[str]:
    names = [f"t{i:04d}" for i in range(n)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda name: catalog.create_table(f"{namespace}.{name}", SCHEMA), names))
    return names


@pytest.fixture
def alice_ws(new_workspace, admin_api) -> dict:
    """A fresh workspace (own namespace) where alice is a viewer."""
    ws = new_workspace()
    r = admin_api("PUT", f"/workspaces/{ws['slug']}/members/alice", json={"role": "viewer"})
    assert r.status_code == 200, r.text
    return ws


@pytest.fixture
def proxy(user_api, settings):
    """``get(path, **params)`` on the catalog proxy as alice, with her hub token as bearer (as pyiceberg sends it)."""
    alice = user_api("alice")
    token = alice.http.headers["Authorization"].split()[1]
    headers = {"Authorization": f"Bearer {token}"}
    base = settings.catalog_proxy_uri

    def get(path: str, **params) -> dict:
        r = alice.http.get(f"{base}{path}", params=params, headers=headers, timeout=60)
        assert r.status_code == 200, r.text
        return r.json()

    config = get("/v1/config", warehouse="warehouse")
    offered = {**config["defaults"], **config["overrides"]}  # as clients merge them
    get.prefix = offered["prefix"]
    get.page_size = int(offered["rest-page-size"])
    get.token = token
    return get


def all_pages(get, path: str, key: str, page_size: int) -> list[list]:
    """Every page of a listing, following ``next-page-token`` with the same ``pageSize``."""
    pages, token = [], None
    while True:
        params = {"pageSize": page_size, **({"pageToken": token} if token else {})}
        doc = get(path, **params)
        pages.append(doc[key])
        token = doc.get("next-page-token")
        if not token:
            return pages
        assert len(pages) < 1000, "the listing does not end"


def test_proxy_passes_page_size_and_token_through(proxy, catalog, alice_ws):
    ns = alice_ws["namespace"]
    names = make_tables(catalog, ns, 7)

    pages = all_pages(proxy, f"/v1/{proxy.prefix}/namespaces/{ns}/tables", "identifiers", 3)
    assert [len(p) for p in pages] == [3, 3, 1]
    assert sorted(i["name"] for p in pages for i in p) == names

    # A user's namespaces come in one page whatever the page size asked: the catalog's page tokens spell the
    # namespace they continue from, which may be another workspace's (the proxy reads every page itself).
    pages = all_pages(proxy, f"/v1/{proxy.prefix}/namespaces", "namespaces", 1)
    seen = [".".join(n) for p in pages for n in p]
    assert len(seen) == len(set(seen)) and {"demo", ns} <= set(seen)
    assert len(pages) == 1


def test_pyiceberg_through_the_proxy_lists_everything_with_a_small_page_size(proxy, settings, catalog, alice_ws):
    from pyiceberg.catalog import load_catalog

    ns = alice_ws["namespace"]
    names = make_tables(catalog, ns, 7)
    small = load_catalog(
        "alice",
        type="rest",
        uri=settings.catalog_proxy_uri,
        token=proxy.token,
        warehouse="warehouse",
        **{"rest-page-size": "2"},
    )
    assert small.properties["rest-page-size"] == "2", "a client's page size wins over the server's default"
    assert sorted(t[-1] for t in small.list_tables(ns)) == names  # every table once (the spec orders nothing)
    assert {("demo",), (ns,)} <= set(small.list_namespaces())


def test_extension_lists_every_table_past_the_servers_page_size(proxy, user_api, hub_url, settings, catalog, alice_ws):
    slug, ns = alice_ws["slug"], alice_ws["namespace"]
    names = make_tables(catalog, ns, proxy.page_size + 5)
    alice = user_api("alice")
    r = alice.hub("POST", f"/users/alice/servers/{slug}")
    assert r.status_code in (201, 202), r.text
    try:
        alice.wait_server("alice", slug)
        base = f"{hub_url}/user/alice/{slug}/agp/catalog"
        tables = alice.http.get(f"{base}/namespaces/{ns}/tables", params={"limit": 1000}, timeout=120).json()
        assert tables["total"] == len(names) and tables["items"] == names
        last = alice.http.get(f"{base}/namespaces/{ns}/tables", params={"offset": 200, "limit": 100}, timeout=60)
        assert last.json()["items"] == names[200:]
        namespaces = alice.http.get(f"{base}/namespaces", params={"limit": 1000}, timeout=60).json()["items"]
        assert {"demo", ns} <= set(namespaces)
    finally:
        alice.hub("DELETE", f"/users/alice/servers/{slug}", json={"remove": True})
        shutil.rmtree(settings.lab_dir / "homes" / "alice" / "workspaces" / slug, ignore_errors=True)
