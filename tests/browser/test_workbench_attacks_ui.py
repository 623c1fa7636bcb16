"""Attacks through the workbench's panels, in headless Chromium (issue 12).

The query history holds the text of anyone's query that touched a workspace, sent by any client; the panel's
"Re-run" puts it in a ``%%sql`` cell and runs it. jupysql renders a cell's SQL as an (unsandboxed) Jinja template
over the kernel's variables, so ``{{ … }}`` in someone else's query text ran as Python in the kernel of whoever
re-ran it. Here bob's own query is the payload: ``{{ 6 * 7 }}`` must come back as written, not as 42.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from conftest import query_rows, remove_workspace, wait_until
from test_workspace_pages import browser, keycloak_login  # noqa: F401 (the module's browser fixture)

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(600)]

SHOTS = Path("/tmp/agp-browser-shots")
VISIBLE_CELLS = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell"


def test_rerun_from_the_history_runs_the_text_not_a_template(browser, hub_url, settings, admin_api, user_api):  # noqa: F811
    from agp.kernels.credentials import BrokerClient, trino_connect

    slug = f"t-atk-ui-{uuid.uuid4().hex[:6]}"
    marker = f"probe_{uuid.uuid4().hex[:8]}"
    bob_api = user_api("bob")
    page = None
    try:
        assert admin_api("POST", "/workspaces", json={"slug": slug}).status_code == 201
        assert admin_api("PUT", f"/workspaces/{slug}/members/bob", json={"role": "editor"}).status_code == 200
        token = bob_api.http.headers["Authorization"].split()[1]
        bob = BrokerClient(f"{hub_url}/services/workspaces", token, slug)
        # Sent by a plain Trino client, as any notebook, job or BI tool may: the history keeps the text as sent.
        wait_until(lambda: query_rows(trino_connect(bob), f"SELECT '{{{{ 6 * 7 }}}}' AS {marker}"), 60)

        page = browser.new_context(viewport={"width": 1500, "height": 1000}).new_page()
        keycloak_login(page, hub_url, "bob", settings.credentials.demo_password.get_secret_value())
        page.goto(f"{hub_url}/hub/spawn/bob/{slug}")
        page.wait_for_url(f"{hub_url}/user/bob/{slug}/lab*", timeout=180_000)
        page.goto(f"{hub_url}/user/bob/{slug}/lab?reset")  # no layout of an earlier run (a panel left open)
        page.locator('.jp-LauncherCard[title="Python 3 (Antigravity)"]').first.click(timeout=60_000)
        page.wait_for_selector(f"{VISIBLE_CELLS} .cm-content", timeout=60_000)
        page.wait_for_selector(".jp-StatusBar-Widget :text('Python 3 (Antigravity) | Idle')", timeout=120_000)

        panel = page.locator("#agp-history-panel")
        if not panel.is_visible():  # the tab toggles the panel
            page.locator(".jp-SideBar .lm-TabBar-tab[data-id='agp-history-panel']").click()
        entry = panel.locator("li.agp-history-query", has_text=marker).first
        for _ in range(60):  # the listener records a query a moment after it ends
            if entry.count():
                break
            panel.locator(".agp-history-refresh").click()
            page.wait_for_timeout(1000)
        cells = page.locator(VISIBLE_CELLS).count()
        entry.locator(".agp-history-rerun").click()
        page.wait_for_function(f"() => document.querySelectorAll('{VISIBLE_CELLS}').length > {cells}", timeout=10_000)
        rerun = page.locator(VISIBLE_CELLS).nth(cells)
        output = rerun.locator(".jp-OutputArea-output", has_text=marker).first
        output.wait_for(timeout=120_000)
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "workbench-attack-rerun-template.png"))
        text = rerun.locator(".jp-OutputArea").inner_text()
        assert "{{ 6 * 7 }}" in text, f"the re-run query was rendered as a template: {text[:300]!r}"
    finally:
        if page is not None:
            SHOTS.mkdir(exist_ok=True)
            page.screenshot(path=str(SHOTS / "workbench-attack-last.png"))
            page.context.close()
        bob_api.hub("DELETE", f"/users/bob/servers/{slug}")
        remove_workspace(settings, slug)
