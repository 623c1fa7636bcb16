"""The Docker flavour: a DockerSpawner whose container settings come from the workspace's pure builders, for one
Docker (or Podman) host: ``compose/docker-compose.yml``. Needs the ``docker`` extra (``pip install
antigravity-platform[docker]``), which the hub image installs."""

from __future__ import annotations

from dockerspawner import DockerSpawner
from traitlets import Bool, Unicode

from agp.core.models import Workspace
from agp.core.names import WorkspaceNames

from .local import DEFAULT_KERNEL, WorkspaceMixin
from .workspace import SERVER_GID, SERVER_UID, labels, literal, resources

__all__ = ["PIDS_LIMIT", "WorkspaceDockerSpawner", "container_settings", "shared_volume"]

PIDS_LIMIT = 4096


def container_settings(username: str, names: WorkspaceNames, ws: Workspace, env: dict[str, str]) -> dict[str, object]:
    """Everything the workspace decides about its server's container: DockerSpawner's ``cpu_limit``, ``mem_limit``
    and ``environment``, and what goes into the Docker API's container create (``create``: labels, the user it runs
    as) and its host config (``host_config``: the guarantee, no capability, no privilege gained through setuid)."""
    quota = resources(ws)
    return {
        "cpu_limit": quota["cpu_limit"],
        "mem_limit": quota["mem_limit"],
        "environment": dict(sorted(env.items())),
        "create": {
            "labels": {**labels(username, names), "antigravity.io/workspace-display-name": ws.display_name},
            "user": f"{SERVER_UID}:{SERVER_GID}",
        },
        "host_config": {
            "mem_reservation": quota["mem_guarantee"],
            # A fork bomb in a notebook stops at its container, not at the host's process table (threads count:
            # a Spark session in local mode runs a few hundred).
            "pids_limit": PIDS_LIMIT,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
        },
    }


SHARED_PREFIX = "agp-shared-"


def shared_volume(names: WorkspaceNames, writable: bool, mount_path: str) -> dict[str, dict[str, str]]:
    """The workspace's shared folder as a DockerSpawner volume: a named volume per workspace (Docker makes it on
    first use), read-only for viewers (Docker mounts it so; the container has no capability to remount)."""
    return {SHARED_PREFIX + names.slug: {"bind": mount_path, "mode": "rw" if writable else "ro"}}


class WorkspaceDockerSpawner(WorkspaceMixin, DockerSpawner):
    """One container per (user, workspace) with the workspace's quota, labels, endpoints and security settings."""

    shared_storage = Bool(
        False,
        config=True,
        help="""Mount the workspace's shared folder (a Docker volume ``agp-shared-<workspace>``) into every member's
        server: read-write for owners and editors, read-only for viewers.""",
    )
    shared_mount_path = Unicode("/home/jovyan/shared", config=True, help="Where servers see the shared folder.")
    shared_writable = False

    def apply_workspace(self) -> None:
        """Put everything :func:`container_settings` decides on the spawner, where ``create_object()`` reads it:
        environment, labels and host config are merged into what the deployment configured (the workspace's values
        win), the limits replace it. A deployment's ``extra_create_kwargs`` or ``extra_host_config`` given as a
        callable is refused: the workspace's settings could not be merged into it."""
        settings = container_settings(self.user.name, self.workspace_names, self.workspace, self.workspace_environment)
        for trait in ("extra_create_kwargs", "extra_host_config"):
            if callable(getattr(self, trait)):
                raise RuntimeError(f"DockerSpawner.{trait} is a callable; WorkspaceDockerSpawner needs a dict")
        self.cpu_limit = settings["cpu_limit"]
        self.mem_limit = settings["mem_limit"]
        self.environment = {**self.environment, **settings["environment"]}
        create, host = dict(settings["create"]), dict(settings["host_config"])
        # DockerSpawner expands extra_create_kwargs as templates: the workspace's labels are literal text
        workspace_labels = {k: literal(v) for k, v in create["labels"].items()}
        create["labels"] = {**self.extra_create_kwargs.get("labels", {}), **workspace_labels}
        self.extra_create_kwargs = {**self.extra_create_kwargs, **create}
        host["security_opt"] = sorted({*self.extra_host_config.get("security_opt", []), *host["security_opt"]})
        if "pids_limit" in self.extra_host_config:  # a deployment's own process limit stands
            host["pids_limit"] = self.extra_host_config["pids_limit"]
        self.extra_host_config = {**self.extra_host_config, **host}
        # The shared folder's volume replaces any of an earlier start (the member's role may have changed since).
        volumes = {k: v for k, v in self.volumes.items() if not k.startswith(SHARED_PREFIX)}
        if self.shared_storage:
            volumes.update(shared_volume(self.workspace_names, self.shared_writable, self.shared_mount_path))
            self.environment = {**self.environment, "AGP_SHARED_DIR": self.shared_mount_path}
        self.volumes = volumes

    async def start(self):
        await self.check_workspace()
        self.apply_workspace()
        self.add_args(DEFAULT_KERNEL)
        return await super().start()
