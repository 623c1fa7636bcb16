"""Jobs as a user sees them, in headless Chromium: "Run as job…" on a notebook in JupyterLab's file browser, the run
in the Jobs panel, and its executed notebook opened from the workspace's jobs page."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from test_workspace_pages import browser, keycloak_login  # noqa: F401 (the module's browser fixture)

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(600)]


def notebook() -> dict:
    cells = [
        {
            "cell_type": "code",
            "metadata": {"tags": ["parameters"]},
            "source": "who = 'nobody'",
            "outputs": [],
            "execution_count": None,
        },
        {
            "cell_type": "code",
            "metadata": {},
            "source": "print(f'hello from {who}')",
            "outputs": [],
            "execution_count": None,
        },
        {
            "cell_type": "code",
            "metadata": {},
            "source": "%sql SELECT count(*) AS readings FROM meter_readings",
            "outputs": [],
            "execution_count": None,
        },
    ]
    return {
        "cells": cells,
        "metadata": {"kernelspec": {"name": "agp", "display_name": "Python 3 (Antigravity)", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def test_run_a_notebook_as_a_job_and_open_its_output(browser, hub_url, settings, user_api, tmp_path):  # noqa: F811
    alice_api = user_api("alice")
    name = f"nightly-{uuid.uuid4().hex[:6]}.ipynb"
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    try:
        keycloak_login(page, hub_url, "alice", settings.credentials.demo_password.get_secret_value())
        page.click('tr.agp-workspace[data-slug="demo"] a.agp-start')
        page.wait_for_url(f"{hub_url}/user/alice/demo/lab*", timeout=120_000)
        r = alice_api.http.put(
            f"{hub_url}/user/alice/demo/api/contents/{name}",
            json={"type": "notebook", "format": "json", "content": notebook()},
            timeout=30,
        )
        assert r.status_code in (200, 201), r.text
        page.goto(f"{hub_url}/user/alice/demo/lab?reset")
        item = page.locator(f'.jp-DirListing-item[title*="{name}"]').first
        item.wait_for(timeout=60_000)
        item.click(button="right")
        page.locator(".lm-Menu-itemLabel", has_text="Run as job…").click()
        dialog = page.locator(".jp-Dialog")
        dialog.locator("textarea").fill("who=the browser")
        page.screenshot(path=str(tmp_path / "jobs-1-dialog.png"))
        dialog.locator(".jp-Dialog-button.jp-mod-accept").click()

        # The Jobs panel shows the run until it ends.
        page.locator(".jp-SideBar .lm-TabBar-tab[data-id='agp-jobs-panel']").click()
        run = page.locator(".agp-jobs-run", has_text=name.removesuffix(".ipynb")).first
        run.locator(".agp-jobs-state-succeeded").wait_for(timeout=240_000)
        run_id = run.get_attribute("data-run-id")
        page.screenshot(path=str(tmp_path / "jobs-2-panel.png"))

        # The workspace's jobs page lists it; the run's page shows the executed notebook and the log.
        page.goto(f"{hub_url}/services/workspaces/w/demo/jobs")
        row = page.locator(f'tr[data-run="{run_id}"]')
        assert "succeeded" in row.locator(".run-state").inner_text()
        page.screenshot(path=str(tmp_path / "jobs-3-page.png"), full_page=True)
        row.locator("a.open-output").click()
        page.wait_for_url(f"**/w/demo/runs/{run_id}")
        frame = page.frame_locator("#run-output")
        frame.locator("text=hello from the browser").wait_for(timeout=30_000)
        assert "readings" in frame.locator("body").inner_text()
        assert "hello from the browser" in page.locator("#run-log").inner_text()
        page.screenshot(path=str(tmp_path / "jobs-4-run.png"), full_page=True)
    finally:
        page.screenshot(path=str(tmp_path / "jobs-last.png"), full_page=True)
        alice_api.http.delete(f"{hub_url}/user/alice/demo/api/contents/{name}", timeout=30)
        for job in alice_api("GET", "/workspaces/demo/jobs").json():
            if job["filename"] == name:
                alice_api("DELETE", f"/workspaces/demo/jobs/{job['id']}")
        shots = Path("/tmp/agp-browser-shots")
        shots.mkdir(exist_ok=True)
        for png in tmp_path.glob("*.png"):
            shutil.copy(png, shots / png.name)
        alice_api.hub("DELETE", "/users/alice/servers/demo")


def test_submit_run_and_delete_a_job_from_the_workspace_page(browser, hub_url, settings, tmp_path):  # noqa: F811
    script = tmp_path / f"meters_{uuid.uuid4().hex[:6]}.py"
    script.write_text(
        "import argparse\np = argparse.ArgumentParser(); p.add_argument('--day')\nprint('day is', p.parse_args().day)\n"
    )
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.on("dialog", lambda d: d.accept())
    try:
        keycloak_login(
            page,
            hub_url,
            "alice",
            settings.credentials.demo_password.get_secret_value(),
            next_path="/services/workspaces/w/demo/jobs",
        )
        page.locator("#submit-job summary").click()
        page.set_input_files("#job-file", str(script))
        page.fill("#job-params", "day=2026-12-24")
        page.screenshot(path=str(tmp_path / "jobs-5-submit-form.png"))
        page.click("#job-submit")
        job_row = page.locator("#jobs tr", has_text=script.name)
        job_row.wait_for(timeout=30_000)
        run_row = page.locator("#runs tbody tr", has_text=script.name).first
        for _ in range(60):  # the page shows states as of its load: reload until the run ended
            if run_row.locator(".run-state").inner_text() in ("succeeded", "failed"):
                break
            page.wait_for_timeout(1000)
            page.reload()
        assert run_row.locator(".run-state").inner_text() == "succeeded"
        run_row.locator("a").first.click()
        assert "day is 2026-12-24" in page.locator("#run-log").inner_text()
        page.go_back()
        page.screenshot(path=str(tmp_path / "jobs-6-after-run.png"), full_page=True)
        page.locator("#jobs tr", has_text=script.name).locator(".delete-job").click()
        page.locator("#jobs tr", has_text=script.name).wait_for(state="detached", timeout=30_000)
        assert page.locator("#runs tr", has_text=script.name).count() == 0
    finally:
        page.screenshot(path=str(tmp_path / "jobs-page-last.png"), full_page=True)
        shots = Path("/tmp/agp-browser-shots")
        shots.mkdir(exist_ok=True)
        for png in tmp_path.glob("*.png"):
            shutil.copy(png, shots / png.name)
