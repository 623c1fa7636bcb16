"""The hub's pages in headless Chromium: an admin creates a workspace and adds a member, who logs in and starts it;
the workspace page's members, role changes, audit and state; the home page's start with its real phases; one
navigation bar on every page."""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path

import pytest
from conftest import remove_workspace

from agp.core import clients

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path("/tmp/agp-browser-shots")


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
        # The naming rule is on the page before anything is typed, and a broken name is flagged at the field.
        assert "Workspace names are 3 to 40 characters" in admin.inner_text("#new-slug-rule")
        for bad, why in (
            ("Grid_Ops", "Use lowercase letters only."),
            ("grid_ops", '"_" is not allowed: letters a-z, digits and hyphens only.'),
            ("grid--ops", "Use single hyphens between letters or digits."),
            ("select", '"select" is a reserved word; choose another name.'),
            ("ab", "Too short: 2 characters, at least 3."),
        ):
            admin.fill("#new-slug", bad)
            assert admin.inner_text("#new-slug-error") == why, bad
        admin.click("#create-button")  # refused in the browser: nothing is sent
        admin.screenshot(path=str(tmp_path / "admin-workspaces-bad-name.png"), full_page=True)
        assert admin.url.endswith("/services/workspaces/")
        admin.fill("#new-slug", slug)
        assert admin.inner_text("#new-slug-error") == ""
        admin.fill("#new-display", "Made in the browser")
        admin.click("#create-button")
        admin.wait_for_url(f"{hub_url}/services/workspaces/w/{slug}", timeout=60_000)
        admin.wait_for_selector("#ws-state:text-is('ready')")
        admin.fill("#member-name", "alice")
        admin.select_option("#member-role", "editor")
        admin.click("#member-add")
        admin.wait_for_selector('#members tr.member[data-username="alice"]')
        admin.screenshot(path=str(tmp_path / "admin-workspace-created.png"), full_page=True)
        admin.goto(f"{hub_url}/services/workspaces/")
        admin.wait_for_selector(f'tr[data-slug="{slug}"] .ws-state:has-text("ready")')
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


