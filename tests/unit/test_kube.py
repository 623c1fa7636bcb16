"""The Kubernetes flavour's pure builders, against literal values and the Kubernetes schema (no cluster)."""

import kubernetes_validate
import pytest
from kubernetes_asyncio.client import ApiClient
from kubespawner.objects import make_pod

from agp.core.models import Workspace
from agp.core.names import WorkspaceNames
from agp.spawner import kube

WS = Workspace(
    slug="grid-ops",
    display_name="Grid operations",
    cpu_limit=2.0,
    memory_limit_gb=4.0,
    storage_limit_gb=50,
    max_servers=10,
)
NAMES = WorkspaceNames("grid-ops")
ENV = {"AGP_WORKSPACE": "grid-ops", "AGP_TRINO_SCHEMA": "grid_ops"}


def test_quota_becomes_resources():
    assert kube.resources(WS) == {
        "cpu_limit": 2.0,
        "cpu_guarantee": 0.5,
        "mem_limit": "4096M",
        "mem_guarantee": "1024M",
    }


def test_labels():
    assert kube.labels("alice@corp.example", NAMES) == {
        "app.kubernetes.io/part-of": "antigravity",
        "app.kubernetes.io/component": "workspace-server",
        "antigravity.io/workspace": "grid-ops",
        "antigravity.io/user": "alice_corp.example",
    }


@pytest.mark.parametrize(("raw", "label"), [("-x-", "x"), ("a" * 80, "a" * 63), ("@@", "none")])
def test_label_values_are_always_valid(raw, label):
    assert kube.label_value(raw) == label


def _pod() -> dict:
    settings = kube.pod_settings("alice", NAMES, WS, ENV)
    pod = make_pod(
        name="jupyter-alice--grid-ops",
        cmd=["jupyterhub-singleuser"],
        port=8888,
        image="antigravity/notebook:0.1.0",
        image_pull_policy="IfNotPresent",
        **settings,
    )
    # Serialise without a client instance: one would need an event loop and a cluster config.
    return ApiClient.sanitize_for_serialization(ApiClient.__new__(ApiClient), pod)


def test_pod_manifest_literal_parts():
    pod = _pod()
    container = pod["spec"]["containers"][0]
    assert pod["metadata"]["labels"]["antigravity.io/workspace"] == "grid-ops"
    assert container["resources"] == {
        "limits": {"cpu": 2.0, "memory": "4096M"},
        "requests": {"cpu": 0.5, "memory": "1024M"},
    }
    assert {"name": "AGP_TRINO_SCHEMA", "value": "grid_ops"} in container["env"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["automountServiceAccountToken"] is False


def test_pod_manifest_is_valid_kubernetes():
    pod = {"apiVersion": "v1", "kind": "Pod", **_pod()}
    kubernetes_validate.validate(pod, "1.30", strict=True)


def test_spawners_are_registered_as_entry_points():
    from importlib.metadata import entry_points

    found = {ep.name: ep.value for ep in entry_points(group="jupyterhub.spawners")}
    assert found["workspace-local"] == "agp.spawner.local:WorkspaceLocalSpawner"
    assert found["workspace-kube"] == "agp.spawner.kube:WorkspaceKubeSpawner"
    from agp.spawner.kube import WorkspaceKubeSpawner
    from agp.spawner.local import WorkspaceLocalSpawner

    assert WorkspaceKubeSpawner.class_traits()["db_url"].name == "db_url"
    assert WorkspaceLocalSpawner.class_traits()["db_url"].name == "db_url"
