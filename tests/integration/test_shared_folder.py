"""The workspace's shared folder in the lab, from real kernels of hub-started servers (each its own OS user).

Workspace A: alice owner, bob viewer; workspace B: admin. alice writes ``shared/`` from her kernel and through the
contents API; bob reads it and is refused writing both ways; admin, whose server serves B, cannot read A's folder
from his kernel; bob's role changes and his removal apply to his running kernel. A member's symlink never leads the
service's ACL walk out of the folder. Needs servers that run as OS users (the lab as root).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
from conftest import remove_workspace
from kernelclient import NotebookKernel

from agp.hub.shared_sync import shared_root
from agp.spawner import shared

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def _os_users(settings):
    if not settings.run_as_os_users:
        pytest.skip("servers do not run as OS users here: the shared folder isolates nothing")


@pytest.fixture(scope="module")
def spaces(admin_api, settings):
    tag = uuid.uuid4().hex[:6]
    a, b = f"t-sh-a-{tag}", f"t-sh-b-{tag}"
    try:
        r = admin_api("POST", "/workspaces", json={"slug": a})
        assert r.status_code == 201, r.text
        for user, role in (("alice", "owner"), ("bob", "viewer")):
            r = admin_api("PUT", f"/workspaces/{a}/members/{user}", json={"role": role})
            assert r.status_code == 200, r.text
        r = admin_api("DELETE", f"/workspaces/{a}/members/admin")  # admin made it; alice owns it now
        assert r.status_code == 200, r.text
        r = admin_api("POST", "/workspaces", json={"slug": b})  # admin its owner
        assert r.status_code == 201, r.text
        yield {"a": a, "b": b, "folder": str(shared_root(settings) / a)}
    finally:
        for slug in (a, b):
            remove_workspace(settings, slug)
            shutil.rmtree(shared_root(settings) / slug, ignore_errors=True)


@pytest.fixture(scope="module")
def kernels(spaces, user_api, hub_url):
    """alice's and bob's kernels in A, admin's in B, each in its own server started through the hub."""
    servers = {"alice": spaces["a"], "bob": spaces["a"], "admin": spaces["b"]}
    apis = {user: user_api(user) for user in servers}
    for user, slug in servers.items():
        r = apis[user].hub("POST", f"/users/{user}/servers/{slug}")
        assert r.status_code in (201, 202), r.text
    out = {}
    try:
        for user, slug in servers.items():
            apis[user].wait_server(user, slug)
            url = f"{hub_url}/user/{user}/{slug}"
            out[user] = NotebookKernel.new_notebook(apis[user].http, url, f"shared-{uuid.uuid4().hex[:6]}.ipynb")
        yield out
    finally:
        for user, slug in servers.items():
            apis[user].hub("DELETE", f"/users/{user}/servers/{slug}")


def run(nb: NotebookKernel, code: str) -> str:
    reply = nb.execute(code)
    assert not reply.errors, reply.errors
    return reply.text.strip()


def attempt(nb: NotebookKernel, code: str) -> str:
    """``ok`` if ``code`` ran, else the name of the exception it raised."""
    return run(nb, f"try:\n    exec({code!r})\n    print('ok')\nexcept Exception as e:\n    print(type(e).__name__)")


def contents(nb: NotebookKernel, method: str, path: str, **kw):
    return nb.http.request(method, f"{nb.server_url}/api/contents/{path}", timeout=30, **kw)


