"""Jobs as the attacker sees them, on the real lab: every job and every notebook is hostile.

Each test is one attack against the jobs feature (ids of another workspace, another member's job, the run's token,
the rendered output, an output opened in someone else's server, the cancel path's process tags, a membership that
changed) and asserts that it fails.
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import psutil
import pytest
import requests
from conftest import wait_until
from jobsapi import log_of, run_of, wait_state
from jobsapi import submit as submit_job

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
ENDED = {"succeeded", "failed", "cancelled", "timed_out"}
SLEEPER = "import time\nprint('started', flush=True)\ntime.sleep(300)\n"


# --- helpers -----------------------------------------------------------------------------------------------------


def notebook(*cells: str) -> dict:
    return {
        "cells": [
            {"cell_type": "code", "metadata": {}, "source": src, "outputs": [], "execution_count": None}
            for src in cells
        ],
        "metadata": {"kernelspec": {"name": "agp", "display_name": "agp", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def hostile_output() -> dict:
    """An executed notebook as a hostile author writes it: script in its outputs, its cells marked trusted."""
    nb = notebook("display(HTML(...))")
    nb["cells"][0]["metadata"]["trusted"] = True
    nb["cells"][0]["execution_count"] = 1
    nb["cells"][0]["outputs"] = [
        {
            "output_type": "display_data",
            "metadata": {},
            "data": {
                "text/html": "<b>report</b><script>window.top.pwned = document.cookie</script>",
                "application/javascript": "window.top.pwned = 1",
                "text/plain": "<IPython.core.display.HTML object>",
            },
        }
    ]
    return nb


def submit(api, slug: str, source: str, **body) -> dict:
    """A script job unless ``kind`` says otherwise."""
    return submit_job(api, slug, source, **{"kind": "script", **body})


def wait_log(api, slug: str, run_id: int, text: str, timeout: float = 120) -> str:
    def check() -> str:
        log = log_of(api, slug, run_id)
        assert text in log, log[-2000:]
        return log

    return wait_until(check, timeout=timeout)


def cancel_and_wait(api, slug: str, run_id: int) -> dict:
    assert api("POST", f"/workspaces/{slug}/runs/{run_id}/cancel").status_code == 200
    return wait_state(api, slug, run_id, ENDED, timeout=120)


def editors(new_workspace, admin_api, *users: str, role: str = "editor") -> str:
    slug = new_workspace()["slug"]
    for user in users:
        r = admin_api("PUT", f"/workspaces/{slug}/members/{user}", json={"role": role})
        assert r.status_code == 200, r.text
    return slug


def refused_runs(api, slug: str, job_id: int) -> list[dict]:
    runs = [r for r in api("GET", f"/workspaces/{slug}/runs", params={"job_id": job_id}).json() if r["state"] in ENDED]
    assert runs
    return runs


# --- another workspace's ids, another member's job ---------------------------------------------------------------


def test_ids_of_another_workspace_answer_as_missing(new_workspace, admin_api, user_api):
    """bob (editor of B only) names alice's job and run of A, through A and through B: all 404, nothing changes."""
    alice, bob = user_api("alice"), user_api("bob")
    a = editors(new_workspace, admin_api, "alice")
    b = editors(new_workspace, admin_api, "bob")
    theirs = submit(alice, a, SLEEPER, parameters={"secret": "a-only"})
    mine = submit(bob, b, "print('b')")
    job, run = theirs["job"]["id"], theirs["run"]["id"]
    wait_log(alice, a, run, "started")
    nb = json.dumps(hostile_output()).encode()
    for slug in (a, b):
        attempts = [
            ("GET", f"/jobs/{job}", {}),
            ("PATCH", f"/jobs/{job}", {"json": {"parameters": {"secret": "bob"}, "paused": True}}),
            ("DELETE", f"/jobs/{job}", {}),
            ("POST", f"/jobs/{job}/runs", {"json": {"parameters": {"secret": "bob"}}}),
            ("GET", f"/runs/{run}", {}),
            ("GET", f"/runs/{run}/log", {}),
            ("GET", f"/runs/{run}/output", {}),
            ("GET", f"/runs/{run}/input", {}),
            ("PUT", f"/runs/{run}/output", {"data": nb}),
            ("POST", f"/runs/{run}/cancel", {}),
        ]
        for method, path, kw in attempts:
            r = bob(method, f"/workspaces/{slug}{path}", **kw)
            assert r.status_code == 404, (slug, method, path, r.status_code, r.text)
            assert "a-only" not in r.text and "started" not in r.text
        listed = bob("GET", f"/workspaces/{b}/runs", params={"job_id": job}).json()
        assert listed == [], listed
    # And the other way round: alice with bob's ids through A.
    for path in (f"/jobs/{mine['job']['id']}", f"/runs/{mine['run']['id']}", f"/runs/{mine['run']['id']}/log"):
        assert alice("GET", f"/workspaces/{a}{path}").status_code == 404
    # Pages too.
    for page in (f"/w/{a}/runs/{run}", f"/w/{b}/runs/{run}", f"/w/{a}/runs/{run}/output.html", f"/w/{a}/jobs"):
        r = bob.http.get(bob.base.removesuffix("/api") + page, allow_redirects=False, timeout=60)
        assert r.status_code == 404, (page, r.status_code)
        assert "a-only" not in r.text
    still = run_of(alice, a, run)
    assert still["state"] == "running" and not still["has_output"], still
    assert alice("GET", f"/workspaces/{a}/jobs/{job}").json()["parameters"] == {"secret": "a-only"}
    assert cancel_and_wait(alice, a, run)["state"] == "cancelled"


