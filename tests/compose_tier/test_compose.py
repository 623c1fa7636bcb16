"""``compose/docker-compose.yml`` on this machine with podman: ``compose up`` until every service is healthy, a
Keycloak login to the hub, a workspace made through the service's API, a member's server started by the hub's
DockerSpawner as a container of the notebook image with the workspace's limits, labels and security, ``%sql`` on a
table through Trino (HTTPS, the broker's JWT, the followed rules) in that server's kernel, a non-member refused, and
``compose down`` leaving no container of the platform or of its servers behind.

The stack is started once for the module (see conftest.py); the tests run in order on it.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
import requests
from hubclient import Api, HubSession
from kernelclient import NotebookKernel

from .conftest import PASSWORD

pytestmark = pytest.mark.compose


def login(hub_url: str, user: str) -> HubSession:
    session = HubSession(hub_url)
    session.login(user, PASSWORD)
    return session


def test_every_service_becomes_healthy(stack):
    health = stack.health()
    assert {"postgres", "minio", "catalog", "keycloak", "hub", "proxy", "trino-rules", "trino"} <= set(health), health
    print(f"compose up to healthy: {stack.healthy_seconds:.0f} s")  # shown with -s; the report says it too
    r = requests.get(f"{stack.hub_url}/services/workspaces/health", timeout=10)
    assert r.status_code == 200, r.text


def test_only_the_hub_and_keycloak_listen_on_the_host(stack):
    published = {}
    for name in stack.project_containers():
        ports = json.loads(stack.podman("inspect", "--format", "{{json .HostConfig.PortBindings}}", name) or "{}")
        for container_port, bindings in (ports or {}).items():
            if bindings:  # an exposed port without a binding is not published
                published[(stack.service_of(name), container_port)] = [(b["HostIp"], b["HostPort"]) for b in bindings]
    assert published == {
        ("proxy", "8000/tcp"): [("127.0.0.1", str(stack.hub_port))],
        ("keycloak", "8080/tcp"): [("127.0.0.1", str(stack.keycloak_port))],
    }


@pytest.fixture(scope="module")
def tokens(stack) -> dict[str, str]:
    return {user: login(stack.hub_url, user).new_token(user) for user in ("admin", "alice", "bob")}


def test_keycloak_login_reaches_the_hub(stack):
    session = login(stack.hub_url, "alice")
    home = session.get("/hub/home")
    assert home.status_code == 200 and "alice" in home.text


@pytest.fixture(scope="module")
def workspace(stack, tokens) -> dict:
    """A workspace made through the service's API (bucket, namespace, schema, rules), alice its editor."""
    admin = Api(stack.hub_url, tokens["admin"])
    slug = f"dc-{uuid.uuid4().hex[:6]}"
    r = admin(
        "POST", "/workspaces", json={"slug": slug, "display_name": "Compose test", "cpu_limit": 1, "memory_limit_gb": 2}
    )
    assert r.status_code == 201, r.text
    r = admin("PUT", f"/workspaces/{slug}/members/alice", json={"role": "editor"})
    assert r.status_code in (200, 201), r.text
    return {"slug": slug}


def test_a_members_server_is_a_container_of_the_workspace(stack, tokens, workspace):
    slug = workspace["slug"]
    alice = Api(stack.hub_url, tokens["alice"])
    r = alice.hub("POST", f"/users/alice/servers/{slug}")
    assert r.status_code in (201, 202), r.text
    alice.wait_server("alice", slug, timeout=300)
    (name,) = stack.containers(f"label=antigravity.io/workspace={slug}")
    info = json.loads(stack.podman("inspect", name))[0]
    labels, host = info["Config"]["Labels"], info["HostConfig"]
    assert labels["antigravity.io/user"] == "alice"
    assert info["ImageName"].endswith("agp-notebook:dev")
    assert info["Config"]["User"] == "1000:100"
    assert host["Memory"] == 2 * 1024**3  # the workspace's quota
    assert host["CpuQuota"] == 100_000 and host["CpuPeriod"] == 100_000
    assert "no-new-privileges" in " ".join(host.get("SecurityOpt") or [])
    dropped = {c.upper().removeprefix("CAP_") for c in host.get("CapDrop") or []}
    assert {"CHOWN", "NET_RAW", "SETUID", "SYS_CHROOT"} <= dropped, host.get("CapDrop")
    assert set(info["NetworkSettings"]["Networks"]) == {"agp-servers"}


def test_sql_in_the_servers_kernel(stack, tokens, workspace):
    slug = workspace["slug"]
    http = requests.Session()
    http.headers["Authorization"] = f"token {tokens['alice']}"
    kernel = NotebookKernel.new_notebook(http, f"{stack.hub_url}/user/alice/{slug}", "compose.ipynb")
    try:
        r = kernel.execute("%sql CREATE TABLE readings AS SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS t(id, v)")
        assert not r.errors, r.errors
        r = kernel.execute("%sql SELECT sum(id) AS s FROM readings")
        assert not r.errors and "3" in r.text, r.text
    finally:
        kernel.shutdown()


REACH = """
import json, socket
def reach(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return "open"
    except OSError:
        return "closed"
print(json.dumps({f"{h}:{p}": reach(h, p) for h, p in TARGETS}))
"""


def test_a_server_reaches_its_network_and_nothing_else(stack, tokens, workspace):
    # The servers' network is internal: before, a notebook reached the internet and the host's ports.
    targets = {
        "trino:8443": "open",  # what a server is for: the controls that the check can pass
        "minio:9000": "open",
        "1.1.1.1:443": "closed",  # the internet
        "postgres:5432": "closed",  # the platform network's services
        "keycloak:8080": "closed",
        "catalog:8181": "closed",
    }
    http = requests.Session()
    http.headers["Authorization"] = f"token {tokens['alice']}"
    kernel = NotebookKernel.new_notebook(http, f"{stack.hub_url}/user/alice/{workspace['slug']}", "reach.ipynb")
    try:
        pairs = [tuple(t.rsplit(":", 1)) for t in targets]
        code = f"TARGETS = {[(h, int(p)) for h, p in pairs]!r}\n" + REACH
        r = kernel.execute(code)
        assert not r.errors, r.errors
        assert json.loads(r.text.strip().splitlines()[-1]) == targets
    finally:
        kernel.shutdown()


def test_a_non_member_is_refused(stack, tokens, workspace):
    bob = Api(stack.hub_url, tokens["bob"])
    r = bob.hub("POST", f"/users/bob/servers/{workspace['slug']}")
    assert r.status_code == 403, r.text
    assert not stack.containers("label=antigravity.io/user=bob")


def test_down_removes_every_container(stack, workspace):
    assert stack.server_containers(), "alice's server should still run before down"
    start = time.monotonic()
    # Docker Compose stops the services that depend on others first: the hub, which stops its servers while
    # PostgreSQL and the proxy still run. podman-compose stops them all at once, so the hub goes first here.
    stack.compose("stop", "hub")
    assert not stack.server_containers(), "the hub left a server container behind"
    stack.compose("down")
    took = time.monotonic() - start
    assert not stack.project_containers()
    print(f"compose down: {took:.0f} s")
