"""Benchmark of the %sql result grid against jupysql's plain HTML table of the first 10 rows, side by side.

    python3 tests/bench/bench_result_grid.py [--runs 3]

In headless Chromium, alice's JupyterLab in the demo workspace, one notebook per side: ``%config
ResultGrid.enabled = True`` (the grid) or ``False`` (jupysql's HTML table of ``displaylimit`` = 10 rows, what a
``%sql`` result showed before the grid), a warm-up ``%sql SELECT 1``, then a 1,000,000-row query. Measured, runs
interleaved: milliseconds from Shift+Enter on the query to its first row on screen (polled every frame), and the
page's JavaScript heap after it (after a garbage collection) less the heap before it. The first grid of a page also
loads AG Grid's chunk: that is part of what is measured. Needs the lab running (`agp lab up`); alice's server runs
in a workspace made for it (and removed after), so that no test starts or stops it meanwhile.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import remove_workspace
from hubclient import Api, HubSession

from agp.core.settings import Settings

BIG = (
    "%sql SELECT a * 1000 + b AS x, (a * 1000 + b) * 2 AS y, 'row ' || CAST(a * 1000 + b AS varchar) AS label "
    "FROM UNNEST(sequence(0, 999)) AS s(a) CROSS JOIN UNNEST(sequence(1, 1000)) AS t(b)"
)
FIRST_ROW = {
    "grid": ".agp-ResultGrid .ag-row[row-index='0'] .ag-cell[col-id='c0']",
    "table": ".jp-OutputArea-output table tbody tr td",
}


def notebook(grid: bool) -> dict:
    sources = [f"%config ResultGrid.enabled = {grid}", "%sql SELECT 1", BIG]
    cells = [
        {"cell_type": "code", "metadata": {}, "source": s, "outputs": [], "execution_count": None} for s in sources
    ]
    return {
        "cells": cells,
        "metadata": {"kernelspec": {"name": "agp", "display_name": "Python 3 (Antigravity)", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def heap(cdp) -> float:
    cdp.send("HeapProfiler.collectGarbage")
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return metrics["JSHeapUsedSize"] / 2**20


def one_run(context, server: str, path: str, side: str) -> tuple[float, float]:
    page = context.new_page()
    try:
        cdp = context.new_cdp_session(page)
        cdp.send("Performance.enable")
        page.goto(f"{server}/lab/tree/{path}?reset")  # this notebook alone, not the last layout
        page.wait_for_selector(".jp-StatusBar-Widget :text('Python 3 (Antigravity) | Idle')", timeout=180_000)
        cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell")
        cells.nth(0).locator(".cm-content").click()
        page.keyboard.press("Shift+Enter")
        page.keyboard.press("Shift+Enter")
        cells.nth(1).locator(".jp-OutputArea-output").first.wait_for(timeout=120_000)
        page.wait_for_selector(".jp-StatusBar-Widget :text('Python 3 (Antigravity) | Idle')", timeout=120_000)
        before = heap(cdp)
        page.evaluate(
            "() => { window.__t0 = 0; window.__t1 = 0; window.__tOut = 0; document.addEventListener('keydown',"
            " () => { window.__t0 = window.__t0 || performance.now(); }, {capture: true, once: true}); }"
        )
        page.keyboard.press("Shift+Enter")
        selector = FIRST_ROW[side].replace("'", "\\'")
        page.wait_for_function(
            "() => { const cell = document.querySelectorAll('.jp-Cell')[2];"
            " if (cell?.querySelector('.jp-OutputArea-output')) { window.__tOut = window.__tOut || performance.now(); }"
            f" const c = cell?.querySelector('{selector}');"
            " return c && c.textContent.trim() !== '' && (window.__t1 = window.__t1 || performance.now()); }",
            polling="raf",
            timeout=300_000,
        )
        ms, out = page.evaluate("() => [window.__t1 - window.__t0, window.__tOut - window.__t0]")
        print(f"  {path}: output in the cell after {out:.0f} ms, first row after {ms:.0f} ms")
        page.wait_for_selector(".jp-StatusBar-Widget :text('Python 3 (Antigravity) | Idle')", timeout=300_000)
        return ms, heap(cdp) - before
    except Exception:
        page.screenshot(path="/tmp/agp-browser-shots/bench-result-grid-failed.png")
        raise
    finally:
        page.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs of each side, interleaved; 3 by default")
    args = parser.parse_args()
    settings = Settings()
    hub_url = settings.hub_url
    password = settings.credentials.demo_password.get_secret_value()
    session = HubSession(hub_url)
    session.login("alice", password)
    alice = Api(hub_url, session.new_token("alice"))
    # A workspace of its own: a server no test or other benchmark starts or stops meanwhile.
    admin_session = HubSession(hub_url)
    admin_session.login("admin", password)
    admin = Api(hub_url, admin_session.new_token("admin"))
    slug = f"bench-grid-{uuid.uuid4().hex[:6]}"
    admin("POST", "/workspaces", json={"slug": slug}).raise_for_status()
    try:
        admin("PUT", f"/workspaces/{slug}/members/alice", json={"role": "editor"}).raise_for_status()
        alice.hub("POST", f"/users/alice/servers/{slug}")
        alice.wait_server("alice", slug, timeout=180)
        return measure(settings, alice, f"{hub_url}/user/alice/{slug}", args.runs)
    finally:
        alice.hub("DELETE", f"/users/alice/servers/{slug}")
        time.sleep(5)
        remove_workspace(settings, slug)


def measure(settings: Settings, alice: Api, server: str, runs: int) -> int:
    hub_url, password = settings.hub_url, settings.credentials.demo_password.get_secret_value()
    paths = {side: f"bench-grid-{side}-{uuid.uuid4().hex[:6]}.ipynb" for side in ("grid", "table")}
    for side, path in paths.items():
        body = {"type": "notebook", "format": "json", "content": notebook(side == "grid")}
        alice.http.put(f"{server}/api/contents/{path}", json=body, timeout=30).raise_for_status()
    from playwright.sync_api import sync_playwright

    results: dict[str, list[tuple[float, float]]] = {"grid": [], "table": []}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            page.goto(f"{hub_url}/hub/oauth_login?next=/hub/home")
            page.fill("#username", "alice")
            page.fill("#password", password)
            page.click("#kc-login")
            page.wait_for_url(f"{hub_url}/hub/home*")
            page.close()
            for run in range(runs):
                for side in ("table", "grid") if run % 2 else ("grid", "table"):
                    results[side].append(one_run(context, server, paths[side], side))
                    print(f"run {run + 1} {side}: {results[side][-1][0]:.0f} ms, +{results[side][-1][1]:.1f} MiB")
            browser.close()
    finally:
        for path in paths.values():
            alice.http.delete(f"{server}/api/contents/{path}", timeout=30)
    print(f"\n1,000,000-row %sql result, medians of {runs} (first row on screen; JS heap growth after GC):")
    for side, label in (("table", "jupysql's HTML table, 10 rows"), ("grid", "result grid")):
        ms = statistics.median(r[0] for r in results[side])
        mib = statistics.median(r[1] for r in results[side])
        print(f"  {label:32} {ms:8.0f} ms   {mib:+7.1f} MiB")
    grid_ms = statistics.median(r[0] for r in results["grid"])
    table_ms = statistics.median(r[0] for r in results["table"])
    print(f"  ratio (grid / table)             {grid_ms / table_ms:8.2f} x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
