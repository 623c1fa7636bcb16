"""Benchmarks of the control plane, measured side by side in one run.

    python3 tests/bench/bench_hub.py [--runs 3]

1. Login-to-ready of a workspace server (Keycloak login, spawn, JupyterLab answering) against stock JupyterHub
   (DummyAuthenticator, SimpleLocalProcessSpawner, JupyterLab) started here on spare ports; also split into the
   login alone (Keycloak's form and redirects against a password form: not like for like) and spawn-to-ready
   (the part both hubs do the same way).
2. Workspace API p50/p95 for list and get with 1,000 users and 200 workspaces in the database.
3. Provisioning of one workspace end to end through the API, against the three raw calls it makes.
4. With ``--os-users``: login-to-ready with servers as per-user OS users against servers as the hub's own user (the
   way before), alternated on the lab's own hub, which is restarted in each mode (other users' servers stop).

Needs the lab running (`agp lab up`); leaves it as it found it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests
from sqlalchemy import delete

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import remove_workspace
from hubclient import Api, HubSession

from agp.core import clients
from agp.core.models import Membership, Role, State, Workspace
from agp.core.settings import Settings
from agp.hub import db


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(http: requests.Session, hub: str, user: str, server: str, headers: dict) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        model = http.get(f"{hub}/hub/api/users/{user}", headers=headers, timeout=30).json()
        srv = model.get("servers", {}).get(server)
        if srv and srv.get("ready"):
            lab = http.get(f"{hub}{srv['url']}lab", headers=headers, timeout=30)
            if lab.status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{user}/{server} not ready")


def ours_once(settings: Settings) -> tuple[float, float]:
    """Seconds of (login, spawn-to-ready); their sum is login-to-ready."""
    t0 = time.perf_counter()
    session = HubSession(settings.hub_url)
    session.login("alice", settings.credentials.demo_password.get_secret_value())
    t1 = time.perf_counter()
    r = session.hub_api("POST", "/users/alice/servers/demo")
    assert r.status_code in (201, 202), r.text
    wait_ready(session.http, settings.hub_url, "alice", "demo", {"X-XSRFToken": session.xsrf})
    t2 = time.perf_counter()
    session.hub_api("DELETE", "/users/alice/servers/demo")
    time.sleep(1.5)
    return t1 - t0, t2 - t1


class StockHub:
    """Stock JupyterHub: DummyAuthenticator, SimpleLocalProcessSpawner, JupyterLab, sqlite."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="agp-bench-stock-", dir="/var/tmp"))
        self.port, self.api, self.proxy_api = free_port(), free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        chp = Settings().cache_dir / "npm-chp-5.3.0" / "node_modules" / ".bin"
        (self.dir / "jupyterhub_config.py").write_text(
            "c.JupyterHub.authenticator_class = 'dummy'\n"
            "c.DummyAuthenticator.password = 'stock'\n"
            "c.Authenticator.allow_all = True\n"
            "c.JupyterHub.spawner_class = 'simple'\n"
            f"c.SimpleLocalProcessSpawner.home_dir_template = '{self.dir}/home/{{username}}'\n"
            "c.Spawner.default_url = '/lab'\n"
            "c.Spawner.args = ['--allow-root']\n"
            f"c.Spawner.cmd = ['{Path(sys.executable).parent / 'jupyterhub-singleuser'}']\n"
            f"c.JupyterHub.bind_url = '{self.url}'\n"
            f"c.JupyterHub.hub_bind_url = 'http://127.0.0.1:{self.api}'\n"
            f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{self.proxy_api}'\n"
            f"c.ConfigurableHTTPProxy.command = ['{chp / 'configurable-http-proxy'}']\n"
            f"c.JupyterHub.db_url = 'sqlite:///{self.dir}/hub.sqlite'\n"
            f"c.JupyterHub.cookie_secret_file = '{self.dir}/cookie_secret'\n"
        )
        self.log = (self.dir / "hub.log").open("w")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AGP_", "JUPYTERHUB_"))}
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "jupyterhub"), "-f", str(self.dir / "jupyterhub_config.py")],
            cwd=self.dir,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/hub/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.3)
        raise RuntimeError("stock hub did not start; see " + str(self.dir / "hub.log"))

    def once(self, n: int) -> tuple[float, float]:
        """Seconds of (login, spawn-to-ready); their sum is login-to-ready."""
        user = f"u{n}"
        t0 = time.perf_counter()
        http = requests.Session()
        page = http.get(f"{self.url}/hub/login", timeout=30)
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
        r = http.post(
            f"{self.url}/hub/login?next=/hub/home",
            data={"username": user, "password": "stock", "_xsrf": xsrf},
            timeout=30,
        )
        assert r.status_code == 200, r.status_code
        t1 = time.perf_counter()
        headers = {"X-XSRFToken": http.cookies.get("_xsrf", path="/hub/")}
        r = http.post(f"{self.url}/hub/api/users/{user}/server", headers=headers, timeout=60)
        assert r.status_code in (201, 202), r.text
        wait_ready(http, self.url, user, "", headers)
        t2 = time.perf_counter()
        http.delete(f"{self.url}/hub/api/users/{user}/server", headers=headers, timeout=60)
        time.sleep(1.5)
        return t1 - t0, t2 - t1

    def close(self) -> None:
        os.killpg(self.proc.pid, 15)
        self.proc.wait(30)
        shutil.rmtree(self.dir, ignore_errors=True)


