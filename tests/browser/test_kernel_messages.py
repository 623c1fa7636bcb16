"""What a notebook shows in JupyterLab when ``%sql`` fails or is interrupted, and what the launcher offers, in
headless Chromium (bob's demo server, started fresh so that it runs the runtime's current kernel)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from conftest import wait_until
from test_notebook import run_cell
from test_workspace_pages import browser, keycloak_login  # noqa: F401 (the module's browser fixture)

pytestmark = [pytest.mark.integration, pytest.mark.browser]

LONG_QUERY = (
    "SELECT count(*) FROM UNNEST(sequence(1, 10000)) a(x) "
    "CROSS JOIN UNNEST(sequence(1, 10000)) b(y) CROSS JOIN UNNEST(sequence(1, 10000)) c(z)"
)
NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"


@pytest.fixture
def bobs_lab(browser, hub_url, settings, user_api, tmp_path):  # noqa: F811
    """JupyterLab of bob's demo server, started anew, with the launcher showing; stopped afterwards."""
    bob = user_api("bob")
    bob.hub("DELETE", "/users/bob/servers/demo")

    def stopped() -> None:
        assert "demo" not in bob.hub("GET", "/users/bob").json().get("servers", {})

    wait_until(stopped, timeout=60)
    r = bob.hub("POST", "/users/bob/servers/demo")
    assert r.status_code in (201, 202), r.text
    bob.wait_server("bob", "demo", timeout=180)
    page = browser.new_context(viewport={"width": 1300, "height": 900}).new_page()
    try:
        keycloak_login(page, hub_url, "bob", settings.credentials.demo_password.get_secret_value())
        page.goto(f"{hub_url}/user/bob/demo/lab?reset")
        page.locator('.jp-LauncherCard[title="Python 3 (Antigravity)"]').first.wait_for(timeout=120_000)
        yield page
    finally:
        page.screenshot(path=str(tmp_path / "bob-kernel-messages-last.png"), full_page=True)
        if "/lab/tree/" in page.url:  # the notebook the launcher made
            name = page.url.split("/lab/tree/", 1)[1].split("?")[0]
            bob.http.delete(f"{hub_url}/user/bob/demo/api/contents/{name}", timeout=30)
        shots = Path("/tmp/agp-browser-shots")
        shots.mkdir(exist_ok=True)
        for png in tmp_path.glob("*.png"):
            shutil.copy(png, shots / png.name)
        bob.hub("DELETE", "/users/bob/servers/demo")


def test_a_syntax_error_points_at_the_word_and_an_interrupted_query_is_one_line(bobs_lab, hub_url, tmp_path):
    page = bobs_lab
    page.locator('.jp-LauncherCard[title="Python 3 (Antigravity)"]').first.click()
    page.wait_for_selector(f"{NOTEBOOK} .jp-Notebook .jp-Cell .cm-content", timeout=60_000)
    page.wait_for_selector(".jp-StatusBar-Widget :text('Python 3 (Antigravity) | Idle')", timeout=120_000)

    run_cell(page, "%sql SELEC 1", 0)
    first = page.locator(f"{NOTEBOOK} .jp-Cell").nth(0).locator(".jp-OutputArea")
    first.locator(".jp-OutputArea-output:has-text('SYNTAX_ERROR')").wait_for(timeout=120_000)
    lines = [line for line in first.inner_text().splitlines() if line.strip()]
    assert lines[0].startswith("SYNTAX_ERROR at line 1, column 1: mismatched input 'SELEC'; expecting "), lines
    assert lines[1:] == ["  SELEC 1", "  ^"] or [line.rstrip() for line in lines[1:]] == ["SELEC 1", "^"], lines
    assert "UsageError" not in first.inner_text() and "Traceback" not in first.inner_text()

    run_cell(page, f"%sql {LONG_QUERY}", 1)
    second = page.locator(f"{NOTEBOOK} .jp-Cell").nth(1).locator(".jp-OutputArea")
    second.locator(":text('Trino running')").wait_for(timeout=120_000)  # its progress bar: Trino runs it
    page.locator(f"{NOTEBOOK} .jp-Toolbar [data-command='notebook:interrupt-kernel']").click()
    error = second.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    error.wait_for(timeout=120_000)
    [line] = [line for line in error.inner_text().splitlines() if line.strip()]
    match = re.fullmatch(r"Cancelled in Trino: query (\S+) · (\S+)", line)
    assert match and match.group(2) == f"{hub_url}/services/workspaces/w/demo/queries/{match.group(1)}", line
    assert "Trino running" not in second.inner_text(), "the progress bar went with the query"
    link = error.locator("a")
    assert link.get_attribute("href") == match.group(2), "JupyterLab makes the history entry a link"
    # The cell ended in error: JupyterLab shows no execution count of a successful run, and Run all stops there.
    page.wait_for_selector(".jp-StatusBar-Widget :text('Python 3 (Antigravity) | Idle')", timeout=60_000)
    page.screenshot(path=str(tmp_path / "bob-kernel-messages.png"), full_page=True)


def test_the_launcher_offers_the_antigravity_kernel_only_with_its_logo(bobs_lab, tmp_path):
    page = bobs_lab
    cards = page.locator(".jp-LauncherCard[data-category='Notebook']")
    assert cards.count() == 1 and cards.first.get_attribute("title") == "Python 3 (Antigravity)"
    icon = cards.first.locator("img")
    assert icon.get_attribute("src").endswith("/kernelspecs/agp/logo-svg.svg")
    assert page.evaluate("(img) => img.complete && img.naturalWidth > 0", icon.element_handle()), "the logo loads"
    page.screenshot(path=str(tmp_path / "bob-launcher.png"))
