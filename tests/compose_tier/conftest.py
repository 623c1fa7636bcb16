"""Fixtures of the compose tier (tests marked ``compose``): ``compose/docker-compose.yml`` run with podman.

Fixtures
--------
podman_tools  podman, podman-compose and the Docker API socket the hub's DockerSpawner talks to (session): a
              ``podman system service`` of its own on a socket in a temporary folder, stopped at the end; podman
              runs with a containers.conf of its own (CONTAINERS_CONF) whose rlimits are under this machine's hard
              ones, as images/build.py's builds (podman's default nofile is above them: runc refuses to start)
stack         the platform up on ports of its own (module): images built when their inputs changed
              (images/build.py), a secrets folder made by ``python3 -m agp.compose.secrets``, ``compose up``, every
              service healthy; ``compose down -v`` at the end, and the servers' home volumes removed

The test modules of this folder are collected only when ``-m`` names ``compose`` or this folder is named on the
command line: the default run of the suite starts no container. When a test fails, the tail of every container's
log is added to its report.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
COMPOSE_FILE = REPO / "compose" / "docker-compose.yml"
PROJECT = "agp"  # the file's `name:`
# Ports of their own, away from the lab's (agp.core.settings.Ports) and the test cluster's.
HUB_PORT, KEYCLOAK_PORT = 28000, 28180
PASSWORD = "agp-compose-demo"  # the demo realm's users, written into the secrets folder
ONE_SHOTS = {"setup", "notebook"}
IMAGES = ("hub", "notebook", "catalog", "trino", "keycloak", "postgres", "proxy", "minio")


def _asked_for(config: pytest.Config) -> bool:
    markexpr = config.getoption("markexpr", "") or ""
    if "compose" in markexpr and "not compose" not in markexpr:
        return True
    for arg in config.args:
        path = Path(arg.split("::")[0]).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    is_test_module = collection_path.name.startswith("test_") and collection_path.suffix == ".py"
    if is_test_module and not _asked_for(config):
        return True
    return None


# images/imaging.py's build limits, for every container podman starts here (compose's and the spawner's).
CONTAINERS_CONF = '[containers]\ndefault_ulimits = ["nofile=10000:10000", "nproc=4096:4096"]\n'


def containers_conf(runc: str | None) -> str:
    """The tier's containers.conf: the limits, and runc as the OCI runtime where it is installed. crun (podman's
    default on Debian) refuses to start any container on a host whose cgroups are in hybrid mode with a controller
    left on the v2 hierarchy ("cgroups in hybrid mode not supported, drop all controllers from cgroupv2"; a fresh
    CI machine had hugetlb there); runc runs on v1, hybrid and v2 alike."""
    return CONTAINERS_CONF + (f'\n[engine]\nruntime = "runc"\n[engine.runtimes]\nrunc = ["{runc}"]\n' if runc else "")


@dataclass
class Tools:
    podman: str
    compose: list[str]
    socket: Path
    env: dict[str, str]


@pytest.fixture(scope="session")
def podman_tools() -> Iterator[Tools]:
    podman = shutil.which("podman")
    compose = shutil.which("podman-compose") or str(Path(sys.executable).parent / "podman-compose")
    if not podman or not Path(compose).exists():
        pytest.fail(
            "the compose tier needs podman and podman-compose: apt-get install podman aardvark-dns netavark, "
            "pip install podman-compose",
            pytrace=False,
        )
    folder = Path(tempfile.mkdtemp(prefix="agp-compose-api-"))
    socket = folder / "podman.sock"
    (folder / "containers.conf").write_text(containers_conf(shutil.which("runc", path="/usr/sbin:/usr/bin:/sbin:/bin")))
    env = {**os.environ, "CONTAINERS_CONF": str(folder / "containers.conf")}
    log = (folder / "service.log").open("w")
    service = subprocess.Popen(
        [podman, "system", "service", "--time=0", f"unix://{socket}"], stdout=log, stderr=subprocess.STDOUT, env=env
    )
    deadline = time.monotonic() + 30
    while not socket.exists():
        if time.monotonic() > deadline or service.poll() is not None:
            service.kill()
            pytest.fail(f"podman system service did not open {socket}; see {folder / 'service.log'}", pytrace=False)
        time.sleep(0.2)
    # As Docker's socket (root:docker 0660): the hub runs as 10001 in group 0 (AGP_DOCKER_GID=0 below).
    socket.chmod(0o660)
    yield Tools(podman, [compose], socket, env)
    service.terminate()
    try:
        service.wait(timeout=30)
    except subprocess.TimeoutExpired:
        service.kill()
    shutil.rmtree(folder, ignore_errors=True)


def compose_env(tools: Tools, secrets: Path) -> dict[str, str]:
    return {
        **tools.env,
        "AGP_HUB_PORT": str(HUB_PORT),
        "AGP_KEYCLOAK_PORT": str(KEYCLOAK_PORT),
        "AGP_SECRETS_DIR": str(secrets),
        "AGP_DOCKER_SOCKET": str(tools.socket),
        "AGP_DOCKER_GID": "0",
    }


class Stack:
    """The running platform: ``compose(...)`` runs podman-compose on the file; ``containers()`` lists ours."""

    def __init__(self, tools: Tools, env: dict[str, str]) -> None:
        self.tools, self.env = tools, env
        self.hub_port, self.keycloak_port = HUB_PORT, KEYCLOAK_PORT
        self.hub_url = f"http://127.0.0.1:{HUB_PORT}"
        self.keycloak_url = f"http://127.0.0.1:{KEYCLOAK_PORT}"
        self.healthy_seconds: float | None = None

    def compose(self, *args: str, timeout: float = 1800, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run(
            [*self.tools.compose, "-f", str(COMPOSE_FILE), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and r.returncode != 0:
            pytest.fail(f"podman-compose {' '.join(args)} failed: {(r.stderr or r.stdout)[-1500:]}", pytrace=False)
        return r

    def podman(self, *args: str, check: bool = True) -> str:
        r = subprocess.run([self.tools.podman, *args], capture_output=True, text=True, timeout=120, env=self.env)
        if check and r.returncode != 0:
            pytest.fail(f"podman {' '.join(args)} failed: {r.stderr.strip()[-800:]}", pytrace=False)
        return r.stdout

    def containers(self, *filters: str) -> list[str]:
        args = ["ps", "-a", "--format", "{{.Names}}"]
        for f in filters:
            args += ["--filter", f]
        return self.podman(*args).split()

    def project_containers(self) -> list[str]:
        return self.containers(f"label=io.podman.compose.project={PROJECT}")

    def server_containers(self) -> list[str]:
        return self.containers("label=app.kubernetes.io/component=workspace-server")

    def service_of(self, container: str) -> str:
        label = '{{index .Config.Labels "com.docker.compose.service"}}'
        return self.podman("inspect", "--format", label, container, check=False).strip()

    def health(self) -> dict[str, str]:
        """Each service -> the health of its container (or its state, for the one-shots)."""
        out = {}
        for name in self.project_containers():
            state = self.podman("inspect", "--format", "{{.State.Status}} {{.State.Health.Status}}", name, check=False)
            status, _, health = state.strip().partition(" ")
            out[self.service_of(name)] = health or status
        return out

    def wait_healthy(self, timeout: float) -> None:
        """Until every long-running service is healthy. No systemd runs podman's health checks on this machine (they
        are timers of its): they are run here, as its timers would run them."""
        deadline = time.monotonic() + timeout
        waiting: dict[str, str] = {}
        while time.monotonic() < deadline:
            for name in self.project_containers():
                self.podman("healthcheck", "run", name, check=False)
            health = self.health()
            waiting = {n: h for n, h in health.items() if n not in ONE_SHOTS and h != "healthy"}
            if health and not waiting:
                return
            time.sleep(3)
        pytest.fail(f"not healthy after {timeout:.0f} s: {waiting}", pytrace=False)


@pytest.fixture(scope="module")
def stack(podman_tools, tmp_path_factory) -> Iterator[Stack]:
    r = subprocess.run(
        [sys.executable, str(REPO / "images" / "build.py"), *IMAGES], capture_output=True, text=True, timeout=5400
    )
    if r.returncode != 0:
        pytest.fail(f"building the images failed: {(r.stderr or r.stdout).strip()[-800:]}", pytrace=False)
    secrets = tmp_path_factory.mktemp("compose") / "secrets"
    made = subprocess.run(
        [sys.executable, "-m", "agp.compose.secrets", str(secrets), "--demo-password", PASSWORD],
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    s = Stack(podman_tools, compose_env(podman_tools, secrets))
    s.compose("down", "-v", check=False, timeout=600)  # what an interrupted run left behind
    start = time.monotonic()
    # --no-deps: podman 4.3 cannot start a container that --requires a one-shot which has exited ("not found in
    # input list"), and podman-compose ignores `service_healthy` below podman 4.6. The services retry (or restart)
    # until what they need is up, which wait_healthy sees; Docker Compose orders them by their depends_on.
    s.compose("up", "-d", "--no-deps")
    s.wait_healthy(timeout=900)
    s.healthy_seconds = time.monotonic() - start
    yield s
    s.compose("down", "-v", check=False, timeout=600)
    for server in s.server_containers():
        s.podman("rm", "-f", server, check=False)
    for volume in s.podman("volume", "ls", "--format", "{{.Name}}", check=False).split():
        if volume.startswith("agp-home-"):
            s.podman("volume", "rm", "-f", volume, check=False)


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> None:
    """When a compose test fails, add the tail of each of its containers' logs to its report."""
    if call.when != "call" or call.excinfo is None or "compose" not in item.keywords:
        return
    podman = shutil.which("podman")
    if not podman:
        return
    names = subprocess.run(
        [podman, "ps", "-a", "--format", "{{.Names}}", "--filter", f"label=io.podman.compose.project={PROJECT}"],
        capture_output=True,
        text=True,
    ).stdout.split()
    servers = subprocess.run(
        [
            podman,
            "ps",
            "-a",
            "--format",
            "{{.Names}}",
            "--filter",
            "label=app.kubernetes.io/component=workspace-server",
        ],
        capture_output=True,
        text=True,
    ).stdout.split()
    for name in names + servers:
        out = subprocess.run([podman, "logs", "--tail", "25", name], capture_output=True, text=True)
        item.add_report_section("call", f"{name} log", (out.stdout + out.stderr)[-3000:])
