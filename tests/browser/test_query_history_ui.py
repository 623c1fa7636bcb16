"""The query history pages as a member sees them, in headless Chromium: a query alice just ran in the demo workspace,
found with the text filter, opened with its full text and statistics; a failing one with its error and position.
Screenshots go to /tmp/agp-browser-shots/."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from test_workspace_pages import browser, keycloak_login  # noqa: F401 (the module's browser fixture)

from agp.kernels.credentials import BrokerClient, trino_connect

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(600)]
SHOTS = Path("/tmp/agp-browser-shots")


def test_a_query_just_run_is_in_the_workspace_history_page(browser, hub_url, settings, user_api):  # noqa: F811
    SHOTS.mkdir(parents=True, exist_ok=True)
    marker = f"qh-ui-{uuid.uuid4().hex[:6]}"
    token = user_api("alice").http.headers["Authorization"].split()[1]
    alice = BrokerClient(f"{hub_url}/services/workspaces", token, "demo")
    cur = trino_connect(alice).cursor()
    cur.execute(f"SELECT count(*) AS readings FROM meter_readings -- {marker}")
    cur.fetchall()
    ok_id = cur.query_id
    cur = trino_connect(alice).cursor()
    with pytest.raises(Exception, match="nope"):
        cur.execute(f"SELECT readings\nFROM meter_readings WHERE nope > 1 -- {marker}")
        cur.fetchall()
    failed_id = cur.query_id

    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    keycloak_login(page, hub_url, "alice", settings.credentials.demo_password.get_secret_value())
    history = f"{hub_url}/services/workspaces/w/demo/queries"
    for _ in range(60):  # the listener posts the completed events a moment after the queries ended
        page.goto(f"{history}?q={marker}")
        if (
            page.locator(f'tr[data-query="{failed_id}"] .query-state').count()
            and page.locator(f'tr[data-query="{ok_id}"] .query-state', has_text="FINISHED").count()
        ):
            break
        page.wait_for_timeout(1000)
    row = page.locator(f'tr[data-query="{ok_id}"]')
    assert row.locator(".query-state").inner_text() == "FINISHED"
    assert marker in row.locator(".query-text").inner_text()
    failed = page.locator(f'tr[data-query="{failed_id}"]')
    assert failed.locator(".query-state").inner_text() == "FAILED"
    assert "COLUMN_NOT_FOUND" in failed.locator(".query-error").inner_text()
    page.screenshot(path=str(SHOTS / "query-history-1-list.png"), full_page=True)

    # The filter form narrows to the failed one.
    page.select_option("#f-state", "FAILED")
    page.click("#query-filters button[type=submit]")
    page.wait_for_url("**state=FAILED**")
    assert page.locator(f'tr[data-query="{failed_id}"]').count() == 1
    assert page.locator(f'tr[data-query="{ok_id}"]').count() == 0

    page.click(f'tr[data-query="{failed_id}"] a')
    page.wait_for_url(f"**/w/demo/queries/{failed_id}")
    assert "line 2, column" in page.locator("#query-error").inner_text()
    assert marker in page.locator("#query-text").inner_text()
    page.screenshot(path=str(SHOTS / "query-history-2-failed.png"), full_page=True)

    page.goto(f"{history}/{ok_id}")
    assert "meter_readings" in page.locator("#tables-read").inner_text()
    page.screenshot(path=str(SHOTS / "query-history-3-entry.png"), full_page=True)
    page.context.close()
