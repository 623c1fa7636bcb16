"""Benchmark of catalog listing at scale, side by side in one run.

    python3 tests/bench/bench_catalog.py [--runs 3]

2,000 Iceberg tables across 200 namespaces: 200 workspaces where alice is an editor (written straight into the
workspace database, as ``bench_hub.py`` does), 10 one-column tables each (made with pyiceberg on the lab's catalog).

1. Through the server extension's REST API in a hub-started server of alice: the first page of namespaces, and
   the full listing (every page of namespaces, then the tables of each namespace), each at the extension's
   default page of 100. Cold in a freshly started server, cold in a warm server whose cache has expired, and
   cached.
2. The same listing with plain pyiceberg straight against the lab's catalog (the plain tool): ``list_namespaces()``
   (what the first page needs too), then ``list_tables()`` of each of alice's namespaces; cold with a freshly loaded
   catalog, warm with a reused one. For the breakdown, also pyiceberg through the workspace service's catalog proxy as
   alice (what the extension does inside).

Needs the lab running (`agp lab up`); removes everything it made (server, tables, namespaces and their S3 objects,
workspaces and their audit entries).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from pyiceberg.exceptions import CommitFailedException, NoSuchNamespaceError, NoSuchTableError, RESTError
from pyiceberg.schema import Schema
from pyiceberg.types import IntegerType, NestedField
from sqlalchemy import delete
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hubclient import Api, HubSession

from agp.core import clients
from agp.core.models import AuditEvent, Membership, Role, State, Workspace
from agp.core.names import WorkspaceNames
from agp.core.settings import Settings
from agp.extension.app import AgpExtension
from agp.hub import db
from agp.kernels.credentials import BrokerClient
from agp.kernels.credentials import load_catalog as workspace_catalog

N_WS, N_TABLES = 200, 10
SCHEMA = Schema(NestedField(1, "x", IntegerType(), required=False))


def p50(xs: list[float]) -> float:
    return statistics.median(xs)


def retried(fn: Callable, *args) -> None:
    """Nessie gives up on a commit that keeps conflicting (many drops at once on one branch): try it again."""
    for attempt in range(6):
        try:
            fn(*args)
            return
        except (NoSuchTableError, NoSuchNamespaceError):  # an earlier attempt did it after all
            return
        except (CommitFailedException, RESTError):
            if attempt == 5:
                raise
            time.sleep(0.5 * 2**attempt)


class Fixture:
    """200 workspaces with alice as editor, a namespace each (under one S3 prefix) and 10 tables in each."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.tag = uuid.uuid4().hex[:6]
        self.slugs = [f"bench-cat-{self.tag}-{i:03d}" for i in range(N_WS)]
        self.namespaces = [WorkspaceNames(s).namespace for s in self.slugs]
        self.prefix = f"bench-catalog-{self.tag}/"
        self.catalog = clients.load_catalog(settings)
        self.engine = db.make_engine(settings.db_url)

    def make(self) -> None:
        t0 = time.perf_counter()
        with Session(self.engine) as s, s.begin():
            for slug in self.slugs:
                names = WorkspaceNames(slug)
                ws = Workspace(
                    slug=slug,
                    display_name=slug,
                    description="bench_catalog",
                    state=State.ready,
                    created_by="bench",
                    group_role=Role.editor,
                    bucket=names.bucket,
                    namespace=names.namespace,
                    trino_schema=names.schema,
                )
                ws.members = [
                    Membership(username="admin", role=Role.owner, added_by="bench"),
                    Membership(username="alice", role=Role.editor, added_by="bench"),
                ]
                s.add(ws)
        base = f"s3://{self.settings.warehouse_bucket}/{self.prefix}"
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda ns: self.catalog.create_namespace(ns, {"location": base + ns}), self.namespaces))
            idents = [f"{ns}.t{j:02d}" for ns in self.namespaces for j in range(N_TABLES)]
            list(pool.map(lambda ident: self.catalog.create_table(ident, SCHEMA), idents))
        print(f"made {N_WS} workspaces, {N_WS} namespaces and {len(idents)} tables in {time.perf_counter() - t0:.0f} s")

    def remove(self) -> None:
        made = set(self.namespaces) & {ns[0] for ns in self.catalog.list_namespaces()}

        def drop(ns: str) -> None:
            for ident in self.catalog.list_tables(ns):
                retried(self.catalog.purge_table, ident)
            retried(self.catalog.drop_namespace, ns)

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(drop, sorted(made)))
        s3 = clients.s3_client(self.settings)
        objects = 0
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.settings.warehouse_bucket, Prefix=self.prefix
        ):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=self.settings.warehouse_bucket, Delete={"Objects": keys, "Quiet": True})
                objects += len(keys)
        with self.engine.begin() as conn:
            conn.execute(delete(AuditEvent).where(AuditEvent.target.in_(self.slugs)))
            conn.execute(delete(Workspace).where(Workspace.slug.in_(self.slugs)))
        self.engine.dispose()
        print(f"removed {len(made)} namespaces with their tables, {objects} S3 objects and {N_WS} workspaces")


