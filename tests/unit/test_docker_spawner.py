"""The Docker flavour: its pure builder against literal values, and the container the real WorkspaceDockerSpawner asks
the Docker API for, configured as the hub configures it for compose (no daemon: the Docker API client is given a
version, so it never asks one, and the calls it would send are recorded instead)."""

from __future__ import annotations

import asyncio
import types

import docker.errors
import pytest
from jupyterhub.objects import Hub
from traitlets.config import Config

from agp.core.models import Workspace
from agp.core.names import WorkspaceNames
from agp.core.settings import Settings
from agp.spawner import docker as docker_flavour
from agp.spawner.docker import WorkspaceDockerSpawner, container_settings

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


def test_the_workspace_decides_limits_labels_user_and_security():
    assert container_settings("alice@corp.example", NAMES, WS, ENV) == {
        "cpu_limit": 2.0,
        "mem_limit": "4096M",
        "environment": {"AGP_TRINO_SCHEMA": "grid_ops", "AGP_WORKSPACE": "grid-ops"},
        "create": {
            "labels": {
                "app.kubernetes.io/part-of": "antigravity",
                "app.kubernetes.io/component": "workspace-server",
                "antigravity.io/workspace": "grid-ops",
                "antigravity.io/user": "alice_corp.example",
                "antigravity.io/workspace-display-name": "Grid operations",
            },
            "user": "1000:100",
        },
        "host_config": {
            "mem_reservation": "1024M",
            "pids_limit": 4096,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
        },
    }


def test_the_spawner_is_registered_as_an_entry_point():
    from importlib.metadata import entry_points

    found = {ep.name: ep.value for ep in entry_points(group="jupyterhub.spawners")}
    assert found["workspace-docker"] == "agp.spawner.docker:WorkspaceDockerSpawner"


