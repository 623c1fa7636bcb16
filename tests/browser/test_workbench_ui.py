"""The workbench in JupyterLab as a user sees it, in headless Chromium: the workspace identity in the top bar and its
switcher, the Catalog side panel (drag a table and a column into a cell, Insert SELECT, preview) and the Query
history panel (the entry of a query just run, opened again in a cell)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from test_workspace_pages import browser, keycloak_login  # noqa: F401 (the module's browser fixture)

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(600)]

SHOTS = Path("/tmp/agp-browser-shots")
VISIBLE_CELLS = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell"


def shoot(page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"workbench-{name}.png"))


def drop(page, source, target) -> None:
    """Drag ``source`` onto the end of the first line of ``target`` with the browser's own drag events (Playwright's
    mouse drag starts only the first native drag of a page in headless Chromium; later ones never begin)."""
    page.evaluate(
        """([src, dst]) => {
          const data = new DataTransfer();
          src.dispatchEvent(new DragEvent('dragstart', {dataTransfer: data, bubbles: true}));
          const box = dst.getBoundingClientRect();
          const at = {dataTransfer: data, bubbles: true, cancelable: true,
                      clientX: box.right - 5, clientY: box.top + 5};
          for (const type of ['dragenter', 'dragover', 'drop']) dst.dispatchEvent(new DragEvent(type, at));
          src.dispatchEvent(new DragEvent('dragend', {dataTransfer: data, bubbles: true}));
        }""",
        [source.element_handle(), target.element_handle()],
    )


def cell_text(page, index: int) -> str:
    return page.locator(VISIBLE_CELLS).nth(index).locator(".cm-content").inner_text()


@pytest.fixture(scope="module")
def alice_lab(browser, hub_url, settings, user_api):  # noqa: F811
    """Alice's JupyterLab in the demo workspace, with a new notebook on the Antigravity kernel, idle."""
    alice_api = user_api("alice")
    page = browser.new_context(viewport={"width": 1500, "height": 1000}).new_page()
    contents = f"{hub_url}/user/alice/demo/api/contents"
    before: set[str] = set()
    try:
        keycloak_login(page, hub_url, "alice", settings.credentials.demo_password.get_secret_value())
        page.goto(f"{hub_url}/hub/spawn/alice/demo")
        page.wait_for_url(f"{hub_url}/user/alice/demo/lab*", timeout=120_000)
        before = {f["path"] for f in alice_api.http.get(contents, timeout=30).json()["content"]}
        page.goto(f"{hub_url}/user/alice/demo/lab?reset")
        page.locator('.jp-LauncherCard[title="Python 3 (Antigravity)"]').first.click(timeout=60_000)
        page.wait_for_selector(f"{VISIBLE_CELLS} .cm-content", timeout=60_000)
        page.wait_for_selector(".jp-StatusBar-Widget :text('Python 3 (Antigravity) | Idle')", timeout=120_000)
        yield page
    finally:
        shoot(page, "last")
        page.context.close()
        if before:  # the notebook the launcher made
            for f in alice_api.http.get(contents, timeout=30).json()["content"]:
                if f["path"] not in before and f["path"].startswith("Untitled"):
                    alice_api.http.delete(f"{contents}/{f['path']}", timeout=30)
        alice_api.hub("DELETE", "/users/alice/servers/demo")


def test_the_identity_bar_shows_workspace_and_role_and_switches(alice_lab, hub_url, new_workspace, admin_api):
    page = alice_lab
    bar = page.locator("#agp-identity")
    bar.locator(".agp-identity-workspace").wait_for(timeout=30_000)
    assert bar.get_attribute("data-workspace") == "demo"
    role = bar.get_attribute("data-role")
    assert role in ("owner", "editor"), role
    assert bar.locator(".agp-identity-readonly").count() == 0, "an editor is not read-only"
    assert bar.locator(".agp-identity-home").get_attribute("href") == "/hub/home"

    # A workspace where alice is a viewer: listed in the switcher; its lab says read-only.
    title = f"Workbench viewer {uuid.uuid4().hex[:4]}"
    ws = new_workspace(display_name=title)
    assert admin_api("PUT", f"/workspaces/{ws['slug']}/members/alice", json={"role": "viewer"}).status_code == 200
    page.reload()
    bar.locator(".agp-identity-switcher").click()
    other = bar.locator(f'.agp-identity-menu a[data-slug="{ws["slug"]}"]')
    other.wait_for(timeout=30_000)
    assert title in other.inner_text() and "viewer" in other.inner_text()
    assert other.get_attribute("href") == f"/hub/spawn/alice/{ws['slug']}", "not running: the hub's spawn page"
    shoot(page, "1-switcher")

    viewer = page.context.new_page()
    try:
        viewer.goto(f"{hub_url}{other.get_attribute('href')}")
        viewer.wait_for_url(f"{hub_url}/user/alice/{ws['slug']}/lab*", timeout=120_000)
        vbar = viewer.locator("#agp-identity")
        vbar.locator(".agp-identity-readonly").wait_for(timeout=60_000)
        assert vbar.locator(".agp-identity-workspace").inner_text() == title
        assert vbar.locator(".agp-identity-role").inner_text() == "viewer"
        vbar.locator(".agp-identity-switcher").click()
        demo = vbar.locator('.agp-identity-menu a[data-slug="demo"]')
        assert demo.get_attribute("href") == "/user/alice/demo/lab", "demo's server runs: its lab"
        assert "running" in demo.inner_text()
        shoot(viewer, "2-viewer")
    finally:
        viewer.close()
        admin_api.hub("DELETE", f"/users/alice/servers/{ws['slug']}")