def test_another_member_cannot_change_feed_or_impersonate_a_job(new_workspace, admin_api, user_api):
    """bob (editor of the same workspace) against alice's job: no change, no parameters, no input, no output."""
    alice, bob = user_api("alice"), user_api("bob")
    ws = editors(new_workspace, admin_api, "alice", "bob")
    out = submit(alice, ws, SLEEPER, parameters={"n": 1})
    job, run = out["job"]["id"], out["run"]["id"]
    wait_log(alice, ws, run, "started")
    assert bob("PATCH", f"/workspaces/{ws}/jobs/{job}", json={"source": "print('bob')"}).status_code == 403
    assert bob("POST", f"/workspaces/{ws}/jobs/{job}/runs", json={"parameters": {"n": 2}}).status_code == 403
    assert bob("DELETE", f"/workspaces/{ws}/jobs/{job}").status_code == 403
    # The runner's own endpoints answer the run's owner only.
    r = bob("GET", f"/workspaces/{ws}/runs/{run}/input")
    assert r.status_code == 409 and "SLEEPER" not in r.text and "time.sleep" not in r.text, r.text
    r = bob("PUT", f"/workspaces/{ws}/runs/{run}/output", data=json.dumps(hostile_output()).encode())
    assert r.status_code == 409, r.text
    assert not run_of(alice, ws, run)["has_output"]
    assert [r["id"] for r in alice("GET", f"/workspaces/{ws}/runs", params={"job_id": job}).json()] == [run]
    assert cancel_and_wait(alice, ws, run)["state"] == "cancelled"


# --- the run's token ---------------------------------------------------------------------------------------------


def test_the_run_token_reaches_the_workspace_service_only_and_dies_with_the_run(
    new_workspace, admin_api, user_api, hub_url
):
    alice = user_api("alice")
    ws = editors(new_workspace, admin_api, "alice")
    script = "import os, time\nprint('TOKEN', os.environ['JUPYTERHUB_API_TOKEN'], flush=True)\ntime.sleep(300)\n"
    run = submit(alice, ws, script)["run"]["id"]
    token = re.search(r"TOKEN (\S+)", wait_log(alice, ws, run, "TOKEN")).group(1)
    as_run = requests.Session()
    as_run.headers["Authorization"] = f"token {token}"
    hub = f"{hub_url}/hub/api"
    # What it is for: the workspace service, as alice.
    assert as_run.get(f"{hub_url}/services/workspaces/api/workspaces", timeout=30).status_code == 200
    # What alice's own token could do but the run's must not.
    for method, path, body in (
        ("GET", "/users", None),
        ("GET", "/users/admin", None),
        ("POST", "/users/alice/tokens", {"scopes": ["self"], "note": "escalate"}),
        ("POST", "/users/alice/tokens", {"scopes": ["access:services!service=workspaces"]}),
        ("POST", "/users/alice/servers/pwn", {}),
        ("DELETE", "/users/bob/servers/", None),
        ("POST", "/users", {"usernames": ["mallory"]}),
        ("GET", "/groups", None),
        ("GET", "/proxy", None),
    ):
        r = as_run.request(method, hub + path, json=body, timeout=30)
        assert r.status_code in (403, 404), (method, path, r.status_code, r.text)
    # Who it is, as every hub token tells (JupyterHub's "identify"): alice's name, groups and admin flag, no more.
    me = as_run.get(f"{hub}/users/alice", timeout=30).json()
    assert set(me) <= {"kind", "name", "admin", "groups", "user_info"} and me["name"] == "alice", me
    assert cancel_and_wait(alice, ws, run)["state"] == "cancelled"

    def revoked() -> None:
        assert as_run.get(f"{hub_url}/services/workspaces/api/workspaces", timeout=30).status_code in (401, 403)
        assert as_run.get(f"{hub}/user", timeout=30).status_code == 403

    wait_until(revoked, timeout=30)