class Server:
    """alice's hub-started server of the first bench workspace; its extension answers the catalog calls."""

    def __init__(self, settings: Settings, alice: Api, slug: str):
        self.settings, self.alice, self.slug = settings, alice, slug
        self.base = f"{settings.hub_url}/user/alice/{slug}/agp/catalog"

    def start(self) -> None:
        r = self.alice.hub("POST", f"/users/alice/servers/{self.slug}")
        assert r.status_code in (201, 202), r.text
        self.alice.wait_server("alice", self.slug)

    def stop(self, remove: bool = False) -> None:
        self.alice.hub("DELETE", f"/users/alice/servers/{self.slug}", json={"remove": remove})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.slug not in self.alice.hub("GET", "/users/alice").json().get("servers", {}):
                break
            time.sleep(0.3)
        if remove:
            shutil.rmtree(self.settings.lab_dir / "homes" / "alice" / "workspaces" / self.slug, ignore_errors=True)

    def get(self, path: str, **params) -> dict:
        r = self.alice.http.get(f"{self.base}{path}", params=params, timeout=300)
        if r.status_code != 200 and "/tables" in path:
            return {"items": [], "total": 0}  # another client dropped that workspace meanwhile
        r.raise_for_status()
        return r.json()

    def listing(self) -> tuple[float, float, dict[str, list[str]]]:
        """(first page ms, full listing ms, tables by namespace), paging as a client of the extension does."""
        t0 = time.perf_counter()
        doc = self.get("/namespaces")
        first = time.perf_counter() - t0
        namespaces = list(doc["items"])
        while len(namespaces) < doc["total"]:
            doc = self.get("/namespaces", offset=len(namespaces))
            namespaces += doc["items"]
        tables = {}
        for ns in namespaces:
            doc = self.get(f"/namespaces/{ns}/tables")
            items = list(doc["items"])
            while len(items) < doc["total"]:
                doc = self.get(f"/namespaces/{ns}/tables", offset=len(items))
                items += doc["items"]
            tables[ns] = items
        return first * 1000, (time.perf_counter() - t0) * 1000, tables


def pyiceberg_listing(make_catalog: Callable, only: set[str]) -> tuple[float, float, int]:
    """(namespaces ms, full listing ms, tables) with plain pyiceberg; ``make_catalog`` is timed as part of both."""
    t0 = time.perf_counter()
    cat = make_catalog()
    namespaces = [".".join(ns) for ns in cat.list_namespaces()]
    first = time.perf_counter() - t0
    n = 0
    for ns in namespaces:
        if ns in only:
            with contextlib.suppress(NoSuchNamespaceError):  # another client dropped it meanwhile
                n += len(cat.list_tables(ns))
    return first * 1000, (time.perf_counter() - t0) * 1000, n