def test_catalog_panel_drag_and_insert_select(alice_lab, trino_conn):
    page = alice_lab
    page.locator(".jp-SideBar .lm-TabBar-tab[data-id='agp-catalog-panel']").click()
    panel = page.locator("#agp-catalog-panel")
    sections = panel.locator(".agp-catalog-section")
    sections.first.wait_for(timeout=60_000)
    assert sections.first.inner_text().lower() == "this workspace"
    first_ns = panel.locator("li.agp-catalog-ns").first
    assert first_ns.get_attribute("data-namespace") == "demo", "the workspace's own namespace comes first"
    table = panel.locator('li.agp-catalog-table[data-table="demo.meter_readings"]')
    stats = table.locator(".agp-catalog-stats")
    page.wait_for_function("(el) => /rows/.test(el.textContent)", arg=stats.element_handle(), timeout=60_000)
    assert stats.inner_text().split()[0].replace(",", "").isdigit(), stats.inner_text()
    shoot(page, "3-catalog")

    # Drag the table into the first cell: its SQL name is inserted.
    row = table.locator(".agp-catalog-row").first
    target = page.locator(VISIBLE_CELLS).nth(0).locator(".cm-content")
    row.drag_to(target)
    page.wait_for_function(
        "(el) => el.textContent.includes('demo.meter_readings')", arg=target.element_handle(), timeout=10_000
    )
    # Open the table: columns with SQL types; drag a column in too.
    row.click()
    column = table.locator("li.agp-catalog-column").first
    column.wait_for(timeout=60_000)
    assert column.locator(".agp-catalog-type").inner_text() in (
        "bigint",
        "integer",
        "varchar",
        "double",
        "date",
        "timestamp(6)",
        "timestamp(6) with time zone",
        "real",
    ), column.inner_text()
    assert table.locator(".agp-catalog-facts").inner_text().count("Rows") == 1
    name = column.get_attribute("data-column")
    drop(page, column, target)
    page.wait_for_function(
        "([el, name]) => el.textContent.includes(name)", arg=[target.element_handle(), name], timeout=10_000
    )
    shoot(page, "4-dragged")

    # Insert SELECT: a %%sql cell below the (non-empty) active cell, which runs.
    row.hover()
    table.locator(".agp-catalog-select").first.click()
    page.wait_for_function(f"() => document.querySelectorAll('{VISIBLE_CELLS}').length >= 2", timeout=10_000)
    assert cell_text(page, 1).replace("\u200b", "") == "%%sql\nSELECT *\nFROM demo.meter_readings\nLIMIT 100"
    page.keyboard.press("Shift+Enter")
    page.locator(VISIBLE_CELLS).nth(1).locator(".jp-OutputArea-output", has_text="Bern").first.wait_for(timeout=120_000)
    shoot(page, "5-insert-select")

    # A table made in a cell appears in the panel without a click on refresh, and goes when dropped.
    made = f"wb_{uuid.uuid4().hex[:6]}"
    cells = page.locator(VISIBLE_CELLS)
    try:
        for sql in (f"%sql CREATE TABLE demo.{made} AS SELECT 1 AS a", f"%sql DROP TABLE demo.{made}"):
            cell = cells.nth(cells.count() - 1)  # the empty cell Shift+Enter left below
            cell.locator(".cm-content").click()
            page.keyboard.type(sql)
            page.keyboard.press("Shift+Enter")
            item = panel.locator(f'li.agp-catalog-table[data-table="demo.{made}"]')
            if "CREATE" in sql:
                item.wait_for(timeout=120_000)
                shoot(page, "5b-after-create")
            else:
                item.wait_for(state="detached", timeout=120_000)
    finally:
        trino_conn.cursor().execute(f"DROP TABLE IF EXISTS iceberg.demo.{made}")


def test_the_history_shows_a_query_just_run(alice_lab, user_api):
    if user_api("alice")("GET", "/workspaces/demo/queries").status_code == 404:
        pytest.skip("the workspace service has no query history yet (hub/history)")
    page = alice_lab
    marker = f"history-{uuid.uuid4().hex[:8]}"
    cells = page.locator(VISIBLE_CELLS)
    page.locator(
        ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-NotebookPanel-toolbar [data-command='notebook:insert-cell-below']"
    ).click()
    new = cells.nth(cells.count() - 1)
    new.locator(".cm-content").click()
    page.keyboard.type(f"%sql SELECT '{marker}' AS marker")
    page.keyboard.press("Shift+Enter")
    new.locator(".jp-OutputArea-output", has_text=marker).first.wait_for(timeout=120_000)

    page.locator(".jp-SideBar .lm-TabBar-tab[data-id='agp-history-panel']").click()
    panel = page.locator("#agp-history-panel")
    entry = panel.locator("li.agp-history-query", has_text=marker).first
    for _ in range(30):  # the listener records a query a moment after it ends: read again until it is there
        if entry.count():
            break
        panel.locator(".agp-history-refresh").click()
        page.wait_for_timeout(1000)
    entry.wait_for(timeout=5_000)
    assert "alice" in entry.locator(".agp-history-meta").inner_text()
    assert entry.locator(".agp-history-state").inner_text() == "finished"
    assert entry.locator("a.agp-history-page").get_attribute("href").startswith("/services/workspaces/w/demo/queries/")
    shoot(page, "6-history")

    cells = page.locator(VISIBLE_CELLS).count()
    entry.locator(".agp-history-rerun").click()
    page.wait_for_function(f"() => document.querySelectorAll('{VISIBLE_CELLS}').length > {cells}", timeout=10_000)
    rerun = page.locator(VISIBLE_CELLS).nth(cells)
    assert marker in rerun.locator(".cm-content").inner_text()
    rerun.locator(".jp-OutputArea-output", has_text=marker).first.wait_for(timeout=120_000)
    shoot(page, "7-rerun")
