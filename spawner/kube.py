"""The Kubernetes flavour: a KubeSpawner whose pod settings come from pure builders of the workspace."""

from __future__ import annotations

from kubespawner import KubeSpawner

from agp.core.models import Workspace
from agp.core.names import WorkspaceNames

from .local import DEFAULT_KERNEL, WorkspaceMixin
from .workspace import PART_OF, SERVER_GID, SERVER_UID, label_value, labels, literal, resources

__all__ = ["PART_OF", "TRAITS", "WorkspaceKubeSpawner", "label_value", "labels", "pod_settings", "resources"]


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

    async def start(self):
        await self.check_workspace()
        self.apply_workspace()
        self.add_args(DEFAULT_KERNEL)
        return await super().start()
