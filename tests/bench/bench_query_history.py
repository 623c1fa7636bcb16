"""Benchmark of the query history's cost to Trino, side by side in one run.

    python3 tests/bench/bench_query_history.py [--queries 300] [--rounds 2]

Two throw-away single-node Trinos of the lab's own installation (the same plugins, JVM and Java), started one after
the other on free ports with no catalog but Trino's ``system``: one with the HTTP event listener posting to the lab's
running workspace service (its real ingest door, its real token, the lab's database), one without. Each runs the
same sequential ``SELECT`` statements through the ``trino`` client (after a warm-up), then the same with 4 clients at
once; rounds alternate off and on. Printed: queries per second and p50/p95 latency of each, the ratio on/off, and
that every query of the "on" Trinos reached the history (rows in ``query_history`` for the run's user).

Needs the lab running (`agp lab up`); leaves nothing behind but the run's history rows (user ``bench-qh-<tag>``).

Run it only on a lab where no notebook is hostile: while it runs, its Trinos take any user name without a password
on ports every local process can reach, and their listener posts into the real history with the real token, so a
notebook could put entries under any user into any workspace's history for that time (found by the attacker's
review; a password-protected or TLS Trino here is left to do).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
import trino
from sqlalchemy import create_engine, text

from agp.compose import java, services
from agp.compose.services import LabPaths
from agp.core import versions
from agp.core.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


class Throwaway:
    """A single-node Trino from the lab's installation in a temporary folder, with or without the listener."""

    def __init__(self, settings: Settings, listener: bool):
        self.settings, self.listener = settings, listener
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="agp-bench-qh-"))
        os.chmod(self.dir, 0o700)  # the token is in it
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Throwaway:
        etc = self.dir / "etc"
        etc.mkdir()
        (etc / "config.properties").write_text(
            "coordinator=true\nnode-scheduler.include-coordinator=true\n"
            f"http-server.http.port={self.port}\ndiscovery.uri=http://127.0.0.1:{self.port}\n"
            "query.max-memory=256MB\nquery.max-memory-per-node=256MB\ncatalog.management=static\n"
        )
        (etc / "node.properties").write_text(
            f"node.environment=bench\nnode.id=bench-{self.port}\nnode.data-dir={self.dir / 'data'}\n"
            "node.internal-address=127.0.0.1\n"
        )
        (etc / "jvm.config").write_text("-server\n-Xmx768M\n-XX:+UseG1GC\n-Djdk.attach.allowAttachSelf=true\n")
        (etc / "log.properties").write_text("io.trino=WARN\n")
        if self.listener:
            token = self.settings.credentials.query_history_token.get_secret_value()
            props = services.trino_event_listener(self.settings.query_history_ingest_uri, token)
            path = etc / "event-listener.properties"
            path.touch(mode=0o600)
            path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        jdk = java.find_java(versions.JAVA_MAJOR["trino"], self.settings.trino_java_home, "trino_java_home")
        home = LabPaths.of(self.settings).trino_home
        self.proc = subprocess.Popen(
            [str(home / "bin" / "launcher"), "run", f"--etc-dir={etc}", f"--data-dir={self.dir / 'data'}"],
            env={**os.environ, **services.java_env(jdk)},
            stdout=(self.dir / "trino.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"the throw-away Trino exited; its log: {self.dir / 'trino.log'}")
            try:
                if not requests.get(f"http://127.0.0.1:{self.port}/v1/info", timeout=2).json()["starting"]:
                    return self
            except (requests.RequestException, ValueError, KeyError):
                pass
            time.sleep(1)
        sys.exit("the throw-away Trino did not start within 240 s")

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def run(self, user: str, n: int, clients: int) -> list[float]:
        """Latencies in seconds of ``n`` queries, from ``clients`` connections at once."""

        def one(i: int) -> float:
            conn = trino.dbapi.connect(host="127.0.0.1", port=self.port, user=user, catalog="system")
            cur = conn.cursor()
            t0 = time.perf_counter()
            cur.execute(f"SELECT {i} AS n, count(*) FROM system.runtime.nodes")
            cur.fetchall()
            return time.perf_counter() - t0

        with ThreadPoolExecutor(clients) as pool:
            return list(pool.map(one, range(n)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    settings = Settings()
    if not settings.credentials.query_history_token.get_secret_value():
        sys.exit("The lab has no query-history token: run `agp lab up` first.")
    user = f"bench-qh-{uuid.uuid4().hex[:6]}"
    results: dict[tuple[bool, int], list[float]] = {}
    walls: dict[tuple[bool, int], float] = {}
    sent = 0
    engine = create_engine(settings.db_url)

    def recorded() -> int:
        with engine.connect() as c:
            sql = 'SELECT count(*) FROM query_history WHERE "user" = :u AND ended IS NOT NULL'
            return c.execute(text(sql), {"u": user}).scalar()

    delivery: list[float] = []
    for _ in range(args.rounds):
        for listener in (False, True):
            with Throwaway(settings, listener) as t:
                t.run(user if listener else user + "-off", 20, 1)  # warm-up
                sent += 20 if listener else 0
                for clients in (1, 4):
                    t0 = time.perf_counter()
                    lat = t.run(user if listener else user + "-off", args.queries, clients)
                    walls[(listener, clients)] = walls.get((listener, clients), 0.0) + time.perf_counter() - t0
                    results.setdefault((listener, clients), []).extend(lat)
                    sent += args.queries if listener else 0
                if listener:
                    # Events not yet delivered die with a Trino that stops: wait for them before stopping it.
                    t0, deadline = time.perf_counter(), time.monotonic() + 300
                    while recorded() < sent and time.monotonic() < deadline:
                        time.sleep(0.5)
                    delivery.append(time.perf_counter() - t0)
    print(f"\nTrino 476, {args.queries} queries x {args.rounds} rounds per case, listener off/on alternating")
    print(f"{'case':<22}{'queries/s':>10}{'p50 ms':>9}{'p95 ms':>9}")
    for clients in (1, 4):
        rate = {}
        for listener in (False, True):
            lat = results[(listener, clients)]
            rate[listener] = len(lat) / walls[(listener, clients)]
            label = f"{'on ' if listener else 'off'}, {clients} client{'s' if clients > 1 else ''}"
            print(f"{label:<22}{rate[listener]:>10.1f}{pct(lat, 50) * 1000:>9.1f}{pct(lat, 95) * 1000:>9.1f}")
        print(f"  throughput on/off: {rate[True] / rate[False]:.3f} (target: no measurable loss)")
    got = recorded()
    print(f"history rows of the 'on' runs: {got} of {sent} queries" + (" (all)" if got == sent else " (MISSING)"))
    print(f"the last event reached the history {max(delivery):.1f} s after the last query ended (at most)")
    engine.dispose()


if __name__ == "__main__":
    main()