def bench_spawn(settings: Settings, runs: int) -> None:
    stock = StockHub()
    try:
        ours_s, stock_s = [], []
        for n in range(runs):  # interleaved, so both see the same machine
            stock_s.append(stock.once(n))
            ours_s.append(ours_once(settings))
    finally:
        stock.close()
    total_o, total_s = [a + b for a, b in ours_s], [a + b for a, b in stock_s]
    o, s = statistics.median(total_o), statistics.median(total_s)
    print(
        f"\nLogin-to-ready over {runs} runs (median): Antigravity {o:.2f} s (Keycloak login, workspace checks), "
        f"stock JupyterHub {s:.2f} s; ratio {o / s:.2f} (target <= 1.1)"
    )
    print(f"  all runs: ours {[round(x, 2) for x in total_o]}, stock {[round(x, 2) for x in total_s]}")
    for i, part in ((0, "login alone (Keycloak form vs password form)"), (1, "spawn-to-ready (login excluded)")):
        po, ps = statistics.median(r[i] for r in ours_s), statistics.median(r[i] for r in stock_s)
        print(f"  {part}: Antigravity {po:.2f} s, stock JupyterHub {ps:.2f} s; ratio {po / ps:.2f}")


def bench_os_users(settings: Settings, runs: int, rounds: int = 2) -> None:
    """Login-to-ready of alice's demo server in both modes of ``server_os_users``, alternated ``rounds`` times."""
    from rich.console import Console

    from agp.compose.lab import Lab

    quiet = Console(quiet=True)
    modes = {"as per-user OS users": True, "as the hub's own user": False}
    totals: dict[str, list[float]] = {name: [] for name in modes}
    try:
        for _ in range(rounds):
            for name, on in modes.items():
                Lab(settings.model_copy(update={"server_os_users": on}), quiet).restart("jupyterhub")
                ours_once(settings)  # the first spawn after a restart warms the hub up: not counted
                totals[name] += [sum(ours_once(settings)) for _ in range(runs)]
    finally:
        Lab(settings, quiet).restart("jupyterhub")
    (on_name, on_s), (off_name, off_s) = totals.items()
    on, off = statistics.median(on_s), statistics.median(off_s)
    print(
        f"\nLogin-to-ready, {len(on_s)} runs each, alternated: servers {on_name} {on:.2f} s, {off_name} {off:.2f} s "
        f"(the way before); ratio {on / off:.2f}"
    )
    print(f"  all runs: {on_name} {[round(x, 2) for x in on_s]}, {off_name} {[round(x, 2) for x in off_s]}")


