"""A %sql result in JupyterLab, in headless Chromium: the grid shows 5,000 rows of Trino's, sorts and filters them in
the kernel, downloads them as CSV, and draws a bar chart of them."""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from playwright.sync_api import expect
from test_workspace_pages import browser, keycloak_login  # noqa: F401 (the module's browser fixture)

pytestmark = [pytest.mark.integration, pytest.mark.browser]

QUERY = "%sql SELECT x, 'n' || CAST(x % 7 AS varchar) AS name, x * 0.5 AS half FROM UNNEST(sequence(1, 5000)) AS t(x)"


def notebook() -> dict:
    return {
        "cells": [{"cell_type": "code", "metadata": {}, "source": QUERY, "outputs": [], "execution_count": None}],
        "metadata": {"kernelspec": {"name": "agp", "display_name": "Python 3 (Antigravity)", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def test_a_sql_result_sorts_filters_downloads_and_charts_in_the_grid(
    browser,  # noqa: F811
    hub_url,
    settings,
    admin_api,
    user_api,
    new_workspace,
    tmp_path,
):
    # A workspace of its own: the server this test starts and stops is no other test's.
    slug = new_workspace()["slug"]
    assert admin_api("PUT", f"/workspaces/{slug}/members/alice", json={"role": "editor"}).status_code in (200, 201)
    alice_api = user_api("alice")
    assert alice_api.hub("POST", f"/users/alice/servers/{slug}").status_code in (201, 202)
    alice_api.wait_server("alice", slug, timeout=180)
    name = f"grid-{uuid.uuid4().hex[:6]}.ipynb"
    server = f"{hub_url}/user/alice/{slug}"
    r = alice_api.http.put(
        f"{server}/api/contents/{name}", json={"type": "notebook", "format": "json", "content": notebook()}, timeout=30
    )
    assert r.status_code in (200, 201), r.text
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=hub_url)
    page = context.new_page()
    try:
        keycloak_login(page, hub_url, "alice", settings.credentials.demo_password.get_secret_value())
        page.goto(f"{server}/lab/tree/{name}?reset")
        page.wait_for_selector(".jp-StatusBar-Widget :text('Python 3 (Antigravity) | Idle')", timeout=120_000)
        page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell .cm-content").first.click()
        page.keyboard.press("Shift+Enter")

        grid = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .agp-ResultGrid").first
        first_x = grid.locator('.ag-row[row-index="0"] .ag-cell[col-id="c0"]')
        first_x.wait_for(timeout=180_000)
        # The grid is built again once the kernel says it holds the whole result: wait by locator, not by element.
        expect(first_x).to_have_text("1", timeout=60_000)
        # The columns' SQL types under their names.
        headers = grid.locator(".ag-header-row-column").inner_text()
        assert "name" in headers and "varchar" in headers and "bigint" in headers, headers
        page.screenshot(path=str(tmp_path / "grid-1-shown.png"))

        # Sort by x, descending (two clicks): the kernel sorts all 5,000 rows, the first is the last one.
        label = grid.locator('.ag-header-cell[col-id="c0"] .ag-header-cell-label')
        label.click()
        expect(first_x).to_have_text("1", timeout=60_000)
        label.click()
        expect(first_x).to_have_text("5000", timeout=60_000)
        expect(grid.locator(".agp-ResultGrid-status")).to_have_text(re.compile(r"^5,000 rows"), timeout=60_000)

        # Filter name = n3 (the floating filter under its header): 714 rows, still sorted.
        grid.locator('.ag-floating-filter[aria-colindex="2"] input').fill("n3")
        expect(first_x).to_have_text("4994", timeout=60_000)
        expect(grid.locator(".agp-ResultGrid-status")).to_have_text(re.compile(r"^714 rows"), timeout=60_000)
        assert grid.locator('.ag-row[row-index="0"] .ag-cell[col-id="c1"]').inner_text() == "n3"
        page.screenshot(path=str(tmp_path / "grid-2-sorted-filtered.png"))

        # Copy: the rows in view (none selected) as tab-separated text, with the names as a header.
        grid.locator('button[data-action="copy"]').click()
        copied = page.evaluate("() => navigator.clipboard.readText()").splitlines()
        assert copied[:2] == ["x\tname\thalf", "4994\tn3\t2497.0"], copied[:3]

        # CSV of the result as sorted and filtered, from the kernel.
        with page.expect_download(timeout=60_000) as download:
            grid.locator('button[data-action="csv"]').click()
        assert download.value.suggested_filename == "result.csv"
        lines = Path(download.value.path()).read_text().splitlines()
        assert lines[:3] == ["x,name,half", "4994,n3,2497.0", "4987,n3,2493.5"] and len(lines) == 715
        with page.expect_download(timeout=60_000) as download:  # Parquet, from the kernel too
            grid.locator('button[data-action="parquet"]').click()
        parquet = pq.read_table(download.value.path())
        assert parquet.num_rows == 714 and parquet.column("x").to_pylist()[:2] == [4994, 4987]

        # A bar chart: the sum of half by name, over the filtered result.
        grid.locator('button[data-action="chart"]').click()
        grid.locator('select[data-field="x"]').select_option(label="name")
        grid.locator('select[data-field="y"]').select_option(label="half")
        grid.locator('select[data-field="of"]').select_option("sum")
        grid.locator('button[data-action="draw"]').click()
        chart = grid.locator(".agp-ResultGrid-chartOutput .vega-embed")
        chart.wait_for(timeout=60_000)
        chart.locator("svg, canvas").first.wait_for(timeout=60_000)
        grid.scroll_into_view_if_needed()
        page.screenshot(path=str(tmp_path / "grid-3-chart.png"), full_page=True)

        # The user restarts the kernel (Kernel > Restart Kernel…): the grid falls back to the rows stored in the
        # notebook, and says so. (A restart through the REST API from elsewhere reached this page as a status change
        # only sometimes under CI's load; that path is left to the renderer's status handling.)
        page.locator('.lm-MenuBar-itemLabel:text-is("Kernel")').click()
        page.locator('.lm-Menu-itemLabel:text-is("Restart Kernel…")').click()
        page.locator(".jp-Dialog button.jp-mod-accept").click()
        expect(grid.locator(".agp-ResultGrid-note")).to_contain_text(
            "The kernel no longer holds this result", timeout=60_000
        )
        expect(grid.locator(".agp-ResultGrid-status")).to_have_text(re.compile(r"^200 of more rows"))
        expect(first_x).to_have_text("1")
        assert grid.locator('button[data-action="parquet"]').is_disabled()
        page.screenshot(path=str(tmp_path / "grid-4-kernel-gone.png"))
        with page.expect_download(timeout=60_000) as download:  # the CSV of the rows stored, made in the browser
            grid.locator('button[data-action="csv"]').click()
        lines = Path(download.value.path()).read_text().splitlines()
        assert lines[:2] == ["x,name,half", "1,n1,0.5"] and len(lines) == 201
    finally:
        page.screenshot(path=str(tmp_path / "grid-last.png"), full_page=True)
        alice_api.http.delete(f"{server}/api/contents/{name}", timeout=30)
        shots = Path("/tmp/agp-browser-shots")
        shots.mkdir(exist_ok=True)
        for png in tmp_path.glob("*.png"):
            shutil.copy(png, shots / png.name)
        context.close()
        alice_api.hub("DELETE", f"/users/alice/servers/{slug}")