def check_complete(fixture: Fixture, tables: dict[str, list[str]]) -> None:
    full = [ns for ns in fixture.namespaces if len(tables.get(ns, [])) == N_TABLES]
    total = sum(len(tables.get(ns, [])) for ns in fixture.namespaces)
    print(
        f"extension listing: {len(tables)} namespaces of alice; bench namespaces complete {len(full)}/{N_WS}, "
        f"tables {total}/{N_WS * N_TABLES}"
    )
    if len(full) != N_WS:
        raise SystemExit("the extension's listing is incomplete")


def report(res: dict[str, list[tuple[float, float]]]) -> None:
    print(
        f"\nCatalog listing, {N_WS * N_TABLES:,} tables in {N_WS} namespaces (+ alice's others), p50 in ms; "
        f"'first' = first page of namespaces (pyiceberg: list_namespaces()), 'full' = all namespaces and tables:"
    )
    med = {name: (p50([f for f, _ in xs]), p50([t for _, t in xs]), len(xs)) for name, xs in res.items()}
    for name, (first, full, n) in med.items():
        print(f"  {name:<42} first {first:8.1f}  full {full:9.1f}   (n={n})")
    pairs = [
        ("extension, cold (fresh server)", "pyiceberg direct, cold (new catalog)"),
        ("extension, cold (cache expired)", "pyiceberg direct, warm (reused catalog)"),
        ("extension, cached", "pyiceberg direct, warm (reused catalog)"),
        ("pyiceberg via proxy as alice, cold", "pyiceberg direct, cold (new catalog)"),
    ]
    print("Ratios (first / full):")
    for a, b in pairs:
        print(f"  {a} vs {b}: {med[a][0] / med[b][0]:.2f} / {med[a][1] / med[b][1]:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="fresh-server (and expired-cache) runs; 3 by default")
    args = parser.parse_args()
    settings = Settings()
    session = HubSession(settings.hub_url)
    session.login("alice", settings.credentials.demo_password.get_secret_value())
    token = session.new_token("alice")
    alice = Api(settings.hub_url, token)
    ttl = AgpExtension.catalog_ttl.default_value

    fixture = Fixture(settings)
    server = Server(settings, alice, fixture.slugs[0])
    res: dict[str, list[tuple[float, float]]] = {}

    def alice_catalog():
        """What the extension loads: the workspace's catalog through the proxy, with a new broker client."""
        return workspace_catalog(BrokerClient(f"{settings.hub_url}/services/workspaces", token, fixture.slugs[0]))

    def add(name: str, first: float, full: float) -> None:
        res.setdefault(name, []).append((first, full))

    try:
        fixture.make()
        mine: set[str] = set()
        direct = clients.load_catalog(settings)
        for run in range(args.runs):
            server.start()
            t0 = time.monotonic()
            first, full, tables = server.listing()
            add("extension, cold (fresh server)", first, full)
            for _ in range(3):
                first, full, _t = server.listing()
                add("extension, cached", first, full)
            if time.monotonic() - t0 > ttl:
                print(f"  note: run {run} outlived the {ttl:.0f} s cache; some 'cached' answers were fetched again")
            if run == 0:
                check_complete(fixture, tables)
            mine = set(tables)
            server.stop()

            first, full, n = pyiceberg_listing(lambda: clients.load_catalog(settings), mine)
            add("pyiceberg direct, cold (new catalog)", first, full)
            for _ in range(3):
                first, full, n = pyiceberg_listing(lambda: direct, mine)
                add("pyiceberg direct, warm (reused catalog)", first, full)
            first, full, n_proxy = pyiceberg_listing(alice_catalog, mine)
            add("pyiceberg via proxy as alice, cold", first, full)
            if run == 0:
                print(f"pyiceberg listings: direct {n} tables, via the proxy {n_proxy} tables")

        server.start()
        server.listing()
        for _ in range(args.runs):
            time.sleep(ttl + 1)
            first, full, _t = server.listing()
            add("extension, cold (cache expired)", first, full)
        report(res)  # before the clean-up, whose failure would otherwise lose the figures
    finally:
        server.stop(remove=True)
        fixture.remove()

    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except requests.RequestException as e:
        sys.exit(f"bench_catalog: {e}")