def bench_api(settings: Settings, admin: Api, alice: Api, n_users: int = 1000, n_ws: int = 200) -> None:
    engine = db.make_engine(settings.db_url)
    tag = uuid.uuid4().hex[:6]
    slugs = [f"bench-{tag}-{i}" for i in range(n_ws)]
    with engine.begin() as conn:
        from sqlalchemy.orm import Session

        with Session(bind=conn) as s:
            for i, slug in enumerate(slugs):
                ws = Workspace(
                    slug=slug,
                    display_name=slug,
                    description="",
                    state=State.ready,
                    created_by="bench",
                    group_role=Role.editor,
                    cpu_limit=1,
                    memory_limit_gb=1,
                    storage_limit_gb=1,
                    max_servers=1,
                )
                ws.members = [
                    Membership(username=f"user{(i * 5 + k) % n_users}", role=Role.editor, added_by="bench")
                    for k in range(5)
                ]
                if i % 20 == 0:
                    ws.members.append(Membership(username="alice", role=Role.viewer, added_by="bench"))
                s.add(ws)
            s.flush()
    try:
        results = {}
        calls = {
            "admin list (200+)": lambda: admin("GET", "/workspaces"),
            "admin get": lambda: admin("GET", f"/workspaces/{slugs[137]}"),
            "member list": lambda: alice("GET", "/workspaces"),
            "member get": lambda: alice("GET", f"/workspaces/{slugs[40]}"),
        }
        for name, call in calls.items():
            for _ in range(5):
                assert call().status_code == 200
            samples = []
            for _ in range(100):
                t0 = time.perf_counter()
                r = call()
                samples.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200
            results[name] = (pct(samples, 50), pct(samples, 95))
        print(f"\nWorkspace API with {n_users} users and {n_ws} workspaces, 100 calls each (ms, target p95 < 100):")
        for name, (p50, p95) in results.items():
            print(f"  {name:<18} p50 {p50:6.1f}  p95 {p95:6.1f}")
    finally:
        with engine.begin() as conn:
            conn.execute(delete(Workspace).where(Workspace.slug.in_(slugs)))
        engine.dispose()


def bench_provision(settings: Settings, admin: Api, runs: int) -> None:
    api_s, raw_s = [], []
    for _ in range(runs):
        slug = f"bench-p-{uuid.uuid4().hex[:8]}"
        t0 = time.perf_counter()
        r = admin("POST", "/workspaces", json={"slug": slug})
        api_s.append(time.perf_counter() - t0)
        assert r.status_code == 201, r.text
        remove_workspace(settings, slug)

        raw = slug.replace("-", "_") + "_raw"
        t0 = time.perf_counter()
        clients.s3_client(settings).create_bucket(Bucket=raw.replace("_", "-"))
        clients.load_catalog(settings).create_namespace(raw)
        with clients.trino_connect(settings) as conn:
            cur = conn.cursor()
            cur.execute("SELECT schema_name FROM iceberg.information_schema.schemata WHERE schema_name = ?", [raw])
            cur.fetchall()
        raw_s.append(time.perf_counter() - t0)
        clients.load_catalog(settings).drop_namespace(raw)
        clients.s3_client(settings).delete_bucket(Bucket=raw.replace("_", "-"))
    a, b = statistics.median(api_s), statistics.median(raw_s)
    print(
        f"\nProvisioning one workspace (median of {runs}): through the API {a * 1000:.0f} ms, "
        f"the three raw calls {b * 1000:.0f} ms; ratio {a / b:.2f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--os-users", action="store_true", help="only: servers as OS users against the way before (restarts the hub)"
    )
    args = parser.parse_args()
    if args.os_users:
        bench_os_users(Settings(), args.runs)
        return 0
    settings = Settings()
    admin_session = HubSession(settings.hub_url)
    admin_session.login("admin", settings.credentials.demo_password.get_secret_value())
    admin = Api(settings.hub_url, admin_session.new_token("admin"))
    alice_session = HubSession(settings.hub_url)
    alice_session.login("alice", settings.credentials.demo_password.get_secret_value())
    alice = Api(settings.hub_url, alice_session.new_token("alice"))
    bench_spawn(settings, args.runs)
    bench_api(settings, admin, alice)
    bench_provision(settings, admin, max(args.runs, 3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
