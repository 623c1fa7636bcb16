"""``agp workspace`` against the real workspace service."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
from conftest import remove_workspace

pytestmark = pytest.mark.integration


def agp(*args, token: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agp.compose.cli", "workspace", "--token", token, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_creates_lists_and_adds_members(admin_api, settings):
    token = admin_api.http.headers["Authorization"].split()[1]
    slug = f"cli-{uuid.uuid4().hex[:8]}"
    try:
        out = agp("--json", "create", slug, "--display-name", "From the CLI", token=token)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["state"] == "ready"
        out = agp("--json", "add-member", slug, "bob", "--role", "viewer", token=token)
        assert out.returncode == 0, out.stderr
        assert {"username": "bob", "role": "viewer"}.items() <= next(
            m for m in json.loads(out.stdout)["members"] if m["username"] == "bob"
        ).items()
        listed = agp("list", token=token)
        assert listed.returncode == 0 and slug in listed.stdout
    finally:
        remove_workspace(settings, slug)


def test_cli_errors_are_one_sentence(admin_api):
    token = admin_api.http.headers["Authorization"].split()[1]
    out = agp("create", "Bad Name", token=token)
    assert out.returncode == 1
    assert out.stderr.startswith("Error: Workspace names are 3 to 40 characters")
    assert "Traceback" not in out.stderr


def test_cli_unarchives_and_filters_the_audit(admin_api, new_workspace):
    token = admin_api.http.headers["Authorization"].split()[1]
    slug = new_workspace()["slug"]
    assert agp("archive", slug, token=token).returncode == 0
    out = agp("--json", "unarchive", slug, token=token)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["state"] == "ready"
    out = agp("--json", "audit", slug, "--action", "workspace.", "--limit", "2", token=token)
    assert out.returncode == 0, out.stderr
    assert [e["action"] for e in json.loads(out.stdout)] == ["workspace.unarchive", "workspace.archive"]
    out = agp("unarchive", slug, token=token)
    assert out.returncode == 1 and out.stderr.startswith("Error: Workspace")