# --- what a viewer's browser is shown ------------------------------------------------------------------------------


def test_rendered_output_and_raw_answers_run_no_script_of_the_author(new_workspace, admin_api, user_api):
    alice, bob = user_api("alice"), user_api("bob")
    ws = editors(new_workspace, admin_api, "alice")
    assert admin_api("PUT", f"/workspaces/{ws}/members/bob", json={"role": "viewer"}).status_code == 200
    evil = "<img src=x onerror=alert(1)>"
    out = submit(alice, ws, SLEEPER, name=f"job {evil}", filename=f"{evil}.py")
    run = out["run"]["id"]
    wait_log(alice, ws, run, "started")
    r = alice("PUT", f"/workspaces/{ws}/runs/{run}/output", data=json.dumps(hostile_output()).encode())
    assert r.status_code == 204, r.text
    pages = bob.base.removesuffix("/api")
    # The notebook's HTML is shown in a sandbox: no script, an origin of its own.
    r = bob.http.get(f"{pages}/w/{ws}/runs/{run}/output.html", timeout=60)
    assert r.status_code == 200 and "window.top.pwned" in r.text  # the author's script is there, inert
    csp = [d.strip() for d in r.headers["Content-Security-Policy"].split(";")]
    assert "sandbox" in csp and not any("allow-scripts" in d or "allow-same-origin" in d for d in csp), csp
    assert r.headers.get("X-Content-Type-Options") == "nosniff"
    # The raw notebook and the log are never read as HTML.
    raw = bob.http.get(f"{bob.base}/workspaces/{ws}/runs/{run}/output", timeout=60)
    assert raw.status_code == 200 and raw.headers["Content-Type"].startswith("application/x-ipynb+json")
    assert raw.headers.get("X-Content-Type-Options") == "nosniff", raw.headers
    log = bob.http.get(f"{bob.base}/workspaces/{ws}/runs/{run}/log", timeout=60)
    assert log.headers["Content-Type"].startswith("text/plain")
    assert log.headers.get("X-Content-Type-Options") == "nosniff", log.headers
    # Names with markup are text on the pages.
    for page in (f"/w/{ws}/jobs", f"/w/{ws}/runs/{run}"):
        html = bob.http.get(pages + page, timeout=60).text
        assert evil not in html and "&lt;img src=x onerror=alert(1)&gt;" in html, page
    assert cancel_and_wait(alice, ws, run)["state"] == "cancelled"


def test_an_output_opened_in_another_users_server_is_not_trusted(new_workspace, admin_api, user_api, hub_url):
    """alice's run's output, opened by bob from his Jobs panel, must not become a trusted (script-running) notebook
    in bob's JupyterLab: that would be alice's JavaScript with bob's server, kernels and token."""
    alice, bob = user_api("alice"), user_api("bob")
    ws = editors(new_workspace, admin_api, "alice", "bob")
    assert bob.hub("POST", f"/users/bob/servers/{ws}").status_code in (201, 202)
    try:
        bob.wait_server("bob", ws, timeout=180)
        run = submit(alice, ws, SLEEPER, name="report")["run"]["id"]
        wait_log(alice, ws, run, "started")
        r = alice("PUT", f"/workspaces/{ws}/runs/{run}/output", data=json.dumps(hostile_output()).encode())
        assert r.status_code == 204, r.text
        server = f"{hub_url}/user/bob/{ws}"
        r = bob.http.post(f"{server}/agp/jobs/runs/{run}/open", timeout=60)
        assert r.status_code == 200, r.text
        path = r.json()["path"]
        model = bob.http.get(f"{server}/api/contents/{path}", params={"content": 1}, timeout=60).json()
        cell = model["content"]["cells"][0]
        assert cell["metadata"].get("trusted") is not True, cell["metadata"]
        assert cell["outputs"], cell  # the outputs are kept, shown as untrusted
        cancel_and_wait(alice, ws, run)
    finally:
        bob.hub("DELETE", f"/users/bob/servers/{ws}")