def test_members_see_the_folder_viewers_only_read(spaces, kernels):
    alice, bob = kernels["alice"], kernels["bob"]
    # The server's environment names it, and it is shared/ beside the user's own files.
    assert run(alice, "import os; print(os.environ['AGP_SHARED_DIR'])") == spaces["folder"]
    listing = {e["name"]: e for e in contents(bob, "GET", "").json()["content"]}
    assert listing["shared"]["type"] == "directory"

    assert attempt(alice, "open('shared/from-kernel.txt', 'w').write('alice wrote this')") == "ok"
    r = contents(alice, "PUT", "shared/notes.md", json={"type": "file", "format": "text", "content": "# notes"})
    assert r.status_code == 201, r.text

    r = contents(bob, "GET", "shared/from-kernel.txt")
    assert r.status_code == 200 and r.json()["content"] == "alice wrote this", r.text
    assert r.json()["writable"] is False
    assert run(bob, "print(open('shared/notes.md').read())") == "# notes"

    # bob is a viewer: refused by the OS, from his kernel and through his server's contents API
    assert attempt(bob, "open('shared/notes.md', 'a').write('bob')") == "PermissionError"
    assert attempt(bob, "open('shared/bob.txt', 'w')") == "PermissionError"
    assert attempt(bob, "import os; os.remove('shared/notes.md')") == "PermissionError"
    assert attempt(bob, "import os; os.chmod('shared/notes.md', 0o666)") == "PermissionError"
    r = contents(bob, "PUT", "shared/notes.md", json={"type": "file", "format": "text", "content": "overwritten"})
    assert r.status_code == 403, r.text
    r = contents(bob, "PUT", "shared/new.md", json={"type": "file", "format": "text", "content": "x"})
    assert r.status_code == 403, r.text
    assert contents(alice, "GET", "shared/notes.md").json()["content"] == "# notes"


def test_a_job_reads_the_shared_folder(spaces, kernels, user_api):
    """A script job of alice's runs as her OS user and finds the folder in AGP_SHARED_DIR."""
    from jobsapi import log_of, submit, wait_state

    alice = user_api("alice")
    assert attempt(kernels["alice"], "open('shared/for-the-job.txt', 'w').write('read by a job')") == "ok"
    script = "import os\nprint(open(os.path.join(os.environ['AGP_SHARED_DIR'], 'for-the-job.txt')).read())\n"
    out = submit(alice, spaces["a"], script, kind="script")
    run = wait_state(alice, spaces["a"], out["run"]["id"], {"succeeded", "failed", "cancelled"})
    log = log_of(alice, spaces["a"], run["id"])
    assert run["state"] == "succeeded", (run, log[-2000:])
    assert "read by a job" in log


def test_a_member_of_another_workspace_cannot_reach_it(spaces, kernels):
    admin, folder = kernels["admin"], spaces["folder"]
    assert attempt(admin, f"open({folder + '/from-kernel.txt'!r}).read()") == "PermissionError"
    assert attempt(admin, f"import os; os.listdir({folder!r})") == "PermissionError"
    assert attempt(admin, f"import os; os.listdir({os.path.dirname(folder)!r})") == "PermissionError"  # no names
    # admin's own workspace's folder is his
    assert attempt(admin, "open('shared/admins.txt', 'w').write('b')") == "ok"


def test_role_changes_and_removal_reach_a_running_kernel(spaces, kernels, admin_api):
    bob, a = kernels["bob"], spaces["a"]
    assert attempt(bob, "open('shared/notes.md').read()") == "ok"

    assert admin_api("PUT", f"/workspaces/{a}/members/bob", json={"role": "editor"}).status_code == 200
    assert attempt(bob, "open('shared/bobs.txt', 'w').write('mine'); import os; os.makedirs('shared/bob/d')") == "ok"

    assert admin_api("PUT", f"/workspaces/{a}/members/bob", json={"role": "viewer"}).status_code == 200
    # his own files and folders are no longer his: no owner's chmod puts the write back
    assert attempt(bob, "open('shared/bobs.txt', 'a').write('more')") == "PermissionError"
    assert attempt(bob, "import os; os.chmod('shared/bobs.txt', 0o666)") == "PermissionError"
    assert attempt(bob, "open('shared/bob/d/x', 'w')") == "PermissionError"
    assert attempt(bob, "open('shared/bobs.txt').read()") == "ok"

    # A folder descriptor held open from before the removal does not keep the way in either.
    run(bob, "import os; held = os.open('shared/bob', os.O_RDONLY | os.O_DIRECTORY)")
    assert admin_api("DELETE", f"/workspaces/{a}/members/bob").status_code == 200
    assert attempt(bob, "open('shared/notes.md').read()") == "PermissionError"
    assert attempt(bob, f"import os; os.listdir({spaces['folder']!r})") == "PermissionError"
    assert attempt(bob, "import os; os.open('d', os.O_RDONLY, dir_fd=held)") == "PermissionError"


