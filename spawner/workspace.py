"""What every flavour of the workspace spawner shares (pure): the spawn check, the server's environment, and what the
workspace decides about its server whatever runs it (quota, labels, the user and group it runs as)."""

from __future__ import annotations

import re

from agp.core.models import State, Workspace
from agp.core.names import InvalidName, WorkspaceNames
from agp.core.permissions import Caller, can_spawn
from agp.core.settings import Settings


class SpawnRefused(Exception):
    """The server must not start; ``str()`` is the sentence shown on the hub's error page."""


def check_spawn(server_name: str, ws: Workspace | None, caller: Caller) -> WorkspaceNames:
    """Return the workspace's names if ``caller`` may start its server now, else raise :class:`SpawnRefused`."""
    if not server_name:
        raise SpawnRefused("Pick a workspace on the home page: each server belongs to one workspace.")
    try:
        names = WorkspaceNames(server_name)
    except InvalidName as e:
        raise SpawnRefused(f"There is no workspace {server_name[:60]!r}.") from e
    if ws is None or not can_spawn(ws, caller):
        # Non-members learn no more than that the workspace is not theirs.
        raise SpawnRefused(f"You are not a member of workspace {server_name!r}; ask one of its owners to add you.")
    state = State(ws.state)
    if state == State.archived:
        raise SpawnRefused(f"Workspace {server_name!r} is archived: its data is kept, but no new servers start.")
    if state != State.ready:
        raise SpawnRefused(f"Workspace {server_name!r} is {state.value}, not ready; an admin can retry provisioning.")
    return names


def data_plane_env(settings: Settings) -> dict[str, str]:
    """Endpoints a workspace server is given (no secrets: the kernel asks the broker for short-lived ones)."""
    return {
        "AGP_TRINO_HOST": settings.host_of("trino"),
        "AGP_TRINO_PORT": str(settings.ports.trino),
        "AGP_TRINO_CATALOG": "iceberg",
        "AGP_S3_ENDPOINT": settings.s3_endpoint,
        "AGP_S3_REGION": settings.s3_region,
        "AGP_CATALOG_URI": settings.catalog_uri,
        "AGP_CATALOG_WAREHOUSE": "warehouse",
        "AGP_SPARK_MASTER": "local[2]",
        "AGP_WORKSPACE_SERVICE_URL": settings.hub_url + "/services/workspaces",
        "AGP_PUBLIC_URL": settings.browser_url,  # where users' browsers reach the hub (Spark UI redirects)
    }


def workspace_env(base: dict[str, str], names: WorkspaceNames, ws: Workspace) -> dict[str, str]:
    """``base`` (from :func:`data_plane_env`) plus the names of this workspace."""
    return {
        **base,
        "AGP_WORKSPACE": names.slug,
        "AGP_TRINO_SCHEMA": names.schema,
        "AGP_S3_BUCKET": names.bucket,
        "AGP_CATALOG_NAMESPACE": names.namespace,
        "AGP_SPARK_DEFAULT_NAMESPACE": names.namespace,
        "AGP_WORKSPACE_DISPLAY_NAME": ws.display_name,
    }


PART_OF = "antigravity"
# The user and group a server runs as in a container (a pod, a Docker container): the notebook image's own user.
SERVER_UID = 1000
SERVER_GID = 100


def resources(ws: Workspace) -> dict[str, object]:
    """Workspace quota to a server's resources: the limit is the quota, the guarantee a quarter of it."""
    return {
        "cpu_limit": float(ws.cpu_limit),
        "cpu_guarantee": round(float(ws.cpu_limit) / 4, 3),
        "mem_limit": f"{int(ws.memory_limit_gb * 1024)}M",
        "mem_guarantee": f"{int(ws.memory_limit_gb * 1024 / 4)}M",
    }


def literal(text: str) -> str:
    """``text`` as a value of a spawner trait that the spawner expands as a template with ``str.format`` (KubeSpawner's
    ``extra_annotations`` and ``environment``, DockerSpawner's ``extra_create_kwargs``): braces doubled, so that the
    expansion gives the text back. A workspace's display name is an owner's free text: expanded as a template,
    ``{prefix:>2000000000}`` made the hub allocate gigabytes and ``{prefix.x}`` failed every start of the workspace."""
    return text.replace("{", "{{").replace("}", "}}")


def label_value(value: str) -> str:
    """A label value valid for Kubernetes (and so for Docker): at most 63 of [A-Za-z0-9._-], alphanumeric at both
    ends."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", value)[:63].strip("._-")
    return cleaned or "none"


def labels(username: str, names: WorkspaceNames) -> dict[str, str]:
    """The labels of a server's pod or container: what it is part of and whose workspace it serves."""
    return {
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/component": "workspace-server",
        "antigravity.io/workspace": names.slug,
        "antigravity.io/user": label_value(username),
    }
