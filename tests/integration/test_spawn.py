"""One server per (user, workspace): members spawn with the workspace's environment, others are refused."""

from __future__ import annotations

import html
import pwd
import stat
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.integration


def _server_env(api, user: str, server: str) -> dict[str, str]:
    return psutil.Process(_server_pid(api, user, server)).environ()


def _server_pid(api, user: str, server: str) -> int:
    return api.hub("GET", f"/users/{user}").json()["servers"][server]["state"]["pid"]


def test_a_member_spawns_a_server_with_the_workspace_environment(user_api, admin_api, settings):
    alice = user_api("alice")
    r = alice.hub("POST", "/users/alice/servers/demo")
    assert r.status_code in (201, 202), r.text
    try:
        server = alice.wait_server("alice", "demo")
        assert server["url"] == "/user/alice/demo/"
        status = alice.http.get(f"{settings.hub_url}/user/alice/demo/api/status", timeout=30)
        assert status.status_code == 200, status.text
        specs = alice.http.get(f"{settings.hub_url}/user/alice/demo/api/kernelspecs", timeout=30).json()
        assert specs["default"] == "agp"
        assert specs["kernelspecs"]["agp"]["spec"]["display_name"] == "Python 3 (Antigravity)"

        env = _server_env(admin_api, "alice", "demo")  # server state (the pid) is for admins
        assert env["AGP_WORKSPACE"] == "demo"
        assert env["AGP_TRINO_SCHEMA"] == "demo"
        assert env["AGP_TRINO_CATALOG"] == "iceberg"
        assert env["AGP_TRINO_HOST"] == settings.host and env["AGP_TRINO_PORT"] == str(settings.ports.trino)
        assert env["AGP_S3_ENDPOINT"] == settings.s3_endpoint and env["AGP_S3_BUCKET"] == "agp-ws-demo"
        assert env["AGP_CATALOG_URI"] == settings.catalog_uri
        if settings.run_as_os_users:  # alice's servers run as agp-alice, in a home only that user can read
            home = settings.servers_root / "homes" / "agp-alice"
            assert env["HOME"] == str(home) and env["USER"] == "agp-alice"
            info = psutil.Process(_server_pid(admin_api, "alice", "demo"))
            assert info.uids().real == info.uids().effective == pwd.getpwnam("agp-alice").pw_uid
            assert home.stat().st_uid == info.uids().real and stat.S_IMODE(home.stat().st_mode) == 0o700
        else:
            assert env["HOME"] == str(settings.lab_dir / "homes" / "alice")
        assert Path(env["HOME"], "workspaces", "demo").is_dir()
        secrets = {
            settings.credentials.s3_secret_key.get_secret_value(),
            settings.credentials.postgres_password.get_secret_value(),
        }
        assert not [k for k, v in env.items() if any(s in v for s in secrets)], "no long-lived secret in a server"
    finally:
        alice.hub("DELETE", "/users/alice/servers/demo")


def test_a_non_member_is_refused_with_a_clear_403(new_workspace, user_api):
    slug = new_workspace()["slug"]
    r = user_api("alice").hub("POST", f"/users/alice/servers/{slug}")
    assert r.status_code == 403
    assert f"You are not a member of workspace {slug!r}" in r.json()["message"]


def test_the_refusal_page_is_a_page_not_a_stack_trace(new_workspace, login):
    slug = new_workspace()["slug"]
    bob = login("bob")
    page = bob.get(f"/hub/spawn/bob/{slug}")
    assert page.status_code == 403
    text = html.unescape(page.text)
    assert f"You are not a member of workspace {slug!r}" in text
    # The platform's error page (hub/templates/error.html): the status with a plain title, and the way back.
    assert '<h1 class="h4">403: Not allowed</h1>' in text and "Back to your workspaces" in text
    assert "Traceback" not in text


def test_archiving_blocks_new_servers(new_workspace, admin_api, user_api):
    slug = new_workspace()["slug"]
    admin_api("PUT", f"/workspaces/{slug}/members/alice", json={"role": "editor"})
    r = admin_api("POST", f"/workspaces/{slug}/archive")
    assert r.status_code == 200 and r.json()["state"] == "archived"
    r = user_api("alice").hub("POST", f"/users/alice/servers/{slug}")
    assert r.status_code == 403
    assert "is archived" in r.json()["message"]


def test_the_default_server_asks_for_a_workspace(user_api):
    r = user_api("bob").hub("POST", "/users/bob/server")
    assert r.status_code == 403
    assert "Pick a workspace" in r.json()["message"]