def shoot(page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def navbar(page) -> list[tuple[str, str]]:
    """The navigation bar's links as (text, href), and the user it names."""
    page.wait_for_selector("#agp-navbar")
    links = page.eval_on_selector_all(
        "#agp-navbar a", "els => els.map(e => [e.textContent.trim(), e.getAttribute('href')])"
    )
    return [tuple(x) for x in links] + [("user", page.inner_text("#agp-nav-user"))]


def roles(api, slug: str) -> dict[str, str]:
    return {m["username"]: m["role"] for m in api("GET", f"/workspaces/{slug}").json()["members"]}


@pytest.fixture
def page_ws(new_workspace, admin_api) -> str:
    """A workspace of its own for the page tests: admin owner, alice editor."""
    slug = new_workspace(display_name="Page tests")["slug"]
    assert admin_api("PUT", f"/workspaces/{slug}/members/alice", json={"role": "editor"}).status_code == 200
    return slug


def test_the_workspace_page_changes_a_role_after_confirmation_and_refuses_an_unknown_user(
    browser, hub_url, settings, admin_api, page_ws, lab
):
    slug = page_ws
    page = browser.new_context(viewport={"width": 1300, "height": 900}).new_page()
    keycloak_login(page, hub_url, "admin", settings.credentials.demo_password.get_secret_value())
    page.goto(f"{hub_url}/services/workspaces/w/{slug}")
    page.wait_for_selector('#members tr.member[data-username="alice"]')
    page.evaluate("window.agpSamePage = true")  # gone if anything below reloads the page
    shoot(page, "workspace-1-members")
    role = page.locator('select.member-role[data-username="alice"]')

    # A role change asks first; cancelling changes nothing.
    role.select_option("viewer")
    dialog = page.locator("#confirm")
    dialog.wait_for(state="visible")
    assert "from editor to viewer" in dialog.inner_text()
    shoot(page, "workspace-2-confirm-role")
    page.click("#confirm-cancel")
    dialog.wait_for(state="hidden")
    assert role.input_value() == "editor"
    assert {m["username"]: m["role"] for m in admin_api("GET", f"/workspaces/{slug}").json()["members"]}[
        "alice"
    ] == "editor"

    role.select_option("viewer")
    dialog.wait_for(state="visible")
    page.click("#confirm-ok")
    page.wait_for_selector("#toast-body:has-text('alice is now viewer')")
    assert {m["username"]: m["role"] for m in admin_api("GET", f"/workspaces/{slug}").json()["members"]}[
        "alice"
    ] == "viewer"

    # The rule is stated before submitting; a name that breaks it is flagged as it is typed.
    field, error = page.locator("#member-name"), page.locator("#member-name-error")
    assert "User names are 1 to 64 characters" in page.inner_text("#member-name-rule")
    field.fill("Not A Name")
    error.wait_for(state="visible")
    assert "User names are 1 to 64 characters" in error.inner_text()
    # A user nobody knows: the server's refusal lands next to the field, and no member is added.
    ghost = f"ghost-{uuid.uuid4().hex[:6]}"
    field.fill(ghost)
    page.click("#member-add")
    page.wait_for_selector(f'#member-name-error:has-text("There is no user {ghost!r} on the platform")')
    assert "is-invalid" in (field.get_attribute("class") or "")
    assert page.locator(f'#members tr.member[data-username="{ghost}"]').count() == 0
    assert page.locator("#agp-error").is_hidden(), "the error is next to the field, not at the top"
    shoot(page, "workspace-3-unknown-user")
    # bob exists: suggested while typing, then added
    field.fill("bo")
    page.wait_for_selector('#member-candidates option[value="bob"]', state="attached")
    field.fill("bob")
    page.select_option("#member-role", "viewer")
    page.click("#member-add")
    page.wait_for_selector('#members tr.member[data-username="bob"]')

    # The audit shows the role given and the one before, filtered to member changes, a page at a time.
    page.click("#tab-audit-btn")
    page.select_option("#audit-filter select[name=action]", "member.")
    page.click("#audit-filter button[type=submit]")
    page.wait_for_function(
        "() => { const rows = [...document.querySelectorAll('#audit tr.audit-event')];"
        " return rows.length > 0 && rows.every(r => r.dataset.action === 'member.set'); }"
    )
    page.wait_for_selector("#audit tr.audit-event:has-text('alice → viewer (was editor)')")
    assert set(page.eval_on_selector_all("#audit tr.audit-event", "r => r.map(e => e.dataset.action)")) == {
        "member.set"
    }
    assert re.fullmatch(r"1\u2013\d+ of \d+", page.inner_text("#audit-range"))
    shoot(page, "workspace-4-audit")

    # Archive and unarchive, each confirmed, the state shown at once.
    page.click("#ws-archive")
    dialog.wait_for(state="visible")
    page.click("#confirm-ok")
    page.wait_for_selector("#ws-state:text-is('archived')")
    assert page.locator("#ws-open").is_hidden(), "no server starts in an archived workspace"
    shoot(page, "workspace-5-archived")
    page.click("#ws-unarchive")
    dialog.wait_for(state="visible")
    page.click("#confirm-ok")
    page.wait_for_selector("#ws-state:text-is('ready')")
    assert admin_api("GET", f"/workspaces/{slug}").json()["state"] == "ready"
    # A query alice just ran in the workspace reaches its history, found by its text, linked to its entry.
    marker = f"page_marker_{uuid.uuid4().hex[:8]}"
    with clients.trino_connect(settings, user="alice", schema=slug.replace("-", "_")) as conn:
        cur = conn.cursor()
        cur.execute(f"SELECT 42 AS {marker}")
        cur.fetchall()
    page.click("#tab-queries-btn")
    page.fill("#queries-filter input[name=q]", marker)
    entry = page.locator("#queries tr.query", has_text=marker)
    for _ in range(60):  # Trino's event listener posts when the query completes; look again until it is in
        page.click("#queries-filter button[type=submit]")
        page.wait_for_selector("#queries tbody tr")
        if entry.count():
            break
        page.wait_for_timeout(1000)
    assert page.locator("#queries-unavailable").is_hidden()
    assert entry.count() == 1 and "alice" in entry.inner_text() and "FINISHED" in entry.inner_text()
    assert f"/services/workspaces/w/{slug}/queries/" in entry.locator("a").get_attribute("href")
    shoot(page, "workspace-6-queries")
    page.click("#tab-quotas-btn")
    shoot(page, "workspace-7-quotas")
    assert page.evaluate("window.agpSamePage === true"), "no action reloaded the page"


def test_home_lists_workspaces_only_and_a_start_shows_its_real_phases(browser, hub_url, settings, admin_api, page_ws):
    slug = page_ws
    page = browser.new_context(viewport={"width": 1300, "height": 900}).new_page()
    messages: list[str] = []
    page.on("console", lambda m: messages.append(m.text) if m.text.startswith(f"agp start {slug}:") else None)
    try:
        keycloak_login(page, hub_url, "alice", settings.credentials.demo_password.get_secret_value())
        row = page.locator(f'tr.agp-workspace[data-slug="{slug}"]')
        row.wait_for()
        # JupyterHub's generic server controls are not a user's: no "Start My Server", no named-server list.
        assert page.locator("#start").count() == 0 and page.locator(".server-table").count() == 0
        assert page.locator("text=Named Servers").count() == 0
        shoot(page, "home-1-workspaces")
        row.locator("a.agp-start").click()
        row.locator("li.agp-phase").first.wait_for(timeout=60_000)
        shoot(page, "home-2-starting")
        page.wait_for_url(f"{hub_url}/user/alice/{slug}/lab*", timeout=120_000)
        phases = [m.split(":", 1)[1].strip() for m in messages]
        # the spawner's own phases, in order, and never JupyterHub's placeholder
        expected = ["Checking your membership", "Preparing", "Handing the server", "Server process started", "Waiting"]
        seen = [next((i for i, p in enumerate(phases) if e in p), None) for e in expected]
        assert None not in seen and seen == sorted(seen), phases
        assert not any("Spawning server..." in p for p in phases), phases
        assert phases[-1].startswith("100 Server ready"), phases
    finally:
        admin_api.hub("DELETE", f"/users/alice/servers/{slug}")


def test_every_page_has_the_same_navigation_bar(browser, hub_url, settings, page_ws):
    page = browser.new_context(viewport={"width": 1300, "height": 900}).new_page()
    keycloak_login(page, hub_url, "alice", settings.credentials.demo_password.get_secret_value())
    pages = {
        "home": "/hub/home",
        "workspaces": "/services/workspaces/",
        "workspace": f"/services/workspaces/w/{page_ws}",
        "jobs": f"/services/workspaces/w/{page_ws}/jobs",
        "403": "/hub/spawn/alice/not-her-workspace",
        "404": "/services/workspaces/w/not-her-workspace",
        "token": "/hub/token",
    }
    bars, active = {}, {}
    for name, path in pages.items():
        response = page.goto(hub_url + path)
        bars[name] = navbar(page)
        active[name] = page.eval_on_selector_all("#agp-navbar a.active", "els => els.map(e => e.textContent.trim())")
        shoot(page, f"chrome-{name}")
        if name in ("403", "404"):
            assert response.status == int(name), (name, response.status)
    assert bars["home"][:4] == [
        ("Antigravity", "/hub/home"),
        ("Home", "/hub/home"),
        ("Workspaces", "/services/workspaces/"),
        ("Token", "/hub/token"),
    ]
    assert all(bar == bars["home"] for bar in bars.values()), bars
    # the current part is marked
    assert active["home"] == ["Home"]
    assert active["workspaces"] == active["workspace"] == active["jobs"] == ["Workspaces"]
