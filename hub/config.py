"""JupyterHub's configuration, built from the shared settings: ``jupyterhub_config.py`` calls :func:`configure`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from agp.core.models import Workspace
from agp.core.permissions import Caller, effective_role
from agp.core.settings import Settings
from agp.spawner.osusers import ServerFolders
from agp.spawner.workspace import data_plane_env

from .db import shared_engine

TEMPLATES = Path(__file__).parent / "templates"
SERVICE = "workspaces"


def configure(
    c: Any,
    settings: Settings,
    chp: str = "configurable-http-proxy",
    config_file: str | None = None,
    service_env: dict[str, str] | None = None,
) -> None:
    """Configure JupyterHub from ``settings``; ``config_file`` (the hub's AGP_CONFIG) and ``service_env`` (the hub's
    own ``AGP_*`` variables) are handed to the workspace service, which so reads the same settings as the hub."""
    s, host = settings, settings.bind_address
    state = s.lab_dir / "hub"
    state.mkdir(parents=True, exist_ok=True)

    c.JupyterHub.bind_url = f"http://{host}:{s.ports.hub}"
    c.JupyterHub.hub_bind_url = f"http://{host}:{s.ports.hub_api}"
    if s.host_of("hub_api") != s.bind_address:
        c.JupyterHub.hub_connect_url = s.url("hub_api")  # servers and the proxy reach the hub by its own name
    c.JupyterHub.db_url = s.hub_db_url
    c.JupyterHub.db_kwargs = {"pool_pre_ping": True}  # survive a PostgreSQL restart without a failed request
    c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
    c.ConfigurableHTTPProxy.command = [chp]
    c.ConfigurableHTTPProxy.api_url = s.url("proxy_api")
    if s.host_of("proxy_api") != s.host:
        c.ConfigurableHTTPProxy.should_start = False  # a proxy of its own (a pod), which outlives hub restarts
    c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
    c.JupyterHub.cleanup_servers = True
    c.JupyterHub.default_url = "/hub/home"
    c.JupyterHub.implicit_spawn_seconds = 0
    c.JupyterHub.redirect_to_server = False

    # Login through Keycloak (discovery, PKCE, encrypted auth state, refresh before spawn, logout there too).
    c.JupyterHub.authenticator_class = "agp.hub.auth.KeycloakOAuthenticator"
    c.KeycloakOAuthenticator.issuer = s.keycloak_issuer
    c.KeycloakOAuthenticator.client_id = "jupyterhub"
    c.KeycloakOAuthenticator.client_secret = s.credentials.hub_client_secret.get_secret_value()
    c.KeycloakOAuthenticator.oauth_callback_url = f"{s.browser_url}/hub/oauth_callback"
    c.KeycloakOAuthenticator.post_logout_url = f"{s.browser_url}/hub/login"
    c.KeycloakOAuthenticator.admin_groups = {"platform-admins"}
    c.KeycloakOAuthenticator.allow_all = True
    c.KeycloakOAuthenticator.login_service = "Antigravity (Keycloak)"

    # One named server per workspace.
    c.JupyterHub.allow_named_servers = True
    c.JupyterHub.named_server_limit_per_user = 0
    if s.spawner == "kubernetes":
        # A pod per server; the deployment's traitlets config (the chart's `singleuser`) names image and storage.
        c.JupyterHub.spawner_class = "workspace-kube"
        c.WorkspaceKubeSpawner.db_url = s.hub_workspaces_db_url
        c.WorkspaceKubeSpawner.data_plane_env = data_plane_env(s)
        # On KubeSpawner itself, where zero-to-jupyterhub's `hub.config.KubeSpawner` settings land and win (a
        # subclass's section would override them).
        c.KubeSpawner.cmd = ["jupyterhub-singleuser"]
        c.KubeSpawner.image_pull_policy = "IfNotPresent"
        return _common(c, s, state, config_file, service_env)
    if s.spawner == "docker":
        # A container per server on the Docker host (compose/docker-compose.yml); the deployment names the image
        # and the network the servers join (DockerSpawner.image, DockerSpawner.network_name).
        c.JupyterHub.spawner_class = "workspace-docker"
        c.WorkspaceDockerSpawner.db_url = s.hub_workspaces_db_url
        c.WorkspaceDockerSpawner.data_plane_env = data_plane_env(s)
        # On DockerSpawner itself, where a deployment's own DockerSpawner settings land and win.
        c.DockerSpawner.cmd = ["jupyterhub-singleuser"]
        c.DockerSpawner.prefix = "agp"
        c.DockerSpawner.remove = True  # a stopped server leaves no container; its home is a volume of its own
        c.DockerSpawner.notebook_dir = "/home/jovyan"
        c.DockerSpawner.volumes = {"agp-home-{username}--{servername}": "/home/jovyan"}
        c.WorkspaceDockerSpawner.shared_storage = True  # a volume per workspace, read-only for viewers
        c.DockerSpawner.default_url = "/lab"
        return _common(c, s, state, config_file, service_env)
    c.JupyterHub.spawner_class = "workspace-local"
    c.WorkspaceLocalSpawner.db_url = s.hub_workspaces_db_url  # the hub's own role: reads only
    c.WorkspaceLocalSpawner.run_as_os_users = s.run_as_os_users
    if s.run_as_os_users:
        # Each user's servers run as an OS user of their own, from the runtime `agp lab up` builds (readable by
        # all, writable by none), with homes and public files outside root's home; Spark's jars come from the
        # runtime's public cache.
        folders = ServerFolders(s.servers_root, s.server_runtime_root)
        c.WorkspaceLocalSpawner.data_plane_env = {**data_plane_env(s), "AGP_CACHE_DIR": str(folders.cache)}
        c.WorkspaceLocalSpawner.home_root = str(folders.homes)
        c.WorkspaceLocalSpawner.shared_root = str(folders.shared)
        c.WorkspaceLocalSpawner.runtime_dir = str(folders.venv)
        c.Spawner.cmd = [str(folders.singleuser)]
    else:
        # Local servers share the lab's cache: Spark's Iceberg jars are fetched once for everyone.
        c.WorkspaceLocalSpawner.data_plane_env = {**data_plane_env(s), "AGP_CACHE_DIR": str(s.cache_dir)}
        c.WorkspaceLocalSpawner.home_root = str(s.lab_dir / "homes")
        c.WorkspaceLocalSpawner.shared_root = str(s.lab_dir / "shared")
        c.Spawner.cmd = [str(Path(sys.executable).parent / "jupyterhub-singleuser")]
    _common(c, s, state, config_file, service_env)


def _common(c: Any, s: Settings, state: Path, config_file: str | None, service_env: dict[str, str] | None) -> None:
    """What every flavour of the hub shares: the server's token, the workspace service, the pages."""
    # The server's own token may also ask the workspace service (the credential broker) for its user.
    c.Spawner.server_token_scopes = [
        "users:activity!user",
        "access:servers!server",
        f"access:services!service={SERVICE}",
        "read:users:name!user",
    ]
    c.Spawner.start_timeout = 120
    c.Spawner.http_timeout = 60

    # The workspace service, managed by the hub; every user may reach it, membership decides the rest.
    c.JupyterHub.services = [
        {
            "name": SERVICE,
            "display": True,
            "url": s.url("workspaces"),
            "command": [sys.executable, "-m", "agp.hub.service"],
            "oauth_no_confirm": True,
            "environment": {**(service_env or {}), "AGP_CONFIG": config_file or str(state / "settings.json")},
        }
    ]
    c.JupyterHub.load_roles = [
        {"name": "user", "scopes": ["self", f"access:services!service={SERVICE}"]},
        {
            "name": "workspace-service",
            # tokens: a job run's own token of its owner (access to this service only, expiring, revoked at its end);
            # servers: stop a server whose shared-folder mount its member's new role no longer allows (shared_sync)
            "scopes": ["list:users", "read:users", "read:groups", "tokens", "servers"],
            "services": [SERVICE],
        },
    ]

    c.JupyterHub.template_paths = [str(TEMPLATES)]
    db_url = s.hub_workspaces_db_url

    def my_workspaces(user: Any) -> list[dict]:
        # A plain function: JupyterHub deep-copies its config, and an engine cannot be copied.
        return _my_workspaces(db_url, user)

    c.JupyterHub.template_vars = {"my_workspaces": my_workspaces}


