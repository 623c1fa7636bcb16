"""Benchmarks of identity, side by side in one run.

    python3 tests/bench/bench_identity.py

1. The credential broker's latency (p50/p95 over 100 requests) for each kind, against the plain operations it
   wraps: minting a JWT in-process, and MinIO's STS AssumeRole called directly.
2. Trino ``SELECT 1`` over HTTPS with a JWT (the lab) against plain HTTP with no authentication: a second Trino
   from the same install and catalog, started here on spare ports, measured interleaved.
3. The catalog proxy's checks: the same read calls (config, list tables, load a table with its vended credential)
   through today's proxy, mounted alone on a spare port in front of the lab's catalog with the same caller, and
   straight to the catalog with the platform's token, interleaved. With Nessie (``AGP_CATALOG=nessie``) also through
   the proxy before the route table (``BEFORE``, read from git); that proxy speaks Nessie's prefix and Keycloak
   tokens only, so it is left out in front of the Iceberg REST catalog (the output says so).

Needs the lab running (`agp lab up`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import requests
import trino
from fastapi import Request

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hubclient import Api, HubSession

from agp.compose import services
from agp.compose.lab import Lab
from agp.core import clients
from agp.core.settings import Settings
from agp.core.tokens import KeyPaths, mint_trino_token
from agp.hub.broker import session_policy
from agp.kernels.credentials import BrokerClient
from agp.kernels.credentials import trino_connect as broker_trino


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def timed(fn, n: int = 100) -> tuple[float, float]:
    for _ in range(3):
        fn()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return pct(samples, 50), pct(samples, 95)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_broker(settings: Settings, api: Api) -> None:
    rows = {}
    for kinds in (["trino"], ["s3"], ["catalog"], ["trino", "s3", "catalog"]):
        rows["broker " + "+".join(kinds)] = timed(
            lambda k=kinds: api("POST", "/workspaces/demo/credentials", json={"kinds": k}).raise_for_status()
        )
    private = KeyPaths(settings.keys_dir).broker_private.read_bytes()
    rows["plain: mint a JWT"] = timed(lambda: mint_trino_token(private, "alice"))
    c = settings.credentials
    sts = boto3.client(
        "sts",
        endpoint_url=settings.s3_endpoint,
        aws_access_key_id=c.broker_access_key,
        aws_secret_access_key=c.broker_secret_key.get_secret_value(),
        region_name=settings.s3_region,
    )
    policy = json.dumps(session_policy("agp-ws-demo", True))
    rows["plain: STS AssumeRole"] = timed(
        lambda: sts.assume_role(
            RoleArn="arn:minio:iam:::role/x", RoleSessionName="bench", DurationSeconds=900, Policy=policy
        ),
        n=50,
    )
    print("\nCredential broker, through the hub's proxy (ms; target p95 < 50):")
    for name, (p50, p95) in rows.items():
        print(f"  {name:<28} p50 {p50:6.1f}  p95 {p95:6.1f}")


def plain_trino(settings: Settings) -> tuple[subprocess.Popen, int, Path]:
    """A second Trino from the lab's install and catalog file, plain HTTP, no authentication, no rules."""
    lab = Lab(settings)
    java_home = Path(json.loads(json.dumps(str(_trino_java(lab)))))
    tmp = Path(tempfile.mkdtemp(prefix="agp-bench-trino-", dir="/var/tmp"))
    port = free_port()
    files = services.trino_files(settings, lab.paths)
    etc = tmp / "etc"
    for path, text in files.items():
        # No rules, and no spooling: the lab's spooling manager and protocol need its bucket and secret key.
        if path.name in ("access-control.properties", "spooling-manager.properties"):
            continue
        target = etc / path.relative_to(lab.paths.trino / "etc")
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.name == "config.properties":
            text = "".join(
                line + "\n"
                for line in text.splitlines()
                if not line.startswith(
                    ("http-server.https", "http-server.authentication", "internal-communication", "protocol.spooling.")
                )
            )
            text = text.replace(f"http-server.http.port={settings.ports.trino}", f"http-server.http.port={port}")
            text = text.replace(settings.trino_url, f"http://{settings.host}:{port}")
        if path.name == "node.properties":
            text = text.replace(str(lab.paths.trino / "data"), str(tmp / "data")).replace(
                "agp-lab-coordinator", "agp-bench-plain"
            )
        target.write_text(text)
    env = {
        **os.environ,
        **services.shared_env(settings),
        "JAVA_HOME": str(java_home),
        "PATH": f"{java_home}/bin:{os.environ['PATH']}",
    }
    proc = subprocess.Popen(
        [str(lab.paths.trino_home / "bin" / "launcher"), "run", f"--etc-dir={etc}", f"--data-dir={tmp / 'data'}"],
        env=env,
        stdout=(tmp / "trino.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if not requests.get(f"http://{settings.host}:{port}/v1/info", timeout=2).json()["starting"]:
                return proc, port, tmp
        except (requests.RequestException, ValueError, KeyError):
            pass
        time.sleep(1)
    raise RuntimeError(f"the plain Trino did not start; see {tmp / 'trino.log'}")


def _trino_java(lab: Lab):
    return lab._javas()["trino"].home


def bench_trino_overhead(settings: Settings, broker: BrokerClient) -> None:
    proc, port, tmp = plain_trino(settings)
    try:
        plain = trino.dbapi.connect(host=settings.host, port=port, user="alice", catalog="iceberg")
        secured = broker_trino(broker)

        def one(conn):
            cur = conn.cursor()
            cur.execute("SELECT 1")
            cur.fetchall()

        rounds = {"plain HTTP, no auth": [], "HTTPS + JWT (lab)": []}
        for _ in range(100):  # both warm: the plain server has just started
            one(plain)
            one(secured)
        for _ in range(50):  # interleaved
            for name, conn in (("plain HTTP, no auth", plain), ("HTTPS + JWT (lab)", secured)):
                t0 = time.perf_counter()
                one(conn)
                rounds[name].append((time.perf_counter() - t0) * 1000)
        print("\nTrino SELECT 1, 50 interleaved runs each (ms):")
        for name, xs in rounds.items():
            print(f"  {name:<20} p50 {statistics.median(xs):6.1f}  p95 {pct(xs, 95):6.1f}")
        ratio = statistics.median(rounds["HTTPS + JWT (lab)"]) / statistics.median(rounds["plain HTTP, no auth"])
        print(f"  overhead ratio (p50): {ratio:.2f}")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
        shutil.rmtree(tmp, ignore_errors=True)


BEFORE = "ae8a1ce"  # the last commit whose proxy authorized the raw path and forwarded another


def _proxy_app(forward):
    from fastapi import FastAPI

    app = FastAPI()

    @app.api_route("/iceberg/{path:path}", methods=["GET", "HEAD", "POST", "DELETE"])
    async def iceberg(path: str, request: Request):
        return await forward(request)

    return app


def _serve(app) -> tuple[str, object]:
    import threading

    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}/iceberg", server


def _before_proxy():
    """The proxy module of ``BEFORE``, loaded from git."""
    import importlib.util

    old_source = subprocess.run(
        ["git", "show", f"{BEFORE}:hub/service/catalog_proxy.py"], capture_output=True, text=True, check=True
    ).stdout
    spec = importlib.util.spec_from_loader("agp.hub.service._catalog_proxy_before", loader=None)
    before = importlib.util.module_from_spec(spec)
    exec(compile(old_source, "catalog_proxy_before.py", "exec"), before.__dict__)  # noqa: S102 (our own history)
    return before


def bench_catalog_proxy(settings: Settings) -> None:
    from agp.core.names import WorkspaceNames
    from agp.hub.broker import Broker
    from agp.hub.service.catalog_proxy import CatalogProxy, Principal
    from agp.hub.service.catalog_routes import PUBLIC_PREFIX

    broker = Broker(settings)
    access = {"demo": True}

    def vend(namespace: str, writable: bool):
        return broker.s3("alice", WorkspaceNames.from_namespace(namespace), writable)

    new = CatalogProxy(settings, "http://127.0.0.1/iceberg", "/iceberg")

    async def principal(_ns):
        return Principal("alice", access)

    # name -> (base URL, session, the path prefix it serves: the proxy's public one or the catalog's own)
    upstream_prefix = f"{settings.catalog_upstream_prefix}/" if settings.catalog_upstream_prefix else ""
    url, server = _serve(_proxy_app(lambda r: new.forward(r, principal, vend, None)))
    servers = [server]
    sessions = {"proxy now": (url, requests.Session(), f"{PUBLIC_PREFIX}/")}
    before_name = f"proxy before ({BEFORE})"
    if settings.catalog == "nessie":
        old = _before_proxy().CatalogProxy(settings, "http://127.0.0.1/iceberg")
        url, server = _serve(_proxy_app(lambda r: old.forward(r, access, vend)))
        servers.append(server)
        sessions[before_name] = (url, requests.Session(), "main/")  # it forwarded the caller's path as it was
    direct = requests.Session()
    direct.headers["Authorization"] = f"Bearer {clients.catalog_token(settings)}"
    direct_name = "Nessie direct (plain)" if settings.catalog == "nessie" else "catalog direct (plain)"
    sessions[direct_name] = (settings.catalog_uri, direct, upstream_prefix)
    calls = {
        "config": "v1/config?warehouse=warehouse",
        "list tables": "v1/{prefix}namespaces/demo/tables",
        "load table": "v1/{prefix}namespaces/demo/tables/meter_readings",
    }
    samples: dict[tuple[str, str], list[float]] = {(n, c): [] for n in sessions for c in calls}
    for i in range(203):
        for call, path in calls.items():
            for name, (base, http, prefix) in sessions.items():
                t0 = time.perf_counter()
                r = http.get(f"{base}/{path.format(prefix=prefix)}", timeout=30)
                elapsed = (time.perf_counter() - t0) * 1000
                assert r.status_code == 200, (name, call, r.status_code, r.text[:200])
                if i >= 3:
                    samples[(name, call)].append(elapsed)
    against = before_name if before_name in sessions else direct_name
    target = "; target: within 10% of before" if against == before_name else ""
    print(
        f"\nCatalog proxy in front of {settings.catalog}, the same read calls interleaved, 200 each "
        f"(ms, p50 / p95{target})"
    )
    if before_name not in sessions:
        print(
            f"  ({before_name} left out: it speaks Nessie's prefix and Keycloak tokens, and the lab's catalog is "
            f"{settings.catalog}; run with AGP_CATALOG=nessie for it. Ratios below are the proxy's against the catalog "
            f"direct.)"
        )
    for call in calls:
        line = [f"  {call:12}"]
        for name in sessions:
            v = samples[(name, call)]
            line.append(f"{name}: {pct(v, 50):6.2f} / {pct(v, 95):6.2f}")
        now, then = samples[("proxy now", call)], samples[(against, call)]
        label = "before" if against == before_name else "direct"
        line.append(f"ratio now/{label} p50 {pct(now, 50) / pct(then, 50):.2f}, p95 {pct(now, 95) / pct(then, 95):.2f}")
        print("   ".join(line))
    for server in servers:
        server.should_exit = True


def main() -> int:
    settings = Settings()
    session = HubSession(settings.hub_url)
    session.login("alice", settings.credentials.demo_password.get_secret_value())
    token = session.new_token("alice")
    bench_broker(settings, Api(settings.hub_url, token))
    bench_catalog_proxy(settings)
    bench_trino_overhead(settings, BrokerClient(f"{settings.hub_url}/services/workspaces", token, "demo"))
    _ = clients
    return 0


if __name__ == "__main__":
    sys.exit(main())
