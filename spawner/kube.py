"""The Kubernetes flavour: a KubeSpawner whose pod settings come from pure builders of the workspace."""

from __future__ import annotations

from functools import partial

from jupyterhub.utils import exponential_backoff
from kubespawner import KubeSpawner
from kubespawner.objects import make_pvc
from traitlets import Bool, List, Unicode

from agp.core.models import Workspace
from agp.core.names import WorkspaceNames

from .local import DEFAULT_KERNEL, WorkspaceMixin
from .workspace import PART_OF, SERVER_GID, SERVER_UID, label_value, labels, literal, resources

__all__ = [
    "PART_OF",
    "TRAITS",
    "WorkspaceKubeSpawner",
    "label_value",
    "labels",
    "pod_settings",
    "resources",
    "shared_claim",
    "shared_claim_name",
    "shared_volume",
]


def pod_settings(username: str, names: WorkspaceNames, ws: Workspace, env: dict[str, str]) -> dict[str, object]:
    """Everything the workspace decides about its pod, as keyword arguments of ``kubespawner.objects.make_pod``."""
    return {
        **resources(ws),
        "labels": labels(username, names),
        "annotations": {"antigravity.io/workspace-display-name": ws.display_name},
        "env": dict(sorted(env.items())),
        "uid": SERVER_UID,
        "gid": SERVER_GID,
        "fs_gid": SERVER_GID,
        "allow_privilege_escalation": False,
        "container_security_context": {"capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True},
        "pod_security_context": {"seccompProfile": {"type": "RuntimeDefault"}},
        "automount_service_account_token": False,
    }


SHARED_VOLUME = "agp-shared"


def shared_claim_name(names: WorkspaceNames) -> str:
    """The PersistentVolumeClaim of a workspace's shared folder: one per workspace, kept when it is archived."""
    return f"agp-shared-{names.slug}"


def shared_claim(names: WorkspaceNames, capacity: str, storage_class: str, access_modes: list[str]):
    """The workspace's shared claim (a ``V1PersistentVolumeClaim``); an empty ``storage_class`` is the cluster's
    default. Servers of several members use it at once, on any node: ``ReadWriteMany`` unless told otherwise."""
    return make_pvc(
        name=shared_claim_name(names),
        storage_class=storage_class or None,
        access_modes=list(access_modes),
        selector=None,
        storage=capacity,
        labels={
            "app.kubernetes.io/part-of": PART_OF,
            "app.kubernetes.io/component": "workspace-shared-folder",
            "antigravity.io/workspace": names.slug,
        },
    )


def shared_volume(names: WorkspaceNames, writable: bool, mount_path: str) -> tuple[dict, dict]:
    """The pod's volume and the server's mount of the workspace's shared claim. A viewer's is read-only in both:
    the kubelet mounts it read-only, which a process in the (unprivileged) container cannot undo."""
    volume = {
        "name": SHARED_VOLUME,
        "persistentVolumeClaim": {"claimName": shared_claim_name(names), "readOnly": not writable},
    }
    return volume, {"name": SHARED_VOLUME, "mountPath": mount_path, "readOnly": not writable}


# pod_settings key -> the KubeSpawner trait that carries it into get_pod_manifest() (make_pod's argument names and
# KubeSpawner's trait names differ for a few).
TRAITS = {
    "cpu_limit": "cpu_limit",
    "cpu_guarantee": "cpu_guarantee",
    "mem_limit": "mem_limit",
    "mem_guarantee": "mem_guarantee",
    "uid": "uid",
    "gid": "gid",
    "fs_gid": "fs_gid",
    "allow_privilege_escalation": "allow_privilege_escalation",
    "container_security_context": "container_security_context",
    "pod_security_context": "pod_security_context",
    "automount_service_account_token": "automount_service_account_token",
}


def _literal(values: dict[str, str]) -> dict[str, str]:
    return {k: literal(v) for k, v in values.items()}


class WorkspaceKubeSpawner(WorkspaceMixin, KubeSpawner):
    """One pod per (user, workspace) with the workspace's quota, labels, endpoints and security settings."""

    shared_storage = Bool(
        False,
        config=True,
        help="""Mount the workspace's shared folder, a PersistentVolumeClaim per workspace (made by the first
        server that needs it), into every member's server: read-write for owners and editors, read-only for
        viewers (and for everyone once the workspace is archived).""",
    )
    shared_storage_capacity = Unicode("10Gi", config=True, help="Size of each workspace's shared claim.")
    shared_storage_class = Unicode("", config=True, help="StorageClass of the shared claims; empty: the default.")
    shared_storage_access_modes = List(
        Unicode(),
        ["ReadWriteMany"],
        config=True,
        help="""Access modes of the shared claims: ReadWriteMany, as members' servers may run on different nodes
        (ReadWriteOnce only where all servers share one node).""",
    )
    shared_mount_path = Unicode(
        "/home/jovyan/shared", config=True, help="Where the shared folder appears in a server: shared/ in its home."
    )
    shared_writable = False

    def apply_workspace(self) -> None:
        """Put everything :func:`pod_settings` decides on the spawner, where ``get_pod_manifest()`` reads it; labels,
        annotations and environment are merged into what the deployment configured, the rest replaces it."""
        settings = pod_settings(self.user.name, self.workspace_names, self.workspace, self.workspace_environment)
        for key, trait in TRAITS.items():
            setattr(self, trait, settings[key])
        self.extra_labels = {**self.extra_labels, **settings["labels"]}
        # KubeSpawner expands annotations and environment values as templates: the workspace's values are literal text
        self.extra_annotations = {**self.extra_annotations, **_literal(settings["annotations"])}
        self.environment = {**self.environment, **_literal(settings["env"])}
        missed = set(settings) - set(TRAITS) - {"labels", "annotations", "env"}
        if missed:  # a new builder key must be carried over here, not dropped on the way to the pod
            raise RuntimeError(f"pod_settings keys not applied to the spawner: {sorted(missed)}")
        # The shared folder's volume replaces any of an earlier start (the member's role may have changed since).
        volumes = [v for v in self.volumes if v.get("name") != SHARED_VOLUME]
        mounts = [m for m in self.volume_mounts if m.get("name") != SHARED_VOLUME]
        if self.shared_storage:
            volume, mount = shared_volume(self.workspace_names, self.shared_writable, self.shared_mount_path)
            volumes, mounts = [*volumes, volume], [*mounts, mount]
            self.environment = {**self.environment, "AGP_SHARED_DIR": literal(self.shared_mount_path)}
        self.volumes, self.volume_mounts = volumes, mounts

    async def ensure_shared_claim(self) -> None:
        """Make the workspace's shared claim unless it exists (as KubeSpawner makes the home's)."""
        claim = shared_claim(
            self.workspace_names,
            self.shared_storage_capacity,
            self.shared_storage_class,
            self.shared_storage_access_modes,
        )
        timeout = self.k8s_api_request_timeout
        await exponential_backoff(
            partial(self._make_create_pvc_request, claim, timeout),
            f"Could not create the shared claim {claim.metadata.name}",
            timeout=self.k8s_api_request_retry_timeout,
        )

    async def start(self):
        await self.check_workspace()
        self.apply_workspace()
        if self.shared_storage:
            await self.ensure_shared_claim()
        self.add_args(DEFAULT_KERNEL)
        return await super().start()
