"""Benchmark of the Catalog side panel's first paint, against plain pyiceberg listing the same, side by side.

    python3 tests/bench/bench_catalog_panel.py [--runs 3]

In headless Chromium, alice's JupyterLab in the demo workspace: from the click on the Catalog panel's tab to the
workspace's namespaces and the tables of its own namespace on screen (the names; row counts and sizes follow). Cold
in a freshly started server (its catalog client and cache empty), cold in a warm server whose cache was dropped
(``POST /agp/catalog/invalidate``), and warm (the page reloaded, the server's cache full). Against: plain pyiceberg
listing the same (``list_namespaces()`` and ``list_tables()`` of the workspace's namespace) straight on the lab's
catalog with a new catalog (cold) and a reused one (warm), and through the workspace service's catalog proxy as alice
with a new broker client (what the server does inside). Needs the lab running (`agp lab up`); stops alice's server.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hubclient import Api, HubSession

from agp.core import clients
from agp.core.settings import Settings
from agp.kernels.credentials import BrokerClient
from agp.kernels.credentials import load_catalog as workspace_catalog

WS, NS = "demo", "demo"
TAB = ".jp-SideBar .lm-TabBar-tab[data-id='agp-catalog-panel']"
PAINTED = (
    "() => document.querySelector('#agp-catalog-panel li.agp-catalog-ns[data-namespace=\"demo\"] li.agp-catalog-table')"
    " && (window.__agpT1 = window.__agpT1 || performance.now())"
)


def panel_paint_ms(page) -> float:
    """Milliseconds from the click on the panel's tab (its pointerdown) to the workspace's tables on screen (polled
    every frame)."""
    page.evaluate(
        "() => { window.__agpT1 = 0; window.__agpT0 = 0; document.addEventListener('pointerdown',"
        " () => { window.__agpT0 = performance.now(); }, {capture: true, once: true}); }"
    )
    page.click(TAB)
    page.wait_for_function(PAINTED, polling="raf", timeout=120_000)
    return page.evaluate("() => window.__agpT1 - window.__agpT0")


def open_lab(page, hub_url: str) -> None:
    page.goto(f"{hub_url}/user/alice/{WS}/lab?reset")
    page.wait_for_selector(TAB, timeout=120_000)
    page.wait_for_selector("#agp-identity .agp-identity-workspace", timeout=60_000)  # the page has settled


def pyiceberg_ms(make_catalog) -> float:
    t0 = time.perf_counter()
    cat = make_catalog()
    cat.list_namespaces()
    cat.list_tables(NS)
    return (time.perf_counter() - t0) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="fresh-server runs; 3 by default")
    args = parser.parse_args()
    settings = Settings()
    hub_url = settings.hub_url
    password = settings.credentials.demo_password.get_secret_value()
    session = HubSession(hub_url)
    session.login("alice", password)
    token = session.new_token("alice")
    alice = Api(hub_url, token)
    res: dict[str, list[float]] = {}

    def add(name: str, ms: float) -> None:
        res.setdefault(name, []).append(ms)

    def stop() -> None:
        alice.hub("DELETE", f"/users/alice/servers/{WS}")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and WS in alice.hub("GET", "/users/alice").json().get("servers", {}):
            time.sleep(0.3)

    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))
    from test_workspace_pages import keycloak_login

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        keycloak_login(page, hub_url, "alice", password)
        direct = clients.load_catalog(settings)
        try:
            for _ in range(args.runs):
                stop()
                r = alice.hub("POST", f"/users/alice/servers/{WS}")
                assert r.status_code in (201, 202), r.text
                alice.wait_server("alice", WS)
                open_lab(page, hub_url)
                add("panel, cold (fresh server)", panel_paint_ms(page))
                for _ in range(3):
                    open_lab(page, hub_url)
                    add("panel, warm (server cache full)", panel_paint_ms(page))
                open_lab(page, hub_url)
                r = alice.http.post(f"{hub_url}/user/alice/{WS}/agp/catalog/invalidate", timeout=30)
                assert r.status_code == 204, r.text
                add("panel, cold (cache dropped)", panel_paint_ms(page))

                add("pyiceberg direct, cold (new catalog)", pyiceberg_ms(lambda: clients.load_catalog(settings)))
                for _ in range(3):
                    add("pyiceberg direct, warm (reused catalog)", pyiceberg_ms(lambda: direct))
                add(
                    "pyiceberg via proxy as alice, cold",
                    pyiceberg_ms(lambda: workspace_catalog(BrokerClient(f"{hub_url}/services/workspaces", token, WS))),
                )
        finally:
            browser.close()
            stop()

    med = {name: statistics.median(xs) for name, xs in res.items()}
    print("\nCatalog panel first paint (namespaces and the workspace's tables), p50 in ms:")
    for name, ms in med.items():
        print(f"  {name:<42} {ms:8.1f}   (n={len(res[name])})")
    print("Ratios:")
    for a, b in [
        ("panel, cold (fresh server)", "pyiceberg direct, cold (new catalog)"),
        ("panel, cold (cache dropped)", "pyiceberg direct, warm (reused catalog)"),
        ("panel, warm (server cache full)", "pyiceberg direct, warm (reused catalog)"),
        ("panel, cold (fresh server)", "pyiceberg via proxy as alice, cold"),
        ("panel, cold (cache dropped)", "pyiceberg via proxy as alice, cold"),
        ("pyiceberg via proxy as alice, cold", "pyiceberg direct, cold (new catalog)"),
    ]:
        print(f"  {a} vs {b}: {med[a] / med[b]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
