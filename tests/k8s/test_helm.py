"""The Helm chart on a real cluster: ``helm install`` of helm/antigravity with the demo PostgreSQL, MinIO and
Keycloak, under the restricted Pod Security profile; a Keycloak login to the hub; a workspace made through the
service's API; a member's server started by KubeSpawner as a pod with the workspace's labels, resources and
security context; in its kernel, ``%sql`` on a workspace table through Trino in the cluster and ``spark()`` reading
it; a non-member refused; the workspace's shared claim, written by an editor, read-only for a viewer, whose server
stops when he is removed; job runs as Kubernetes Jobs (a notebook whose ``%sql`` writes a table with the run's
parameters, read back through Trino; its pod restricted, with the workspace's labels and quota, gone after the run;
a cancel that deletes the pod); ``helm upgrade`` with a changed value keeps the data; ``helm uninstall`` keeps what
the chart says it keeps.

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


def test_members_share_the_workspaces_claim_a_viewer_only_reads(release, kubectl, hub_url, tokens, workspace):
    """alice (editor) writes ~/shared from her pod's kernel; bob, added as a viewer, reads it in his pod and is
    refused writing by the read-only mount; removed, his server is stopped by the workspace service."""
    slug, ns = workspace["slug"], release["namespace"]
    admin, bob = Api(hub_url, tokens["admin"]), Api(hub_url, tokens["bob"])
    kernels = []
    try:
        http = requests.Session()
        http.headers["Authorization"] = f"token {tokens['alice']}"
        alice = NotebookKernel.new_notebook(http, f"{hub_url}/user/alice/{slug}", "shared-a.ipynb")
        kernels.append(alice)
        r = alice.execute("open('shared/from-alice.txt', 'w').write('hello team')")
        assert not r.errors, r.errors
        claim = json.loads(kubectl("get", "pvc", f"agp-shared-{slug}", "-n", ns, "-o", "json"))
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"]

        assert admin("PUT", f"/workspaces/{slug}/members/bob", json={"role": "viewer"}).status_code == 200
        assert bob.hub("POST", f"/users/bob/servers/{slug}").status_code in (201, 202)
        bob.wait_server("bob", slug, timeout=600)
        (pod,) = pods(kubectl, ns, f"antigravity.io/workspace={slug},antigravity.io/user=bob")
        (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == "agp-shared"]
        assert volume["persistentVolumeClaim"] == {"claimName": f"agp-shared-{slug}", "readOnly": True}
        http = requests.Session()
        http.headers["Authorization"] = f"token {tokens['bob']}"
        viewer = NotebookKernel.new_notebook(http, f"{hub_url}/user/bob/{slug}", "shared-b.ipynb")
        kernels.append(viewer)
        r = viewer.execute("print(open('shared/from-alice.txt').read())")
        assert not r.errors and "hello team" in r.text, (r.errors, r.text)
        r = viewer.execute(
            "try:\n    open('shared/from-bob.txt', 'w')\nexcept OSError as e:\n    print('refused', e.errno)"
        )
        assert "refused 30" in r.text, (r.errors, r.text)  # EROFS: the kubelet mounted it read-only

        kernels.remove(viewer)
        assert admin("DELETE", f"/workspaces/{slug}/members/bob").status_code == 200
        deadline = time.monotonic() + 120
        while bob.hub("GET", "/users/bob").json().get("servers", {}).get(slug):
            assert time.monotonic() < deadline, "bob's server still runs after his removal"
            time.sleep(1)
    finally:
        for kernel in kernels:
            kernel.shutdown()
        bob.hub("DELETE", f"/users/bob/servers/{slug}")


# ------------------------------------------------------------------------------------------------------------ jobs
# A job run is a Kubernetes Job per attempt (agp.hub.jobs.kube), made by the workspace service in the hub's pod.

ENDED = {"succeeded", "failed", "cancelled", "timed_out"}


def job_notebook(*cells: str, parameters: str | None = None) -> str:
    """A notebook's JSON: an optional cell tagged ``parameters`` (papermill's convention), then ``cells``."""
    out = []
    if parameters is not None:
        out.append({"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": parameters})
    out += [{"cell_type": "code", "metadata": {}, "source": src} for src in cells]
    for cell in out:
        cell.update(outputs=[], execution_count=None)
    kernelspec = {"name": "agp", "display_name": "agp", "language": "python"}
    return json.dumps({"cells": out, "metadata": {"kernelspec": kernelspec}, "nbformat": 4, "nbformat_minor": 5})


def submit(api: Api, slug: str, source: str, **body) -> dict:
    r = api(
        "POST", f"/workspaces/{slug}/jobs", json={"kind": "notebook", "filename": "job.ipynb", "source": source, **body}
    )
    assert r.status_code == 201, r.text
    return r.json()


def run_of(api: Api, slug: str, run_id: int) -> dict:
    r = api("GET", f"/workspaces/{slug}/runs/{run_id}")
    assert r.status_code == 200, r.text
    return r.json()


def run_pods(kubectl, ns: str, run_id: int) -> list[dict]:
    return pods(kubectl, ns, f"antigravity.io/run=agp-run-{run_id}-1")


def watch_run(api: Api, kubectl, ns: str, slug: str, run_id: int, until: set[str], timeout: float = 600) -> tuple:
    """Poll the run and its pods until the run's state is in ``until``: (the run, the pod as last seen running or
    ended, when its container started: a monotonic time)."""
    deadline = time.monotonic() + timeout
    seen, started = None, None
    while True:
        run = run_of(api, slug, run_id)
        for pod in run_pods(kubectl, ns, run_id):
            seen = pod
            states = [cs.get("state", {}) for cs in pod.get("status", {}).get("containerStatuses") or []]
            if started is None and any("running" in st or "terminated" in st for st in states):
                started = time.monotonic()
        if run["state"] in until:
            return run, seen, started
        assert time.monotonic() < deadline, f"run {run_id} still {run['state']} after {timeout} s: {run}"
        time.sleep(0.3)


def wait_gone(kubectl, ns: str, run_id: int, timeout: float = 120) -> None:
    """The attempt's pod and Job are deleted (the scheduler's cleanup, or the cancel)."""
    deadline = time.monotonic() + timeout
    name = f"agp-run-{run_id}-1"
    while True:
        left = run_pods(kubectl, ns, run_id)
        job = kubectl("get", "job", name, "-n", ns, "--ignore-not-found", "-o", "name").strip()
        if not left and not job:
            return
        assert time.monotonic() < deadline, f"run {run_id} left {[p['metadata']['name'] for p in left]} {job}"
        time.sleep(1)


def test_a_notebook_job_writes_a_table_as_a_restricted_pod_of_the_workspace(
    release, kubectl, hub_url, tokens, workspace
):
    ns, slug = release["namespace"], workspace["slug"]
    alice = Api(hub_url, tokens["alice"])
    source = job_notebook(
        "%sql CREATE TABLE from_job AS SELECT {{n}} AS n, '{{label}}' AS label",
        "print('rows', n * 2)",
        parameters="n = 1\nlabel = 'default'",
    )
    t0 = time.monotonic()
    out = submit(alice, slug, source, parameters={"n": 21, "label": "nightly"}, timeout_seconds=900)
    run_id = out["run"]["id"]
    run, pod, started = watch_run(alice, kubectl, ns, slug, run_id, ENDED)
    ended = time.monotonic()
    log = alice("GET", f"/workspaces/{slug}/runs/{run_id}/log").text
    assert run["state"] == "succeeded", (run, log[-3000:])
    print(
        f"\njob run on the cluster: submit to container start {started - t0:.1f} s, "
        f"submit to succeeded {ended - t0:.1f} s"
    )
    # The run's pod: in the release's namespace (which enforces the restricted profile, so the apiserver itself
    # admitted it as restricted), with the workspace's labels and quota, as the owner's server runs.
    assert pod is not None and pod["metadata"]["namespace"] == ns
    labels = pod["metadata"]["labels"]
    assert labels["antigravity.io/workspace"] == slug and labels["antigravity.io/user"] == "alice"
    assert labels["antigravity.io/release"] == RELEASE and labels["app.kubernetes.io/component"] == "job-run"
    spec = pod["spec"]
    (c,) = spec["containers"]
    assert c["image"] == "localhost/agp-notebook:dev"
    assert c["resources"]["limits"] == {"cpu": "1", "memory": str(2 * 1024**3)}
    assert c["resources"]["requests"] == {"cpu": "250m", "memory": str(512 * 1024**2)}
    assert spec["securityContext"]["runAsUser"] == 1000 and spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert spec["automountServiceAccountToken"] is False
    # Its hub token is in no spec: the pod reads it from the attempt's Secret.
    (token,) = [e for e in c["env"] if e["name"] == "JUPYTERHUB_API_TOKEN"]
    assert "value" not in token and token["valueFrom"]["secretKeyRef"]["name"] == f"agp-run-{run_id}-1"
    # The parameters reached it: papermill injected them, %sql and Python used them.
    assert "rows 42" in log, log[-3000:]
    nb = alice("GET", f"/workspaces/{slug}/runs/{run_id}/output").json()
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and "n = 21" in "".join(injected[0]["source"])
    # Once it ended, its Job, pod and token Secret are gone.
    wait_gone(kubectl, ns, run_id)
    assert not kubectl("get", "secret", f"agp-run-{run_id}-1", "-n", ns, "--ignore-not-found", "-o", "name").strip()
    # The table it wrote, read back through the cluster's Trino from the owner's server.
    http = requests.Session()
    http.headers["Authorization"] = f"token {tokens['alice']}"
    kernel = NotebookKernel.new_notebook(http, f"{hub_url}/user/alice/{slug}", "readback.ipynb")
    try:
        r = kernel.execute("%sql SELECT n, label FROM from_job")
        assert not r.errors and "21" in r.text and "nightly" in r.text, r.text
    finally:
        kernel.shutdown()


def test_cancel_of_a_running_job_deletes_its_pod(release, kubectl, hub_url, tokens, workspace):
    ns, slug = release["namespace"], workspace["slug"]
    alice = Api(hub_url, tokens["alice"])
    out = submit(alice, slug, job_notebook("import time\nprint('sleeping', flush=True)\ntime.sleep(3600)"))
    run_id = out["run"]["id"]
    deadline = time.monotonic() + 600
    while "sleeping" not in alice("GET", f"/workspaces/{slug}/runs/{run_id}/log").text:  # its kernel runs the cell
        run = run_of(alice, slug, run_id)
        assert run["state"] in ("queued", "running"), run
        assert time.monotonic() < deadline, f"run {run_id} did not reach its cell: {run}"
        time.sleep(1)
    assert [p["status"]["phase"] for p in run_pods(kubectl, ns, run_id)] == ["Running"]
    t0 = time.monotonic()
    r = alice("POST", f"/workspaces/{slug}/runs/{run_id}/cancel")
    assert r.status_code == 200, r.text
    run, _, _ = watch_run(alice, kubectl, ns, slug, run_id, ENDED, timeout=120)
    assert run["state"] == "cancelled", run
    wait_gone(kubectl, ns, run_id)
    print(f"\ncancel to pod and Job gone: {time.monotonic() - t0:.1f} s")
    # What it printed before it was stopped is kept with the run, though its pod is gone.
    assert "sleeping" in alice("GET", f"/workspaces/{slug}/runs/{run_id}/log").text


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