# --- membership that changed -------------------------------------------------------------------------------------


def test_a_schedule_of_a_member_downgraded_to_viewer_is_refused(new_workspace, admin_api, user_api):
    bob = user_api("bob")
    ws = editors(new_workspace, admin_api, "bob")
    job = submit(bob, ws, "print('hi')", schedule="*/5 * * * * *", run_now=False)["job"]["id"]
    assert admin_api("PUT", f"/workspaces/{ws}/members/bob", json={"role": "viewer"}).status_code == 200
    runs = wait_until(lambda: refused_runs(admin_api, ws, job), timeout=60)
    assert runs[0]["state"] == "failed" and "Refused" in runs[0]["reason"], runs
    assert all(r["state"] != "succeeded" for r in admin_api("GET", f"/workspaces/{ws}/runs").json())
    # A viewer does not write in the workspace: not even their own job's code, parameters or schedule.
    for change in ({"source": "print('changed')"}, {"parameters": {"x": 1}}, {"schedule": "* * * * *"}):
        r = bob("PATCH", f"/workspaces/{ws}/jobs/{job}", json=change)
        assert r.status_code == 403, (change, r.text)
    assert bob("POST", f"/workspaces/{ws}/jobs/{job}/runs").status_code == 403
    # Stopping it stays possible.
    assert bob("PATCH", f"/workspaces/{ws}/jobs/{job}", json={"paused": True}).status_code == 200


def test_a_schedule_of_a_group_member_is_refused_once_the_binding_goes(new_workspace, admin_api, user_api):
    """alice is in the workspace only through its Keycloak group binding; when the binding goes, her job stops."""
    alice = user_api("alice")
    groups = admin_api.hub("GET", "/users/alice").json().get("groups") or []
    if not groups:
        pytest.skip("alice is in no hub group in this lab")
    ws = new_workspace(keycloak_group=groups[0], group_role="editor")["slug"]
    job = submit(alice, ws, "print('hi')", schedule="*/5 * * * * *", run_now=False)["job"]["id"]
    first = wait_until(lambda: refused_runs(alice, ws, job), timeout=60)
    assert any(r["state"] == "succeeded" for r in first), first
    assert admin_api("PATCH", f"/workspaces/{ws}", json={"keycloak_group": ""}).status_code == 200
    bound_off = time.time()

    def refused_after() -> list[dict]:
        runs = admin_api("GET", f"/workspaces/{ws}/runs", params={"job_id": job}).json()
        late = [r for r in runs if r["started_at"] and _ts(r["started_at"]) > bound_off + 1 and r["state"] in ENDED]
        assert late
        return late

    late = wait_until(refused_after, timeout=60)
    assert all(r["state"] == "failed" and "Refused" in r["reason"] for r in late), late


def _ts(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value).timestamp()


# --- the cancel path's process tags ----------------------------------------------------------------------------


def test_cancel_signals_only_processes_of_the_runs_own_user(new_workspace, admin_api, user_api):
    """The tag is an environment variable, which any process can carry: a process of another user (here one of
    root's, as a setuid program or a daemon started with the user's environment would be) that carries the run's tag
    must survive the run's cancel."""
    alice = user_api("alice")
    ws = editors(new_workspace, admin_api, "alice")
    run = submit(alice, ws, SLEEPER)["run"]["id"]
    wait_log(alice, ws, run, "started")
    tag = f"agp-run-{run}-1"
    planted = subprocess.Popen(
        ["sleep", "300"], env={"PATH": "/usr/bin:/bin", "AGP_JOB_RUN": tag}, start_new_session=True
    )
    try:
        assert cancel_and_wait(alice, ws, run)["state"] == "cancelled"
        time.sleep(1)
        assert planted.poll() is None, f"the service signalled root's process {planted.pid} (exit {planted.returncode})"
        mine = [
            p
            for p in psutil.process_iter()
            if _environ(p).get("AGP_JOB_RUN") == tag and p.pid != planted.pid and p.status() != psutil.STATUS_ZOMBIE
        ]
        assert mine == [], mine  # alice's own processes of the run are gone
    finally:
        planted.kill()
        planted.wait()


def _environ(p: psutil.Process) -> dict:
    try:
        return p.environ()
    except psutil.Error:
        return {}
