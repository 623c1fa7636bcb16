"""The workspace's shared folder in JupyterLab, in headless Chromium: alice (owner) puts a file there; bob, a viewer,
finds ``shared/`` in his file browser beside his own files, opens her file, read-only, and is refused when he saves
it (the server refusing a write itself, and the OS refusing his kernel, are in tests/integration/test_shared_folder.py).
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from conftest import remove_workspace
from test_workspace_pages import browser, keycloak_login  # noqa: F401 (the module's browser fixture)

from agp.hub.shared_sync import shared_root

pytestmark = [pytest.mark.integration, pytest.mark.browser]


@pytest.fixture
def workspace(admin_api, settings):
    slug = f"t-shb-{uuid.uuid4().hex[:8]}"
    try:
        assert admin_api("POST", "/workspaces", json={"slug": slug}).status_code == 201
        for user, role in (("alice", "owner"), ("bob", "viewer")):
            r = admin_api("PUT", f"/workspaces/{slug}/members/{user}", json={"role": role})
            assert r.status_code == 200, r.text
        yield slug
    finally:
        remove_workspace(settings, slug)
        shutil.rmtree(shared_root(settings) / slug, ignore_errors=True)


def test_a_viewer_sees_the_shared_folder_and_cannot_save_in_it(
    browser,  # noqa: F811 (the fixture imported above)
    hub_url,
    settings,
    user_api,
    workspace,
    tmp_path,
):
    alice, bob = user_api("alice"), user_api("bob")
    for user, api in (("alice", alice), ("bob", bob)):
        assert api.hub("POST", f"/users/{user}/servers/{workspace}").status_code in (201, 202)
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    try:
        alice.wait_server("alice", workspace)
        r = alice.http.put(
            f"{hub_url}/user/alice/{workspace}/api/contents/shared/readme.md",
            json={"type": "file", "format": "text", "content": "# Team notes\n\nWritten by alice.\n"},
            timeout=30,
        )
        assert r.status_code == 201, r.text
        bob.wait_server("bob", workspace)

        keycloak_login(page, hub_url, "bob", settings.credentials.demo_password.get_secret_value())
        page.goto(f"{hub_url}/user/bob/{workspace}/lab?reset")
        listing = page.locator(".jp-DirListing-content")
        listing.locator(".jp-DirListing-item[title^='Name: shared']").wait_for(timeout=120_000)
        page.screenshot(path=str(tmp_path / "shared-1-file-browser.png"))

        listing.locator(".jp-DirListing-item[title^='Name: shared']").dblclick()
        item = listing.locator(".jp-DirListing-item[title^='Name: readme.md']")
        item.wait_for(timeout=30_000)
        assert page.locator(".jp-BreadCrumbs").inner_text().strip().strip("/").endswith("shared")
        item.dblclick()
        editor = page.locator(".jp-FileEditor .cm-content")
        editor.wait_for(timeout=30_000)
        page.wait_for_function(
            "() => document.querySelector('.jp-FileEditor .cm-content')?.innerText.includes('Written by alice')",
            timeout=30_000,
        )
        editor.click()
        page.keyboard.press("Control+End")
        page.keyboard.type("bob was here\n")
        # The server said the file is not writable (it asked the OS: os.access under the folder's ACL) ...
        page.get_by_text("file is read-only").wait_for(timeout=30_000)  # the editor's toolbar
        page.keyboard.press("Control+s")
        # ... so JupyterLab refuses to save it and says so.
        toast = page.locator(".Toastify__toast", has_text="read-only")
        toast.wait_for(timeout=30_000)
        assert 'shared/readme.md is read-only. Use "Save as…" instead.' in toast.inner_text()
        page.locator(".jp-Notification-Status").click()  # the notification list keeps the refusal for the shot
        page.locator(".jp-Notification-Center", has_text="read-only").wait_for(timeout=10_000)
        page.screenshot(path=str(tmp_path / "shared-2-viewer-save-refused.png"))
        # The file is as alice wrote it.
        r = alice.http.get(f"{hub_url}/user/alice/{workspace}/api/contents/shared/readme.md", timeout=30)
        assert "bob" not in r.json()["content"]
    finally:
        page.screenshot(path=str(tmp_path / "shared-last.png"))
        shots = Path("/tmp/agp-browser-shots")
        shots.mkdir(exist_ok=True)
        for png in tmp_path.glob("*.png"):
            shutil.copy(png, shots / png.name)
        for user, api in (("alice", alice), ("bob", bob)):
            api.hub("DELETE", f"/users/{user}/servers/{workspace}")
