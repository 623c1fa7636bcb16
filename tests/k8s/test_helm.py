"""The Helm chart on a real cluster: ``helm install`` of helm/antigravity with the demo PostgreSQL, MinIO and
Keycloak, under the restricted Pod Security profile; a Keycloak login to the hub; a workspace made through the
service's API; a member's server started by KubeSpawner as a pod with the workspace's labels, resources and
security context; in its kernel, ``%sql`` on a workspace table through Trino in the cluster and ``spark()`` reading
it; a non-member refused; ``helm upgrade`` with a changed value keeps the data; ``helm uninstall`` keeps what the
chart says it keeps.

The release is made once for the module (installing it is the slow part, see tests/bench/bench_helm.py); the tests
run in order on it. Browsers and the hub must reach Keycloak at one address: the test gives Keycloak's and the
proxy's Services fixed cluster IPs, which the host routes to (tests/k8s/README.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from hubclient import Api, HubSession
from kernelclient import NotebookKernel

pytestmark = pytest.mark.kubernetes

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "antigravity"
RELEASE = "agp"
# In the cluster's service range (10.96.0.0/16), away from what the apiserver hands out first.
KEYCLOAK_IP, PROXY_IP = "10.96.200.10", "10.96.200.80"
IMAGES = ("hub", "notebook", "catalog", "trino", "keycloak", "postgres", "proxy", "minio")
PASSWORD = "agp-cluster-demo"  # the demo realm's users (values: demo.userPassword)


def values(**extra) -> dict:
    """The test release: the demo services, small requests (2 cores run it all), fixed addresses."""
    small = {"requests": {"cpu": "20m", "memory": "128Mi"}}
    v = {
        "demo": {
            "enabled": True,
            "userPassword": PASSWORD,
            "keycloak": {
                "service": {"clusterIP": KEYCLOAK_IP, "port": 8080},
                "publicURL": f"http://{KEYCLOAK_IP}:8080",
                "resources": small,
            },
            "postgresql": {"resources": small},
            "minio": {"resources": small},
        },
        "hub": {"publicURL": f"http://{PROXY_IP}", "resources": small},
        "proxy": {"service": {"clusterIP": PROXY_IP}, "chp": {"resources": small}},
        "catalog": {"resources": small},
        "coordinator": {"jvm": {"maxHeapSize": "1G"}, "resources": {"requests": {"cpu": "50m", "memory": "1Gi"}}},
        "singleuser": {"storage": {"capacity": "1Gi"}},
    }
    for key, value in extra.items():
        v[key] = {**v.get(key, {}), **value}
    return v


@pytest.fixture(scope="module")
def images(cluster) -> list[str]:
    """Our images, built when their inputs changed (images/build.py keeps them), imported into the cluster."""
    r = subprocess.run(
        [sys.executable, str(REPO / "images" / "build.py"), *IMAGES], capture_output=True, text=True, timeout=3600
    )
    if r.returncode != 0:
        pytest.fail(f"building the images failed: {(r.stderr or r.stdout).strip()[-800:]}", pytrace=False)
    names = [f"localhost/agp-{name}:dev" for name in IMAGES]
    cluster.load_images(names)
    return names


@pytest.fixture(scope="module")
def release(cluster, kubectl, helm, images, tmp_path_factory) -> Iterator[dict]:
    ns = f"agp-{uuid.uuid4().hex[:6]}"
    cluster.recycle_volumes()
    kubectl("create", "namespace", ns)
    # Every pod of the chart, and every server it spawns, must pass the restricted Pod Security profile.
    kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
    path = tmp_path_factory.mktemp("helm") / "values.yaml"
    path.write_text(yaml.safe_dump(values()))
    t0 = time.monotonic()
    helm("install", RELEASE, str(CHART), "-n", ns, "-f", str(path), "--wait", "--timeout", "15m", timeout=1000)
    info = {"namespace": ns, "values": path, "install_seconds": time.monotonic() - t0}
    yield info
    helm("uninstall", RELEASE, "-n", ns, "--wait", "--timeout", "5m", check=False, timeout=400)
    kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture(scope="module")
def hub_url(release) -> str:
    return f"http://{PROXY_IP}"


def login(hub_url: str, user: str) -> HubSession:
    session = HubSession(hub_url)
    session.login(user, PASSWORD)
    return session


@pytest.fixture(scope="module")
def tokens(hub_url) -> dict[str, str]:
    return {user: login(hub_url, user).new_token(user) for user in ("admin", "alice", "bob")}


def pods(kubectl, ns: str, selector: str) -> list[dict]:
    return json.loads(kubectl("get", "pods", "-n", ns, "-l", selector, "-o", "json"))["items"]


def test_every_pod_runs_restricted(release, kubectl):
    ns = release["namespace"]
    running = pods(kubectl, ns, "app.kubernetes.io/part-of=antigravity,!antigravity.io/workspace")
    components = {p["metadata"]["labels"]["app.kubernetes.io/component"] for p in running}
    assert {"hub", "proxy", "catalog", "trino", "postgresql", "minio", "keycloak"} <= components
    for pod in running:
        spec = pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in spec["containers"] + spec.get("initContainers", []):
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, c["name"]
            assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}, c["name"]
    # The namespace enforces the profile: a pod that breaks it is refused by the apiserver itself.
    bad = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "root"},
        "spec": {"containers": [{"name": "c", "image": "localhost/agp-hub:dev"}]},
    }
    out = subprocess.run(
        [str(kubectl.binary), "apply", "-n", ns, "-f", "-"],
        input=json.dumps(bad),
        capture_output=True,
        text=True,
        env=dict(os.environ, KUBECONFIG=str(kubectl.kubeconfig)),
    )
    assert out.returncode != 0 and "violates PodSecurity" in out.stderr, out.stderr


def test_keycloak_login_reaches_the_hub(hub_url):
    home = login(hub_url, "alice").get("/hub/home")
    assert home.status_code == 200 and "alice" in home.text
    r = requests.get(f"{hub_url}/services/workspaces/health", timeout=10)
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def workspace(hub_url, tokens) -> dict:
    """A workspace made through the service's API (bucket, namespace, schema, rules), alice its editor."""
    admin = Api(hub_url, tokens["admin"])
    slug = f"k8s-{uuid.uuid4().hex[:6]}"
    r = admin(
        "POST", "/workspaces", json={"slug": slug, "display_name": "Cluster test", "cpu_limit": 1, "memory_limit_gb": 2}
    )
    assert r.status_code == 201, r.text
    r = admin("PUT", f"/workspaces/{slug}/members/alice", json={"role": "editor"})
    assert r.status_code in (200, 201), r.text
    return {"slug": slug}


