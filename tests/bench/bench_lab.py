"""Benchmarks of the mini-lab, printed as figures and ratios measured side by side in one run.

    python3 tests/bench/bench_lab.py [--skip-restart]

1. `agp lab up` with warm caches on stopped processes (existing state), and on a fresh lab folder (first boot:
   initdb, Keycloak's schema and realm import); per-service ready times and resident memory.
2. Trino `SELECT 1` round trip through the `trino` client against a raw HTTP POST of the same statement
   (p50 and p95 over 50 runs each).
3. `SELECT count(*)` over a 1,000,000-row Iceberg table written with pyiceberg, Trino against a pyiceberg scan.

It stops and restarts the default lab; it leaves it running.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import pyarrow as pa

from agp.compose.lab import Lab
from agp.core import clients
from agp.core.settings import Settings


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def memory(lab: Lab) -> dict[str, float]:
    """Resident memory in MiB of each service's whole process tree."""
    out = {}
    for name, svc in lab.status()["services"].items():
        try:
            root = psutil.Process(svc["pid"])
            procs = [root, *root.children(recursive=True)]
            out[name] = sum(p.memory_info().rss for p in procs) / 2**20
        except (psutil.Error, TypeError):
            out[name] = float("nan")
    return out


def timed_up(lab: Lab, label: str) -> None:
    t0 = time.monotonic()
    lab.up()
    total = time.monotonic() - t0
    mem = memory(lab)
    print(f"\n[{label}] agp lab up until every health check passed: {total:.1f} s (target < 90 s)")
    for name, ready in lab.timings.items():
        print(f"  {name:<9} ready at {ready:6.1f} s   RSS {mem.get(name, float('nan')):7.0f} MiB")
    print(f"  whole lab RSS {sum(mem.values()) / 1024:.2f} GiB (target < 8 GiB)")


def bench_start(skip_restart: bool) -> Lab:
    lab = Lab(Settings())
    if not skip_restart:
        lab.down(quiet=True)
        timed_up(lab, "warm cache, existing state")
        lab.down(quiet=True)
        with tempfile.TemporaryDirectory(prefix="agp-bench-", dir="/var/tmp") as tmp:
            fresh = Lab(Settings(lab_dir=Path(tmp) / "lab"))
            try:
                timed_up(fresh, "warm cache, fresh lab folder")
            finally:
                fresh.purge()
        lab.up()
    elif not lab.status()["healthy"]:
        lab.up()
    return lab


def bench_select1(settings: Settings, runs: int = 50) -> None:
    conn = clients.trino_connect(settings)
    cur = conn.cursor()

    def via_client() -> None:
        cur.execute("SELECT 1")
        assert cur.fetchall() == [[1]]

    from agp.core.tokens import KeyPaths, mint_trino_token

    keys = KeyPaths(settings.keys_dir)
    token, _ = mint_trino_token(keys.broker_private.read_bytes(), "agp-service")
    http = clients.tls_session(keys.trino_ca)
    http.headers.update({"X-Trino-User": "agp-service", "Authorization": f"Bearer {token}"})

    def via_http() -> None:
        r = http.post(f"{settings.trino_https_url}/v1/statement", data="SELECT 1")
        doc = r.json()
        while "nextUri" in doc:
            doc = http.get(doc["nextUri"]).json()
        assert doc.get("stats", {}).get("state") == "FINISHED", doc

    results = {}
    for name, fn in (("trino client", via_client), ("raw HTTP", via_http)):
        for _ in range(3):
            fn()
        samples = []
        for _ in range(runs):
            t0 = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t0) * 1000)
        results[name] = (pct(samples, 50), pct(samples, 95))
    print(f"\nTrino SELECT 1 round trip over {runs} runs (ms):")
    for name, (p50, p95) in results.items():
        print(f"  {name:<13} p50 {p50:6.1f}   p95 {p95:6.1f}")
    ratio = results["trino client"][0] / results["raw HTTP"][0]
    print(f"  ratio trino client / raw HTTP (p50): {ratio:.2f}")


def bench_count(settings: Settings, rows: int = 1_000_000) -> None:
    catalog = clients.load_catalog(settings)
    ns = f"bench_{uuid.uuid4().hex[:8]}"
    catalog.create_namespace(ns)
    try:
        t0 = time.monotonic()
        data = pa.table({"id": pa.array(range(rows), pa.int64()), "v": pa.array([i % 97 for i in range(rows)])})
        table = catalog.create_table(f"{ns}.big", schema=data.schema)
        table.append(data)
        print(f"\n{rows:,}-row Iceberg table written with pyiceberg in {time.monotonic() - t0:.1f} s")
        cur = clients.trino_connect(settings).cursor()
        trino_s, scan_s = [], []
        for _ in range(5):
            t0 = time.perf_counter()
            cur.execute(f'SELECT count(*) FROM iceberg."{ns}".big')
            assert cur.fetchall() == [[rows]]
            trino_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            n = catalog.load_table(f"{ns}.big").scan(selected_fields=("id",)).to_arrow().num_rows
            assert n == rows
            scan_s.append(time.perf_counter() - t0)
        t, s = statistics.median(trino_s) * 1000, statistics.median(scan_s) * 1000
        print(f"SELECT count(*): Trino p50 {t:.0f} ms, pyiceberg scan p50 {s:.0f} ms, ratio {t / s:.2f}")
    finally:
        for ident in catalog.list_tables(ns):
            catalog.purge_table(ident)
        catalog.drop_namespace(ns)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-restart", action="store_true", help="measure on the running lab only")
    args = parser.parse_args()
    lab = bench_start(args.skip_restart)
    bench_select1(lab.settings)
    bench_count(lab.settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
