"""The hub's pages in headless Chromium: an admin creates a workspace and adds a member, who logs in and starts it."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from conftest import remove_workspace

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed; `.ci/bootstrap` installs it", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        yield b
        b.close()


def keycloak_login(page, hub_url: str, username: str, password: str, next_path: str = "/hub/home") -> None:
    page.goto(f"{hub_url}/hub/oauth_login?next={next_path}")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#kc-login")
    page.wait_for_url(f"{hub_url}{next_path}*")


def test_admin_creates_a_workspace_and_its_member_starts_a_server(browser, hub_url, settings, admin_api, tmp_path):
    slug = f"web-{uuid.uuid4().hex[:8]}"
    password = settings.credentials.demo_password.get_secret_value()
    try:
        admin = browser.new_context().new_page()
        keycloak_login(admin, hub_url, "admin", password)
        admin.click("#agp-workspaces-link")
        admin.wait_for_selector("#create-form")
        admin.fill("#new-slug", slug)
        admin.fill("#new-display", "Made in the browser")
        admin.click("#create-button")
        row = f'tr[data-slug="{slug}"]'
        admin.wait_for_selector(f"{row} .ws-state:has-text('ready')", timeout=60_000)
        admin.fill(f"{row} .add-member input[name=username]", "alice")
        admin.select_option(f"{row} .add-member select[name=role]", "editor")
        admin.click(f"{row} .add-member button")
        admin.wait_for_selector(f'{row} li.member[data-username="alice"]')
        admin.screenshot(path=str(tmp_path / "admin-workspaces.png"), full_page=True)

        alice = browser.new_context().new_page()
        keycloak_login(alice, hub_url, "alice", password)
        alice.click(f'tr.agp-workspace[data-slug="{slug}"] a.agp-start')
        alice.wait_for_url(f"{hub_url}/user/alice/{slug}/lab*", timeout=120_000)
        alice.wait_for_selector(".jp-Launcher", timeout=60_000)
        alice.screenshot(path=str(tmp_path / "alice-lab.png"))
        assert alice.url.startswith(f"{hub_url}/user/alice/{slug}/lab")
    finally:
        shots = Path("/tmp/agp-browser-shots")
        shots.mkdir(exist_ok=True)
        for png in tmp_path.glob("*.png"):
            shutil.copy(png, shots / png.name)
        admin_api.hub("DELETE", f"/users/alice/servers/{slug}")
        remove_workspace(settings, slug)