def _my_workspaces(db_url: str, user: Any) -> list[dict]:
    """The home page's "My workspaces": the caller's workspaces with the state of their servers."""
    if user is None:
        return []
    engine = shared_engine(db_url)
    caller = Caller(user.name, bool(user.admin), frozenset(g.name for g in user.groups))
    with Session(engine) as db:
        rows = db.scalars(select(Workspace).options(selectinload(Workspace.members)).order_by(Workspace.slug))
        mine = [(ws, effective_role(ws, caller)) for ws in rows]
    out = []
    for ws, role in mine:
        if role is None:
            continue
        spawner = user.spawners.get(ws.slug)
        out.append(
            {
                "slug": ws.slug,
                "display_name": ws.display_name,
                "state": str(getattr(ws.state, "value", ws.state)),
                "role": role.value,
                "running": bool(spawner and spawner.ready),
                "pending": bool(spawner and spawner.pending),
                "url": f"{user.url}{ws.slug}/",
            }
        )
    return out


def load_overrides(c: Any, path: str) -> None:
    """Apply a traitlets config file over what :func:`configure` set: ``{"KubeSpawner": {"image": ...}, ...}`` as
    JSON or YAML, the shape of zero-to-jupyterhub's ``hub.config`` values (the Helm chart renders its ``hub.config``
    and ``singleuser`` values into one). Traitlets' own loaders read JSON only; YAML is what charts write."""
    import yaml
    from traitlets.config import Config

    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"{path}: expected a mapping of configurable class -> {{trait: value}}")
    c.merge(Config(data))
