"""A new notebook in JupyterLab, in headless Chromium: the launcher's Antigravity kernel runs %sql and shows the
catalog browser, with no set-up cell."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_workspace_pages import browser, keycloak_login  # noqa: F401 (the module's browser fixture)

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def run_cell(page, code: str, index: int) -> None:
    """Type ``code`` into cell ``index`` (0-based) and run it with Shift+Enter."""
    cell = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").nth(index)
    cell.locator(".cm-content").click()
    page.keyboard.type(code)
    page.keyboard.press("Shift+Enter")


def test_a_new_notebook_queries_trino_and_browses_the_catalog(browser, hub_url, settings, user_api, tmp_path):  # noqa: F811
    alice_api = user_api("alice")
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    try:
        keycloak_login(page, hub_url, "alice", settings.credentials.demo_password.get_secret_value())
        page.click('tr.agp-workspace[data-slug="demo"] a.agp-start')
        page.wait_for_url(f"{hub_url}/user/alice/demo/lab*", timeout=120_000)
        page.goto(f"{hub_url}/user/alice/demo/lab?reset")  # a fresh layout: the launcher, not last time's tabs
        page.locator('.jp-LauncherCard[title="Python 3 (Antigravity)"]').first.click(timeout=60_000)
        page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell .cm-content", timeout=60_000)
        page.wait_for_selector(".jp-NotebookPanel-toolbar :text('Python 3 (Antigravity)')", timeout=60_000)
        # Run cells only once the kernel is connected and idle (earlier, JupyterLab may drop the request).
        page.wait_for_selector(".jp-StatusBar-Widget :text('Python 3 (Antigravity) | Idle')", timeout=120_000)

        run_cell(page, "%sql SELECT city, count(*) AS readings FROM meter_readings GROUP BY city ORDER BY city", 0)
        # A slow first query also shows Trino's progress bar above the table.
        output = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell").nth(0).locator(".jp-OutputArea")
        output.locator(".agp-ResultGrid .ag-row").first.wait_for(timeout=120_000)  # the result grid (results.ts)
        text = output.inner_text()
        assert "Bern" in text and "Oslo" in text and "readings" in text, text

        run_cell(page, "from agp.kernels import CatalogBrowser\nCatalogBrowser()", 1)
        tree = page.locator(".widget-select select").first
        tree.wait_for(timeout=60_000)
        assert "▸ demo" in tree.inner_text().replace("\xa0", " ")
        # A click on the namespace opens it. By its label: alice may be a member of other workspaces that earlier
        # runs on this lab left, listed before demo (CI clicked the first row and waited for demo's tables in vain).
        demo = page.evaluate(
            "() => [...document.querySelectorAll('.widget-select select option')]"
            ".findIndex(o => o.text.replace(/\\u00a0/g, ' ').trim() === '▸ demo')"
        )
        assert demo >= 0
        tree.select_option(index=demo)
        page.wait_for_function(
            "() => [...document.querySelectorAll('.widget-select select option')]"
            ".some(o => o.text.includes('meter_readings'))",
            timeout=60_000,
        )
        labels = [o.replace("\xa0", " ") for o in tree.locator("option").all_inner_texts()]
        tree.select_option(index=next(i for i, o in enumerate(labels) if o.strip() == "▸ meter_readings"))
        page.wait_for_selector(".widget-html :text('Snapshots')", timeout=60_000)
        sql_box = page.locator(".widget-text input").nth(1)
        page.wait_for_function(
            "(el) => el.value.includes('meter_readings')", arg=sql_box.element_handle(), timeout=30_000
        )
        assert sql_box.input_value() == 'SELECT * FROM "demo"."meter_readings" LIMIT 100'
        page.screenshot(path=str(tmp_path / "alice-notebook.png"), full_page=True)
    finally:
        page.screenshot(path=str(tmp_path / "alice-notebook-last.png"), full_page=True)
        if "/lab/tree/" in page.url:  # the notebook the launcher made
            name = page.url.split("/lab/tree/", 1)[1].split("?")[0]
            alice_api.http.delete(f"{hub_url}/user/alice/demo/api/contents/{name}", timeout=30)
        shots = Path("/tmp/agp-browser-shots")
        shots.mkdir(exist_ok=True)
        for png in tmp_path.glob("*.png"):
            shutil.copy(png, shots / png.name)
        alice_api.hub("DELETE", "/users/alice/servers/demo")
