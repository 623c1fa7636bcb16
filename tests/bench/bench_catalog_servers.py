"""Benchmark of the catalog servers themselves: Apache Iceberg's REST catalog (the lab's AgpRestCatalog) against
Nessie 0.99, side by side in one run.

    nice python3 tests/bench/bench_catalog_servers.py [--runs 3] [--log-dir DIR]

Starts, on spare ports, a Nessie 0.99 (the lab's jar and configuration, authentication off, its own temporary
database) and a second AgpRestCatalog (as the lab runs it, its own temporary database and token), both in the lab's
PostgreSQL and MinIO (``tests/catalogs.py``). Makes the same 2,000 one-column tables in 200 namespaces in each with
pyiceberg (8 threads), then times, interleaved call by call and alternating which server goes first:

- ``list_namespaces()`` (10 calls a run),
- ``list_tables()`` of every namespace,
- ``load_table()`` of every table (pyiceberg, metadata parsed), and the same GET as plain HTTP (the server alone),

each with a warm pyiceberg catalog per server, ``--runs`` times. Prints per-call p50/p95 per server and the ratio
new/Nessie. Needs the lab running (its PostgreSQL and MinIO only); removes what it made (both processes, both
databases, the S3 objects under its prefix), also when interrupted.

Measured 2026-12-02 on the 2-core lab machine, shared (under ``nice``), Iceberg 1.10.1 against Nessie 0.99, ms per call
p50 / p95 (ratio new/Nessie of p50), 3 runs / 5 runs:

    list_namespaces (200)     3.7 / 12.2 vs 24.8 / 55.0 (0.15)    4.4 /  8.6 vs 39.1 / 85.4 (0.11)
    list_tables (10 each)     3.0 /  7.4 vs  7.6 / 20.4 (0.39)    2.8 /  7.9 vs  9.7 / 23.5 (0.29)
    load_table (pyiceberg)    6.0 / 14.0 vs  7.4 / 20.7 (0.81)    7.0 / 22.6 vs 10.6 / 36.0 (0.66)
    load_table (plain HTTP)   5.2 / 10.4 vs  6.1 / 15.3 (0.85)    5.9 / 22.9 vs  8.5 / 33.5 (0.69)
    making the 2,000 tables   23 s vs 90 s                        43 s vs 90 s
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from pyiceberg.exceptions import (
    CommitFailedException,
    NamespaceAlreadyExistsError,
    ServerError,
    TableAlreadyExistsError,
)
from pyiceberg.schema import Schema
from pyiceberg.types import IntegerType, NestedField

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import catalogs

from agp.core import clients
from agp.core.settings import Settings

SCHEMA = Schema(NestedField(1, "x", IntegerType(), required=False))
NEW, OLD = "iceberg-rest", "nessie"


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def retried(fn: Callable, *args) -> None:
    """Nessie may give up on a commit that keeps conflicting (many writers on one branch), and the lab's PostgreSQL
    or MinIO may be restarted by someone else's test meanwhile: try it again, for up to a minute."""
    deadline = time.monotonic() + 60
    while True:
        try:
            fn(*args)
            return
        except (NamespaceAlreadyExistsError, TableAlreadyExistsError):  # an earlier attempt did it after all
            return
        except (CommitFailedException, ServerError, requests.RequestException):
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def make(server: catalogs.CatalogServer, namespaces: list[str], tables: int, base: str, threads: int) -> float:
    """The same namespaces (located under ``base``) and tables in ``server``; seconds taken."""
    cat = server.pyiceberg()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        located = {ns: {"location": f"{base}{server.name}/{ns}"} for ns in namespaces}
        list(pool.map(lambda ns: retried(cat.create_namespace, ns, located[ns]), namespaces))
        idents = [f"{ns}.t{j:02d}" for ns in namespaces for j in range(tables)]
        list(pool.map(lambda ident: retried(cat.create_table, ident, SCHEMA), idents))
    return time.perf_counter() - t0


def check(cat, namespaces: list[str], tables: int, name: str) -> None:
    listed = {ns[0] for ns in cat.list_namespaces()}
    missing = set(namespaces) - listed
    short = [ns for ns in namespaces if len(cat.list_tables(ns)) != tables]
    if missing or short:
        raise SystemExit(f"{name}: {len(missing)} namespaces missing, {len(short)} with fewer than {tables} tables")


class Timer:
    def __init__(self) -> None:
        self.samples: dict[tuple[str, str], list[float]] = {}
        self.passes: dict[tuple[str, str], list[float]] = {}
        self.errors: dict[str, int] = {}

    def call(self, op: str, server: str, fn: Callable) -> None:
        """Time ``fn``; a call that fails (the lab's PostgreSQL or MinIO restarted under both servers by someone
        else) is counted, not timed, and made again until it answers, for up to a minute."""
        deadline = time.monotonic() + 60
        while True:
            t0 = time.perf_counter()
            try:
                fn()
                break
            except (ServerError, requests.RequestException) as e:
                self.errors[server] = self.errors.get(server, 0) + 1
                if time.monotonic() > deadline:
                    raise
                print(f"  {server} {op} failed ({str(e)[:120]}); again in 1 s")
                time.sleep(1)
        elapsed = (time.perf_counter() - t0) * 1000
        self.samples.setdefault((op, server), []).append(elapsed)
        key = (op, server)
        self._pass[key] = self._pass.get(key, 0.0) + elapsed

    def start_pass(self) -> None:
        self._pass: dict[tuple[str, str], float] = {}

    def end_pass(self) -> None:
        for key, total in self._pass.items():
            self.passes.setdefault(key, []).append(total)


