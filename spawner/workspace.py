"""What every flavour of the workspace spawner shares: the spawn check and the server's environment (pure)."""

from __future__ import annotations

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
