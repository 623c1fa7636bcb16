"""The Helm chart on the single-node test cluster, measured side by side in one run.

    python3 tests/bench/bench_helm.py [--runs 3]

1. ``helm install --wait`` of helm/antigravity with the demo services to every pod ready, and to the hub answering
   through its proxy.
2. Login-to-ready of a workspace server pod (Keycloak login, spawn, the server answering) with our notebook image
   against a plain singleuser image (JupyterHub's singleuser server and JupyterLab in a venv on the same base, what
   a stock install runs: tests/bench/plain-singleuser/Dockerfile), both spawned by the same hub on the same cluster.
3. Image sizes: ours against the plain singleuser image.

Starts the cluster when it is down and stops it again; builds and loads the images (images/build.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "k8s"))
from hubclient import Api, HubSession  # noqa: E402
from k8s.cluster import Cluster  # noqa: E402
from k8s.settings import ClusterSettings  # noqa: E402
from test_helm import CHART, IMAGES, PASSWORD, PROXY_IP, values  # noqa: E402

PLAIN = "localhost/agp-bench-plain-singleuser:dev"
PODMAN = ["podman", "--runtime", "runc"]


def run(*cmd: str, env: dict | None = None, timeout: float = 1800) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed: {(r.stderr or r.stdout).strip()[-600:]}")
    return r.stdout


def size_mb(image: str) -> float:
    return int(run(*PODMAN, "image", "inspect", "--format", "{{.Size}}", image).strip()) / 1e6


def spawn_to_ready(api: Api, user: str, server: str) -> float:
    t0 = time.monotonic()
    r = api.hub("POST", f"/users/{user}/servers/{server}")
    assert r.status_code in (201, 202), r.text
    api.wait_server(user, server, timeout=600)
    return time.monotonic() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    cluster = Cluster(ClusterSettings.from_env())
    started = not cluster.status()["running"]
    if started:
        cluster.up()
    s = cluster.settings
    env = dict(os.environ, KUBECONFIG=str(s.kubeconfig))
    kubectl, helm = str(s.kube_bin / "kubectl"), str(s.helm_bin)
    try:
        run(sys.executable, str(REPO / "images" / "build.py"), *IMAGES)
        run(
            *PODMAN,
            "build",
            "--format",
            "docker",
            "--ulimit",
            "nofile=10000:10000",
            "--ulimit",
            "nproc=4096:4096",
            "-v",
            "/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro",
            "-f",
            str(HERE / "plain-singleuser" / "Dockerfile"),
            "-t",
            PLAIN,
            str(REPO),
        )
        t0 = time.monotonic()
        cluster.load_images([f"localhost/agp-{n}:dev" for n in IMAGES] + [PLAIN])
        load_s = time.monotonic() - t0

        ns = f"bench-{uuid.uuid4().hex[:6]}"
        cluster.recycle_volumes()
        run(kubectl, "create", "namespace", ns, env=env)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            yaml.safe_dump(values(), f)
        t0 = time.monotonic()
        run(helm, "install", "agp", str(CHART), "-n", ns, "-f", f.name, "--wait", "--timeout", "15m", env=env)
        install_s = time.monotonic() - t0
        hub = f"http://{PROXY_IP}"
        while requests.get(f"{hub}/hub/health", timeout=5).status_code != 200:
            time.sleep(0.5)
        hub_s = time.monotonic() - t0

        def token(user: str) -> str:
            session = HubSession(hub)
            session.login(user, PASSWORD)
            return session.new_token(user)

        admin = Api(hub, token("admin"))
        slug = "bench"
        r = admin("POST", "/workspaces", json={"slug": slug, "cpu_limit": 1, "memory_limit_gb": 2})
        assert r.status_code == 201, r.text
        assert admin("PUT", f"/workspaces/{slug}/members/alice", json={"role": "editor"}).status_code == 200
        times: dict[str, list[float]] = {}
        for kind, image in (("antigravity", "localhost/agp-notebook:dev"), ("plain", PLAIN)):
            # Same chart, hub and workspace; only the server image differs (hub.config.KubeSpawner.image).
            with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as g:
                yaml.safe_dump(values(hub={"config": {"KubeSpawner": {"image": image}}}), g)
            run(helm, "upgrade", "agp", str(CHART), "-n", ns, "-f", g.name, "--wait", "--timeout", "10m", env=env)
            while requests.get(f"{hub}/hub/health", timeout=5).status_code != 200:
                time.sleep(0.5)
            alice = Api(hub, token("alice"))
            times[kind] = []
            for i in range(args.runs + 1):  # the first makes the server's volume: not counted
                took = spawn_to_ready(alice, "alice", slug)
                if i:
                    times[kind].append(took)
                alice.hub("DELETE", f"/users/alice/servers/{slug}")
                while alice.hub("GET", "/users/alice").json()["servers"].get(slug):
                    time.sleep(0.5)
        run(helm, "uninstall", "agp", "-n", ns, "--wait", env=env)
        run(kubectl, "delete", "namespace", ns, "--wait=false", env=env)

        ours = {n: size_mb(f"localhost/agp-{n}:dev") for n in IMAGES}
        print(f"image import into the cluster: {load_s:.0f} s for {len(IMAGES) + 1} images")
        print(f"helm install --wait (demo services, every pod ready): {install_s:.0f} s; hub answering: {hub_s:.0f} s")
        a, p = statistics.median(times["antigravity"]), statistics.median(times["plain"])
        print(
            f"spawn-to-ready, median of {args.runs}: antigravity {a:.1f} s, plain singleuser {p:.1f} s, "
            f"ratio {a / p:.2f}  (runs: {json.dumps(times)})"
        )
        plain = size_mb(PLAIN)
        print("image sizes (MB): " + ", ".join(f"{n} {v:.0f}" for n, v in ours.items()))
        print(
            f"notebook {ours['notebook']:.0f} MB against plain singleuser {plain:.0f} MB: "
            f"ratio {ours['notebook'] / plain:.2f}; hub {ours['hub']:.0f} MB"
        )
    finally:
        if started:
            cluster.down()


if __name__ == "__main__":
    main()