def test_a_members_server_is_a_restricted_pod_of_the_workspace(release, kubectl, hub_url, tokens, workspace):
    slug = workspace["slug"]
    alice = Api(hub_url, tokens["alice"])
    r = alice.hub("POST", f"/users/alice/servers/{slug}")
    assert r.status_code in (201, 202), r.text
    alice.wait_server("alice", slug, timeout=600)
    (pod,) = pods(kubectl, release["namespace"], f"antigravity.io/workspace={slug}")
    labels = pod["metadata"]["labels"]
    assert labels["antigravity.io/user"] == "alice" and labels["antigravity.io/release"] == RELEASE
    (c,) = [c for c in pod["spec"]["containers"] if c["name"] == "notebook"]
    # The workspace's quota (1 core, 2 GiB) is the limit, a quarter of it the request.
    assert c["resources"]["limits"] == {"cpu": "1", "memory": str(2 * 1024**3)}
    assert c["resources"]["requests"] == {"cpu": "250m", "memory": str(512 * 1024**2)}
    assert c["securityContext"]["runAsUser"] == 1000 and c["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["spec"]["automountServiceAccountToken"] is False


def test_sql_and_spark_in_the_pods_kernel(hub_url, tokens, workspace):
    slug = workspace["slug"]
    http = requests.Session()
    http.headers["Authorization"] = f"token {tokens['alice']}"
    kernel = NotebookKernel.new_notebook(http, f"{hub_url}/user/alice/{slug}", "cluster.ipynb")
    try:
        r = kernel.execute("%sql CREATE TABLE readings AS SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS t(id, v)")
        assert not r.errors, r.errors
        r = kernel.execute("%sql SELECT count(*) AS n FROM readings")
        assert not r.errors and "2" in r.text, r.text
        r = kernel.execute("from agp.kernels import spark\nprint('count=%d' % spark().table('readings').count())")
        assert not r.errors, r.errors
        assert "count=2" in r.text, r.text
    finally:
        kernel.shutdown()


def test_a_non_member_is_refused(hub_url, tokens, workspace):
    bob = Api(hub_url, tokens["bob"])
    r = bob.hub("POST", f"/users/bob/servers/{workspace['slug']}")
    assert r.status_code == 403, r.text


def test_upgrade_rolls_out_and_keeps_the_data(release, helm, kubectl, hub_url, tokens, workspace, tmp_path):
    ns = release["namespace"]
    before = pods(kubectl, ns, "app.kubernetes.io/component=catalog")[0]["metadata"]["name"]
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values(catalog={"resources": {"requests": {"cpu": "30m", "memory": "160Mi"}}})))
    helm("upgrade", RELEASE, str(CHART), "-n", ns, "-f", str(path), "--wait", "--timeout", "10m", timeout=700)
    after = pods(kubectl, ns, "app.kubernetes.io/component=catalog")
    assert [p["metadata"]["name"] for p in after] != [before]
    assert after[0]["spec"]["containers"][0]["resources"]["requests"]["memory"] == "160Mi"
    http = requests.Session()
    http.headers["Authorization"] = f"token {tokens['alice']}"
    kernel = NotebookKernel.new_notebook(http, f"{hub_url}/user/alice/{workspace['slug']}", "after.ipynb")
    try:
        r = kernel.execute("%sql SELECT sum(id) AS s FROM readings")
        assert not r.errors and "3" in r.text, r.text
    finally:
        kernel.shutdown()


def test_uninstall_keeps_the_secret_and_the_data(release, helm, kubectl):
    ns = release["namespace"]
    helm("uninstall", RELEASE, "-n", ns, "--wait", "--timeout", "5m", timeout=400)
    left = json.loads(kubectl("get", "secrets,pvc,deployments,statefulsets", "-n", ns, "-o", "json"))["items"]
    kinds = {(o["kind"], o["metadata"]["name"]) for o in left}
    assert ("Secret", "agp-antigravity-credentials") in kinds  # helm.sh/resource-policy: keep
    assert {"data-agp-antigravity-postgresql-0", "data-agp-antigravity-minio-0"} <= {
        n for k, n in kinds if k == "PersistentVolumeClaim"
    }
    assert not [n for k, n in kinds if k in ("Deployment", "StatefulSet")]
