"""The shared folder's pure parts: the ACL attribute's bytes, each entry's permissions, the Kubernetes claim and
volumes (a viewer's read-only), the chart's values reaching the spawner."""

import asyncio
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes_asyncio.client import ApiClient

from agp.core.models import Workspace
from agp.core.names import WorkspaceNames
from agp.spawner import kube, shared

NAMES = WorkspaceNames("grid-ops")
CHART = Path(__file__).resolve().parents[2] / "helm" / "antigravity"


def test_an_acl_round_trips_and_gives_group_and_others_nothing():
    blob = shared.encode(6, {1001: 6, 1002: 4})
    # version 2; entries sorted by tag: owner, users by uid, owning group, mask, other (linux/posix_acl_xattr.h)
    assert blob[:4] == b"\x02\x00\x00\x00"
    tags = [int.from_bytes(blob[i : i + 2], "little") for i in range(4, len(blob), 8)]
    assert tags == [0x01, 0x02, 0x02, 0x04, 0x10, 0x20]
    perms = [int.from_bytes(blob[i + 2 : i + 4], "little") for i in range(4, len(blob), 8)]
    assert perms == [6, 6, 4, 0, 6, 0]  # owning group and others nothing; the mask is the union of the named
    assert shared.decode_named(blob) == {1001: 6, 1002: 4}


def test_writers_get_rwx_on_folders_rw_on_files_readers_read():
    access = {1001: True, 1002: False}
    assert shared.permissions(access, folder=True, owner_mode=0) == {1001: 7, 1002: 5}
    assert shared.permissions(access, folder=False, owner_mode=0o600) == {1001: 6, 1002: 4}
    assert shared.permissions(access, folder=False, owner_mode=0o700) == {1001: 7, 1002: 5}  # a script stays one


def test_the_claim_is_one_per_workspace_and_valid():
    claim = kube.shared_claim(NAMES, "10Gi", "", ["ReadWriteMany"])
    manifest = ApiClient.sanitize_for_serialization(ApiClient.__new__(ApiClient), claim)
    assert manifest["metadata"]["name"] == "agp-shared-grid-ops" == kube.shared_claim_name(NAMES)
    assert manifest["metadata"]["labels"]["antigravity.io/workspace"] == "grid-ops"
    assert manifest["spec"]["accessModes"] == ["ReadWriteMany"]
    assert manifest["spec"]["resources"] == {"requests": {"storage": "10Gi"}}
    assert "storageClassName" not in manifest["spec"]  # the cluster's default class
    assert kube.shared_claim(NAMES, "1Gi", "nfs", ["ReadWriteMany"]).spec.storage_class_name == "nfs"
    kubernetes_validate.validate(manifest, "1.30", strict=True)


@pytest.mark.parametrize("writable", [True, False])
def test_a_viewers_volume_and_mount_are_read_only(writable):
    volume, mount = kube.shared_volume(NAMES, writable, "/home/jovyan/shared")
    assert volume == {
        "name": "agp-shared",
        "persistentVolumeClaim": {"claimName": "agp-shared-grid-ops", "readOnly": not writable},
    }
    assert mount == {"name": "agp-shared", "mountPath": "/home/jovyan/shared", "readOnly": not writable}


KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
"""

WS = Workspace(slug="grid-ops", display_name="Grid", cpu_limit=1.0, memory_limit_gb=2.0, storage_limit_gb=5)


@pytest.fixture
def kubeconfig(tmp_path, monkeypatch):
    """KubeSpawner loads a client configuration when it is made; it is never used here (nothing is sent)."""
    import kubernetes_asyncio.config.kube_config as kube_config

    (tmp_path / "kubeconfig").write_text(KUBECONFIG)
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(tmp_path / "kubeconfig"))


def manifests(*writable: bool, shared_storage: bool = True) -> list[dict]:
    """The pods one WorkspaceKubeSpawner, configured as the chart does, asks for at successive starts of a member
    whose write access is ``writable[i]`` at start i (a mock user and hub, as kubespawner's own tests build them)."""

    async def run() -> list[dict]:
        sp = kube.WorkspaceKubeSpawner(
            _mock=True,
            shared_storage=shared_storage,
            volumes=[{"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}],
            volume_mounts=[{"name": "home", "mountPath": "/home/jovyan"}],
        )
        sp.workspace, sp.workspace_names, sp.workspace_environment = WS, NAMES, {"AGP_WORKSPACE": "grid-ops"}
        out = []
        for w in writable:
            sp.shared_writable = w
            sp.apply_workspace()
            pod = await sp.get_pod_manifest()
            out.append(ApiClient.sanitize_for_serialization(ApiClient.__new__(ApiClient), pod))
        return out

    return asyncio.run(run())


def test_the_spawners_pod_mounts_the_shared_claim_as_the_role_allows(kubeconfig):
    # a viewer, then the same server started again after the member became an editor
    viewer, editor = manifests(False, True)
    volumes = {v["name"]: v for v in viewer["spec"]["volumes"]}
    mounts = {m["name"]: m for m in viewer["spec"]["containers"][0]["volumeMounts"]}
    assert volumes["agp-shared"]["persistentVolumeClaim"] == {"claimName": "agp-shared-grid-ops", "readOnly": True}
    assert mounts["agp-shared"] == {"name": "agp-shared", "mountPath": "/home/jovyan/shared", "readOnly": True}
    assert "home" in volumes and mounts["home"]["mountPath"] == "/home/jovyan"
    env = {e["name"]: e.get("value") for e in viewer["spec"]["containers"][0]["env"]}
    assert env["AGP_SHARED_DIR"] == "/home/jovyan/shared"
    kubernetes_validate.validate({"apiVersion": "v1", "kind": "Pod", **viewer}, "1.30", strict=True)

    shared_volumes = [v for v in editor["spec"]["volumes"] if v["name"] == "agp-shared"]
    assert shared_volumes == [
        {"name": "agp-shared", "persistentVolumeClaim": {"claimName": "agp-shared-grid-ops", "readOnly": False}}
    ]
    mounts = [m for m in editor["spec"]["containers"][0]["volumeMounts"] if m["name"] == "agp-shared"]
    assert [m["readOnly"] for m in mounts] == [False]


def test_off_no_shared_volume(kubeconfig):
    (pod,) = manifests(True, shared_storage=False)
    assert [v["name"] for v in pod["spec"]["volumes"]] == ["home"]


def test_the_chart_turns_it_on_with_its_values():
    values = yaml.safe_load((CHART / "values.yaml").read_text())["singleuser"]["sharedStorage"]
    assert values == {"enabled": True, "capacity": "10Gi", "storageClass": "", "accessModes": ["ReadWriteMany"]}
    text = (CHART / "templates" / "configmap.yaml").read_text()
    for trait in ("shared_storage", "shared_storage_capacity", "shared_storage_class", "shared_storage_access_modes"):
        assert f'"{trait}" $shared.' in text
        assert trait in kube.WorkspaceKubeSpawner.class_own_traits()
    # The hub's Role lets KubeSpawner make the claims.
    role = (CHART / "templates" / "hub.yaml").read_text()
    assert "resources: [pods, persistentvolumeclaims, services]" in role


@pytest.mark.parametrize(("writable", "mode"), [(True, "rw"), (False, "ro")])
def test_the_docker_volume_is_one_per_workspace_read_only_for_viewers(writable, mode):
    from agp.spawner import docker

    assert docker.shared_volume(NAMES, writable, "/home/jovyan/shared") == {
        "agp-shared-grid-ops": {"bind": "/home/jovyan/shared", "mode": mode}
    }


def test_a_server_stops_when_its_member_loses_the_folder_or_writing():
    from agp.hub.shared_sync import lost_access

    before = {"a": {"alice": True, "bob": True, "carol": False}, "b": {"dave": False}}
    now = {"a": {"alice": True, "bob": False, "carol": True}}  # bob demoted, carol promoted, b gone (not ready)
    assert lost_access(before, now) == [("bob", "a"), ("dave", "b")]
    assert lost_access(now, now) == []
    assert lost_access(now, {"a": {"alice": True}}) == [("bob", "a"), ("carol", "a")]  # removed


def test_only_the_lab_as_root_sets_acls_volume_flavours_stop_servers(tmp_path):
    from agp.core.settings import Settings
    from agp.hub.shared_sync import SharedFolders

    for spawner, volumes in (("kubernetes", True), ("docker", True), ("local", False)):
        folders = SharedFolders(Settings(spawner=spawner, lab_dir=tmp_path))
        assert folders.volumes is volumes
        assert not (folders.active and volumes)