@pytest.fixture
def public_tmp():
    """A folder other users can reach (pytest's tmp_path is in root's 0700 folder)."""
    path = Path(tempfile.mkdtemp(prefix="agp-shared-test-"))
    os.chmod(path, 0o711)  # noqa: S103 (others pass through, as to a home folder)
    yield path
    shutil.rmtree(path)


def test_the_acl_walk_never_follows_a_members_symlink(public_tmp, kernels):
    """An editor's symlink to a file outside (here a root-only file) gets no ACL put on its target. (``kernels``:
    the demo users' OS accounts exist once their servers started.)"""
    alice = pwd.getpwnam("agp-alice").pw_uid
    bob = pwd.getpwnam("agp-bob").pw_uid
    tmp_path = public_tmp
    root = tmp_path / "shared"
    folder, _ = shared.ensure_folder(root, "w")
    shared.apply(folder, {alice: True})
    secret = tmp_path / "secret"
    secret.write_text("root only")
    os.chmod(secret, 0o600)
    as_alice = ["setpriv", f"--reuid={alice}", f"--regid={alice}", "--clear-groups", "python3", "-c"]
    code = f"import os; os.symlink({str(secret)!r}, {str(folder / 'link')!r}); os.mkdir({str(folder / 'd')!r})"
    subprocess.run([*as_alice, code], check=True)
    assert shared.apply(folder, {alice: True, bob: False}) == 2  # the folder and d; not the link
    assert shared.current(folder) == {alice: 7, bob: 5}
    with pytest.raises(OSError):
        os.getxattr(secret, shared.ACCESS)
    r = subprocess.run(
        ["setpriv", f"--reuid={bob}", f"--regid={bob}", "--clear-groups", "cat", str(folder / "link")],
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0 and "Permission denied" in r.stderr


def test_a_stray_grant_is_undone_at_the_next_sync(public_tmp, kernels, monkeypatch):
    """A spawner that granted bob while bob was being removed: the service's next sync sees the folder's ACL differ
    from the membership and walks it again (before, it compared with what it had applied itself, and bob stayed)."""
    from agp.core.settings import Settings
    from agp.hub import shared_sync

    alice = pwd.getpwnam("agp-alice").pw_uid
    bob = pwd.getpwnam("agp-bob").pw_uid
    folders = shared_sync.SharedFolders(Settings(servers_dir=public_tmp, server_os_users=True))
    assert folders.active
    monkeypatch.setattr(shared_sync, "access", lambda db, hub: {"w": {"alice": True}})
    assert folders.sync(None, None) == ["w"]
    assert folders.sync(None, None) == []  # nothing changed: no walk
    folder = public_tmp / "shared" / "w"
    assert shared.grant(folder, bob, False)
    assert folders.sync(None, None) == ["w"]
    assert shared.current(folder) == {alice: 7}


def test_the_spawner_grants_its_user_and_links_shared_as_that_user(public_tmp):
    """The local spawner's own steps, as the hub runs them for bob (a viewer): his account, his entry in the
    folder's ACL (its first grant), and in the child that becomes bob, the ``shared`` link in his workspace folder."""
    import asyncio
    import types

    from agp.core.names import WorkspaceNames
    from agp.spawner.local import WorkspaceLocalSpawner

    sp = WorkspaceLocalSpawner(shared_root=str(public_tmp / "shared"), home_root=str(public_tmp), run_as_os_users=True)
    sp.user = types.SimpleNamespace(name="bob")
    sp.workspace_names, sp.shared_writable = WorkspaceNames("www"), False
    sp.notebook_dir = str(public_tmp / "agp-bob" / "workspaces" / "www")
    asyncio.run(sp._prepare_account())
    sp._prepare_shared()
    folder = public_tmp / "shared" / "www"
    assert shared.current(folder) == {sp.account.uid: 5}
    assert sp.workspace_environment["AGP_SHARED_DIR"] == str(folder)

    preexec = sp.make_preexec_fn("bob")
    pid = os.fork()
    if pid == 0:  # the server's child: becomes bob, makes its folders and the link
        try:
            preexec()
            os._exit(0)
        except BaseException:
            os._exit(1)
    assert os.waitpid(pid, 0)[1] == 0
    link = Path(sp.notebook_dir) / "shared"
    assert os.readlink(link) == str(folder)
    assert os.lstat(link).st_uid == sp.account.uid  # made by bob, in bob's folder
