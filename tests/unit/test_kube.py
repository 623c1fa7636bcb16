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


def named(display_name: str) -> Workspace:
    """WS with another display name."""
    return Workspace(
        slug=WS.slug,
        display_name=display_name,
        cpu_limit=WS.cpu_limit,
        memory_limit_gb=WS.memory_limit_gb,
        storage_limit_gb=WS.storage_limit_gb,
        max_servers=WS.max_servers,
    )


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


async def _spawned_manifest(ws: Workspace = WS, env: dict[str, str] = ENV) -> dict:
    """The pod the real WorkspaceKubeSpawner asks for: ``get_pod_manifest()`` after the workspace is applied (a mock
    user and hub, as kubespawner's own tests build them; no cluster)."""
    spawner = kube.WorkspaceKubeSpawner(_mock=True)
    spawner.workspace, spawner.workspace_names = ws, NAMES
    spawner.workspace_environment = env
    spawner.apply_workspace()
    pod = await spawner.get_pod_manifest()
    return ApiClient.sanitize_for_serialization(ApiClient.__new__(ApiClient), pod)


KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
"""


def test_the_spawners_own_pod_carries_every_setting_of_the_builder(tmp_path, monkeypatch):
    # Before: start() copied resources, labels and env only, and uid, gid, fs_gid and both security contexts
    # never reached the pod (the builder's test alone passed).
    import asyncio

    # KubeSpawner loads a client configuration when it is made; it is never used here (nothing is sent).
    import kubernetes_asyncio.config.kube_config as kube_config

    (tmp_path / "kubeconfig").write_text(KUBECONFIG)
    # Read from the environment when kubernetes_asyncio is imported: set where it keeps it.
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(tmp_path / "kubeconfig"))

    pod = asyncio.run(_spawned_manifest())
    spec, container = pod["spec"], pod["spec"]["containers"][0]
    assert spec["securityContext"]["fsGroup"] == 100
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["runAsUser"] == 1000
    assert container["securityContext"]["runAsGroup"] == 100
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert spec["automountServiceAccountToken"] is False
    assert container["resources"]["limits"] == {"cpu": 2.0, "memory": 4096 * 1024**2}  # KubeSpawner counts bytes
    assert pod["metadata"]["labels"]["antigravity.io/workspace"] == "grid-ops"
    assert {"name": "AGP_TRINO_SCHEMA", "value": "grid_ops"} in container["env"]
    kubernetes_validate.validate({"apiVersion": "v1", "kind": "Pod", **pod}, "1.30", strict=True)


# An owner's free text that KubeSpawner would expand as a template: gigabytes of padding, an attribute error.
TEMPLATE_TEXT = "{prefix:>99}{raw_username}{prefix.x}{"


def test_a_display_name_reaches_the_pod_as_written(tmp_path, monkeypatch):
    # Before: KubeSpawner expanded it in the annotation and the environment ({prefix:>2000000000} made the hub
    # allocate gigabytes; {prefix.x} or a lone brace failed every start of the workspace).
    import asyncio

    import kubernetes_asyncio.config.kube_config as kube_config

    (tmp_path / "kubeconfig").write_text(KUBECONFIG)
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(tmp_path / "kubeconfig"))
    ws = named(TEMPLATE_TEXT)
    pod = asyncio.run(_spawned_manifest(ws, {**ENV, "AGP_WORKSPACE_DISPLAY_NAME": TEMPLATE_TEXT}))
    assert pod["metadata"]["annotations"]["antigravity.io/workspace-display-name"] == TEMPLATE_TEXT
    assert {"name": "AGP_WORKSPACE_DISPLAY_NAME", "value": TEMPLATE_TEXT} in pod["spec"]["containers"][0]["env"]