def measure(servers: dict[str, catalogs.CatalogServer], namespaces: list[str], tables: int, runs: int) -> Timer:
    cats = {name: srv.pyiceberg() for name, srv in servers.items()}
    http = {name: requests.Session() for name in servers}
    for name, srv in servers.items():
        http[name].headers.update(srv.headers())

    def table_url(name: str, ns: str, table: str) -> str:
        srv = servers[name]
        prefix = [srv.prefix] if srv.prefix else []
        return "/".join([srv.uri, "v1", *prefix, "namespaces", ns, "tables", table])

    def raw_load(name: str, ns: str, table: str) -> None:
        r = http[name].get(table_url(name, ns, table), timeout=60)
        r.raise_for_status()
        r.content  # noqa: B018 (read the whole body)

    # Warm-up: every server's pyiceberg client, connections and JIT see each kind of call first.
    for name, cat in cats.items():
        for ns in namespaces[:20]:
            cat.list_namespaces()
            cat.list_tables(ns)
            cat.load_table(f"{ns}.t00")
            raw_load(name, ns, "t00")

    timer = Timer()
    for run in range(runs):
        order = [NEW, OLD] if run % 2 == 0 else [OLD, NEW]
        timer.start_pass()
        for _ in range(10):
            for name in order:
                timer.call("list_namespaces", name, cats[name].list_namespaces)
        for ns in namespaces:
            for name in order:
                timer.call("list_tables", name, lambda n=name, ns=ns: cats[n].list_tables(ns))
        for ns in namespaces:
            for j in range(tables):
                for name in order:
                    timer.call("load_table", name, lambda n=name, i=f"{ns}.t{j:02d}": cats[n].load_table(i))
        for ns in namespaces:
            for j in range(tables):
                for name in order:
                    timer.call("load_table, plain HTTP", name, lambda n=name, ns=ns, t=f"t{j:02d}": raw_load(n, ns, t))
        timer.end_pass()
        print(f"  run {run + 1}/{runs} done")
    return timer


def report(timer: Timer, n_ns: int, n_tables: int, runs: int, made: dict[str, float]) -> None:
    print(
        f"\nCatalog servers, {n_ns * n_tables:,} tables in {n_ns} namespaces, {runs} interleaved runs; per call, ms "
        f"(p50 / p95), and ratio {NEW}/{OLD} (below 1: the new catalog is faster)"
    )
    ops = ["list_namespaces", "list_tables", "load_table", "load_table, plain HTTP"]
    for op in ops:
        new, old = timer.samples[(op, NEW)], timer.samples[(op, OLD)]
        print(
            f"  {op:<24} {NEW}: {pct(new, 50):7.2f} / {pct(new, 95):7.2f}   {OLD}: {pct(old, 50):7.2f} / "
            f"{pct(old, 95):7.2f}   ratio p50 {pct(new, 50) / pct(old, 50):.2f}, p95 {pct(new, 95) / pct(old, 95):.2f}"
            f"   (n={len(new)} each)"
        )
    print("Whole pass (every namespace's tables, every table loaded), median of runs, s:")
    for op in ops[1:]:
        new, old = statistics.median(timer.passes[(op, NEW)]), statistics.median(timer.passes[(op, OLD)])
        print(f"  {op:<24} {NEW}: {new / 1000:6.1f}   {OLD}: {old / 1000:6.1f}   ratio {new / old:.2f}")
    if timer.errors:
        print(f"Failed calls, made again and not timed: {timer.errors}")
    print(
        f"Making the {n_ns} namespaces and {n_ns * n_tables:,} tables (8 threads, one server after the other): "
        f"{NEW} {made[NEW]:.0f} s, {OLD} {made[OLD]:.0f} s, ratio {made[NEW] / made[OLD]:.2f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs over every table (3)")
    parser.add_argument("--namespaces", type=int, default=200, help="namespaces (200)")
    parser.add_argument("--tables", type=int, default=10, help="tables per namespace (10)")
    parser.add_argument("--threads", type=int, default=8, help="pyiceberg threads making the tables (8)")
    parser.add_argument("--log-dir", type=Path, help="where the two servers' logs go (default: the work folder)")
    args = parser.parse_args()
    settings = Settings()
    tag = uuid.uuid4().hex[:6]
    namespaces = [f"bcs_{tag}_{i:03d}" for i in range(args.namespaces)]
    prefix = f"bench-catalog-servers-{tag}/"
    base = f"s3://{settings.warehouse_bucket}/{prefix}"
    work = Path(tempfile.mkdtemp(prefix="agp-bench-catalogs-", dir="/var/tmp"))
    logs = args.log_dir or work
    s3 = clients.s3_client(settings)
    try:
        with contextlib.ExitStack() as stack:
            t0 = time.perf_counter()
            servers = {
                NEW: stack.enter_context(catalogs.rest_catalog(settings, work / "rest", logs / f"catalog-{tag}.log")),
                OLD: stack.enter_context(catalogs.nessie(settings, work / "nessie", logs / f"nessie-{tag}.log")),
            }
            print(f"started both servers in {time.perf_counter() - t0:.0f} s (logs in {logs})")
            made = {name: make(srv, namespaces, args.tables, base, args.threads) for name, srv in servers.items()}
            for name, srv in servers.items():
                check(srv.pyiceberg(), namespaces, args.tables, name)
            print(f"made {len(namespaces)} namespaces and {len(namespaces) * args.tables:,} tables in each")
            timer = measure(servers, namespaces, args.tables, args.runs)
            report(timer, len(namespaces), args.tables, args.runs, made)
    finally:  # the processes and databases are gone by now (the contexts above); the S3 objects stay: remove them
        n = catalogs.delete_prefix(s3, settings.warehouse_bucket, prefix)
        shutil.rmtree(work, ignore_errors=True)
        print(
            f"removed both servers, their databases and {n} S3 objects under s3://{settings.warehouse_bucket}/{prefix}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
