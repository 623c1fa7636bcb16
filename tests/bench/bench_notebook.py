"""Benchmarks of the notebook helpers, side by side in one run.

    python3 tests/bench/bench_notebook.py

1. ``%sql SELECT 1`` (jupysql in a real IPython shell) against the raw ``trino`` DBAPI cursor on the same
   server and credentials, interleaved, p50 over 50 runs each.
2. A 1,000,000-row result into pandas: ``df = %sql ...`` against the raw cursor plus ``pandas.DataFrame``.
3. ``agp.kernels.spark()`` cold start to the first query against a plain ``SparkSession.builder`` with the same
   jars and settings, each in a fresh process.

Needs the lab running (`agp lab up`).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hubclient import HubSession

from agp.compose.settings import Settings
from agp.kernels.credentials import BrokerClient, trino_connect

BIG = (
    "SELECT a * 1000 + b AS x, (a * 1000 + b) * 2 AS y "
    "FROM UNNEST(sequence(0, 999)) AS s(a) CROSS JOIN UNNEST(sequence(1, 1000)) AS t(b)"
)


def interleaved(fns: dict, runs: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - t0) * 1000)
    return {name: statistics.median(xs) for name, xs in samples.items()}


SPARK_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from agp.kernels.credentials import BrokerClient
b = BrokerClient(*sys.argv[2:5])
if sys.argv[1] == "agp":
    from agp.kernels import spark
    s = spark(b)
else:
    from pyspark.sql import SparkSession
    from agp.kernels.spark_session import builder_conf, jars
    builder = SparkSession.builder
    for k, v in builder_conf(b, jars(), "local[2]").items():
        builder = builder.config(k, v)
    s = builder.getOrCreate()
    s.sql("USE iceberg.demo")
s.sql("SELECT count(*) FROM meter_readings").collect()
first = time.perf_counter() - t0
t1 = time.perf_counter()
if sys.argv[1] == "agp":
    spark(b)
second = time.perf_counter() - t1
print(json.dumps({"first": first, "second": second}))
"""


def main() -> int:
    settings = Settings()
    session = HubSession(settings.hub_url)
    session.login("alice", settings.credentials.demo_password)
    token = session.new_token("alice")
    broker = BrokerClient(f"{settings.hub_url}/services/workspaces", token, "demo")
    os.environ.update(AGP_WORKSPACE_SERVICE_URL=broker.service_url, JUPYTERHUB_API_TOKEN=token, AGP_WORKSPACE="demo")
    from IPython.testing.globalipapp import start_ipython

    ip = start_ipython()
    ip.run_line_magic("load_ext", "agp.kernels")
    conn = trino_connect(broker)

    def raw_one():
        cur = conn.cursor()
        cur.execute("SELECT 1")
        cur.fetchall()

    def raw_big():
        cur = conn.cursor()
        cur.execute(BIG)
        rows = cur.fetchall()
        return pd.DataFrame(rows, columns=[d[0] for d in cur.description])

    fns = {"raw cursor": raw_one, "%sql": lambda: ip.run_line_magic("sql", "SELECT 1")}
    interleaved(fns, 5)
    small = interleaved(fns, 50)
    print(
        f"\nSELECT 1, p50 over 50 interleaved runs: %sql {small['%sql']:.1f} ms, raw cursor "
        f"{small['raw cursor']:.1f} ms; ratio {small['%sql'] / small['raw cursor']:.2f} (target <= 1.3)"
    )

    big = interleaved({"raw cursor + DataFrame": raw_big, "%sql": lambda: ip.run_line_magic("sql", BIG)}, 3)
    print(
        f"1,000,000 rows into pandas, median of 3: %sql {big['%sql'] / 1000:.2f} s, raw cursor + DataFrame "
        f"{big['raw cursor + DataFrame'] / 1000:.2f} s; ratio {big['%sql'] / big['raw cursor + DataFrame']:.2f}"
    )

    results = {}
    for flavour in ("plain", "agp", "plain", "agp"):
        out = subprocess.run(
            [sys.executable, "-c", SPARK_CHILD, flavour, broker.service_url, token, "demo"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        results.setdefault(flavour, []).append(json.loads(out.stdout.strip().splitlines()[-1]))
    a = statistics.median(r["first"] for r in results["agp"])
    p = statistics.median(r["first"] for r in results["plain"])
    warm = statistics.median(r["second"] for r in results["agp"]) * 1000
    print(
        f"Spark cold start to the first query (median of 2 each): agp.kernels.spark() {a:.1f} s, plain builder "
        f"{p:.1f} s; ratio {a / p:.2f} (target <= 1.1); second call {warm:.3f} ms (target < 50 ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
