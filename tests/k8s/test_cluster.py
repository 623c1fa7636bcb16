"""The single-node test cluster works for what the chart tests build on: a pod from our locally built base image
runs under the restricted Pod Security profile, serves on its pod IP, a ClusterIP service routes to it from the
host and from another pod, and ``helm install --wait`` of a chart goes through."""

from __future__ import annotations

import json
import textwrap
import time
import urllib.request
import uuid

import pytest

pytestmark = pytest.mark.kubernetes

MARKER = f"agp-k8s-smoke-{uuid.uuid4().hex[:8]}"

RESTRICTED = {  # what Pod Security "restricted" asks of a container; the chart's pods will run so
    "runAsNonRoot": True,
    "runAsUser": 65534,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def web_pod(name: str, image: str, marker: str) -> dict:
    """A pod that serves ``marker`` over HTTP on port 8080 with Python from the base image."""
    script = f"mkdir -p /tmp/www && echo {marker} > /tmp/www/index.html && exec python3 -m http.server -d /tmp/www 8080"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 1,  # python as pid 1 ignores SIGTERM: do not wait the default 30 s
            "containers": [
                {
                    "name": "web",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", script],
                    "ports": [{"containerPort": 8080}],
                    "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                    "securityContext": RESTRICTED,
                    "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
                }
            ],
        },
    }


def http_get(url: str, timeout: float = 30) -> str:
    """GET ``url``, retrying until it answers (a new endpoint reaches kube-proxy's rules within a second or two)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=3) as r:  # noqa: S310 - http URLs the test builds
                return r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_node_is_ready_and_of_the_built_version(cluster, kubectl):
    version = json.loads(kubectl("version", "-o", "json"))
    assert version["serverVersion"]["gitVersion"] == cluster.settings.kubernetes_version
    node = json.loads(kubectl("get", "node", cluster.settings.node_name, "-o", "json"))
    ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
    assert ready == "True"


def test_pod_from_the_base_image_serves_on_its_ip_and_behind_a_cluster_ip(base_image, kubectl, namespace):
    ns = namespace()
    kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(web_pod("web", base_image, MARKER)))
    kubectl("wait", "-n", ns, "pod/web", "--for=condition=Ready", "--timeout=120s")
    pod = json.loads(kubectl("get", "-n", ns, "pod/web", "-o", "json"))
    assert pod["status"]["phase"] == "Running"
    pod_ip = pod["status"]["podIP"]
    assert http_get(f"http://{pod_ip}:8080/").strip() == MARKER

    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "site"},  # not the pod's name, which its /etc/hosts maps to the pod itself
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(service))
    cluster_ip = json.loads(kubectl("get", "-n", ns, "service/site", "-o", "json"))["spec"]["clusterIP"]
    assert http_get(f"http://{cluster_ip}/").strip() == MARKER

    # From inside a pod too (through the bridge, hairpin included: the client is the server's own pod), by the
    # service's name through the cluster DNS.
    fetch = "import urllib.request as u; print(u.urlopen('http://site/', timeout=10).read().decode())"
    out = kubectl("exec", "-n", ns, "web", "--", "python3", "-c", fetch)
    assert out.strip() == MARKER


def test_cluster_dns_resolves_services_by_name(cluster, base_image, kubectl, namespace):
    ns = namespace()
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(web_pod("dns", base_image, MARKER)))
    kubectl("wait", "-n", ns, "pod/dns", "--for=condition=Ready", "--timeout=120s")
    names = ["kubernetes.default", "kubernetes.default.svc.cluster.local", "kube-dns.kube-system"]
    script = f"import socket; print(' '.join(socket.gethostbyname(n) for n in {names!r}))"
    out = kubectl("exec", "-n", ns, "dns", "--", "python3", "-c", script).split()
    assert out == [cluster.settings.service_ip, cluster.settings.service_ip, cluster.settings.dns_ip]


def test_helm_install_waits_for_a_chart_to_be_ready(base_image, helm, kubectl, namespace, tmp_path):
    ns = namespace()
    chart = tmp_path / "smoke"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        textwrap.dedent("""\
            apiVersion: v2
            name: smoke
            version: 0.1.0
            kubeVersion: ">=1.30.0-0"
            """)
    )
    (chart / "values.yaml").write_text(f"image: {base_image}\nmarker: {MARKER}\nreplicas: 2\n")
    pod = web_pod("x", base_image, "{{ .Values.marker }}")["spec"]
    pod["containers"][0]["image"] = "{{ .Values.image }}"
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "{{ .Release.Name }}", "labels": {"app": "{{ .Release.Name }}"}},
        "spec": {
            "replicas": "REPLICAS",
            "selector": {"matchLabels": {"app": "{{ .Release.Name }}"}},
            "template": {"metadata": {"labels": {"app": "{{ .Release.Name }}"}}, "spec": pod},
        },
    }
    rendered = json.dumps(deployment, indent=1).replace('"REPLICAS"', "{{ .Values.replicas }}")
    (chart / "templates" / "deployment.yaml").write_text(rendered)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "{{ .Release.Name }}"},
        "spec": {"selector": {"app": "{{ .Release.Name }}"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    (chart / "templates" / "service.yaml").write_text(json.dumps(service, indent=1))

    helm("lint", str(chart))
    release = f"smoke-{uuid.uuid4().hex[:6]}"
    start = time.monotonic()
    helm("install", release, str(chart), "-n", ns, "--wait", "--timeout", "180s")
    took = time.monotonic() - start
    status = json.loads(helm("status", release, "-n", ns, "-o", "json"))
    assert status["info"]["status"] == "deployed"
    dep = json.loads(kubectl("get", "-n", ns, f"deployment/{release}", "-o", "json"))
    assert dep["status"].get("readyReplicas") == 2
    cluster_ip = json.loads(kubectl("get", "-n", ns, f"service/{release}", "-o", "json"))["spec"]["clusterIP"]
    assert http_get(f"http://{cluster_ip}/").strip() == MARKER
    helm("uninstall", release, "-n", ns, "--wait")
    print(f"helm install --wait of 2 replicas took {took:.1f} s")


def test_a_claim_of_the_default_storage_class_keeps_data_across_pods(base_image, kubectl, namespace):
    ns = namespace()
    kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(claim))

    def writer(name: str, script: str) -> dict:
        pod = web_pod(name, base_image, MARKER)
        container = pod["spec"]["containers"][0]
        container["command"] = ["sh", "-c", script]
        del container["readinessProbe"]
        container["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
        pod["spec"]["restartPolicy"] = "Never"
        pod["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
        return pod

    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(writer("first", f"echo {MARKER} > /data/kept")))
    kubectl("wait", "-n", ns, "pod/first", "--for=jsonpath={.status.phase}=Succeeded", "--timeout=120s")
    kubectl("delete", "-n", ns, "pod/first")
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(writer("second", "cat /data/kept")))
    kubectl("wait", "-n", ns, "pod/second", "--for=jsonpath={.status.phase}=Succeeded", "--timeout=120s")
    assert kubectl("logs", "-n", ns, "second").strip() == MARKER
    bound = json.loads(kubectl("get", "-n", ns, "pvc/data", "-o", "json"))
    assert bound["status"]["phase"] == "Bound"
    assert bound["spec"]["storageClassName"] == "standard"