class FakeDockerAPI:
    """Answers the calls DockerSpawner.start() makes, as a daemon with the image and no such container would."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []
        self.created = False

    def __call__(self, method: str, *args, **kwargs):
        self.calls.append((method, args, kwargs))
        if method == "inspect_image":
            return {"Id": "sha256:notebook"}
        if method == "inspect_container":
            if not self.created:
                raise docker.errors.NotFound("no such container", response=types.SimpleNamespace(status_code=404))
            return {"Id": "c0ffee", "NetworkSettings": {"Networks": {"agp-servers": {"IPAddress": "10.89.1.7"}}}}
        if method == "create_container":
            self.created = True
            return {"Id": "c0ffee"}
        if method == "start":
            return None
        raise AssertionError(f"unexpected Docker API call {method}")

    def one(self, method: str) -> dict:
        (kwargs,) = [kw for m, _, kw in self.calls if m == method]
        return kwargs


def hub_config(tmp_path) -> Config:
    """The traitlets config of the hub for compose: agp.hub.config in docker mode, then the compose file's
    command-line traits, as JupyterHub merges them."""
    from agp.hub.config import configure

    c = Config()
    settings = Settings(
        spawner="docker",
        lab_dir=tmp_path,
        host="hub",
        bind_host="0.0.0.0",
        hosts={"hub": "proxy", "trino": "trino", "trino_https": "trino", "minio": "minio"},
    )
    configure(c, settings)
    c.merge(Config({"DockerSpawner": {"image": "localhost/agp-notebook:dev", "network_name": "agp-servers"}}))
    # The client is given a version: docker.APIClient then asks no daemon for one.
    c.DockerSpawner.client_kwargs = {"version": "1.41", "base_url": "unix:///nonexistent/docker.sock"}
    return c


def spawner(tmp_path, user: str = "alice") -> tuple[WorkspaceDockerSpawner, FakeDockerAPI]:
    fake = FakeDockerAPI()
    owner = types.SimpleNamespace(name=user, admin=False, groups=[], url=f"/user/{user}/", escaped_name=user, id=1)
    s = WorkspaceDockerSpawner(
        config=hub_config(tmp_path),
        user=owner,
        hub=Hub(),
        orm_spawner=types.SimpleNamespace(name="grid-ops", server=None, user=None),
    )
    s.api_token = "token-of-the-server"
    s._docker = fake  # where DockerSpawner sends every Docker API call (from a thread)
    return s, fake


def test_the_spawners_own_container_carries_every_setting_of_the_builder(tmp_path, monkeypatch):
    s, fake = spawner(tmp_path)

    async def member(self):
        self.workspace, self.workspace_names = WS, NAMES
        self.workspace_environment = {**self.data_plane_env, **ENV}

    monkeypatch.setattr(WorkspaceDockerSpawner, "check_workspace", member)
    ip, port = asyncio.run(s.start())
    assert (ip, port) == ("10.89.1.7", 8888)

    create = fake.one("create_container")
    host = create["host_config"]
    assert create["image"] == "localhost/agp-notebook:dev"
    assert create["name"] == "agp-alice--grid-2dops"
    assert create["user"] == "1000:100"
    assert create["labels"]["antigravity.io/workspace"] == "grid-ops"
    assert create["labels"]["antigravity.io/user"] == "alice"
    assert create["environment"]["AGP_TRINO_SCHEMA"] == "grid_ops"
    assert create["environment"]["AGP_TRINO_HOST"] == "trino"  # the data plane as the servers' network names it
    assert create["environment"]["JUPYTERHUB_SERVER_NAME"] == "grid-ops"
    assert create["command"][0] == "jupyterhub-singleuser"
    assert "--MappingKernelManager.default_kernel_name=agp" in create["command"]
    assert "--KernelSpecManager.allowed_kernelspecs=agp" in create["command"], "only the Antigravity kernel"
    assert host["NetworkMode"] == "agp-servers"
    assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges"]
    assert host["Memory"] == 4096 * 1024**2 and host["MemoryReservation"] == 1024 * 1024**2
    assert (host["CpuQuota"], host["CpuPeriod"]) == (200_000, 100_000)  # 2 CPUs
    assert host["AutoRemove"] is True  # a stopped server leaves no container behind
    assert host["Binds"] == [
        "agp-home-alice--grid-2dops:/home/jovyan:rw",  # a home per (user, workspace)
        "agp-shared-grid-ops:/home/jovyan/shared:ro",  # the workspace's shared folder; check_workspace above
    ]  # gave no role that writes
    assert "PortBindings" not in host  # reached on its network only, never through a host port
    assert "Privileged" not in host or host["Privileged"] is False
    assert host["PidsLimit"] == 4096  # a fork bomb stops at the container


def test_a_display_name_reaches_the_container_as_written(tmp_path, monkeypatch):
    # Before: DockerSpawner expanded it as a template in the label ({prefix:>2000000000} nine times made the hub
    # allocate about 18 GB; {prefix.x} failed every start of the workspace).
    text = "{prefix:>99}{raw_username}{prefix.x}{"
    s, fake = spawner(tmp_path)

    async def member(self):
        self.workspace = named(text)
        self.workspace_names = NAMES
        self.workspace_environment = {**self.data_plane_env, **ENV, "AGP_WORKSPACE_DISPLAY_NAME": text}

    monkeypatch.setattr(WorkspaceDockerSpawner, "check_workspace", member)
    asyncio.run(s.start())
    create = fake.one("create_container")
    assert create["labels"]["antigravity.io/workspace-display-name"] == text
    assert create["environment"]["AGP_WORKSPACE_DISPLAY_NAME"] == text


def test_a_deployments_host_config_is_kept_and_the_workspace_wins(tmp_path):
    s, _ = spawner(tmp_path)
    s.extra_host_config = {"security_opt": ["label=disable"], "cap_drop": [], "pids_limit": 512}
    s.extra_create_kwargs = {"labels": {"team": "ops", "antigravity.io/workspace": "forged"}}
    s.workspace, s.workspace_names, s.workspace_environment = WS, NAMES, ENV
    s.apply_workspace()
    assert s.extra_host_config["security_opt"] == ["label=disable", "no-new-privileges"]
    assert s.extra_host_config["cap_drop"] == ["ALL"] and s.extra_host_config["pids_limit"] == 512
    assert s.extra_create_kwargs["labels"]["team"] == "ops"
    assert s.extra_create_kwargs["labels"]["antigravity.io/workspace"] == "grid-ops"


def test_a_callable_host_config_is_refused(tmp_path):
    s, _ = spawner(tmp_path)
    s.extra_host_config = lambda spawner: {}
    s.workspace, s.workspace_names, s.workspace_environment = WS, NAMES, ENV
    with pytest.raises(RuntimeError, match="extra_host_config"):
        s.apply_workspace()


def test_a_non_member_gets_no_container(tmp_path, monkeypatch):
    from tornado import web

    s, fake = spawner(tmp_path, user="bob")

    async def refused(self):
        raise web.HTTPError(403, "You are not a member of workspace 'grid-ops'")

    monkeypatch.setattr(WorkspaceDockerSpawner, "check_workspace", refused)
    with pytest.raises(web.HTTPError):
        asyncio.run(s.start())
    assert fake.calls == []


def test_the_module_needs_no_kubernetes():
    import ast
    from pathlib import Path

    tree = ast.parse(Path(docker_flavour.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    assert not {m for m in imported if m and ("kube" in m)}, imported
