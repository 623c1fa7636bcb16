"""Attacks on the workbench's new doors (issue 12), each as a hostile member or notebook would try them.

The shared folder's ACL walk runs as root over what members made (the workspace service's :func:`shared.apply`);
here it runs on a folder of the real OS users ``agp-alice``/``agp-bob`` exactly as the service calls it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import stat
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from agp.spawner import shared

pytestmark = pytest.mark.integration


def _os_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pytest.skip(f"no OS user {name} (servers do not run as OS users here)")


def _as(user: pwd.struct_passwd, *argv: str) -> subprocess.CompletedProcess:
    cmd = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", *argv]
    return subprocess.run(cmd, capture_output=True, text=True)


@pytest.fixture
def folder():
    if os.geteuid() != 0:
        pytest.skip("the ACL walk runs as root")
    top = Path(tempfile.mkdtemp(prefix="agp-attack-"))
    os.chmod(top, 0o711)  # noqa: S103 (others pass through, as to the lab's shared root)
    path, _ = shared.ensure_folder(top / "shared", "w")
    yield path
    subprocess.run(["rm", "-rf", str(top)], check=True)  # shutil.rmtree recurses: too deep for it


NEST = """
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
for _ in range(int(sys.argv[2])):
    os.mkdir("d", dir_fd=fd)
    fd = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
"""


def test_a_deep_tree_does_not_keep_a_demoted_editors_write(folder):
    """An editor nests folders deeper than Python's recursion limit, then is made viewer: the walk used to end in
    RecursionError half-way, every time, and he kept ``rwx`` (and ownership) below; he must not write anywhere."""
    bob = _os_user("agp-bob")
    shared.apply(folder, {bob.pw_uid: True})
    assert _as(bob, "python3", "-c", NEST, str(folder), "1200").returncode == 0
    with contextlib.suppress(Exception):  # as the service: a failed walk is logged and tried again later
        shared.apply(folder, {bob.pw_uid: False})
    script = f"cd {folder} && while cd d 2>/dev/null; do :; done; touch x && echo wrote"
    r = _as(bob, "sh", "-c", script)
    assert "wrote" not in r.stdout, "a viewer wrote in the shared folder"
    r = _as(bob, "sh", "-c", f"cd {folder} && touch x && echo wrote")
    assert "wrote" not in r.stdout


def test_a_setuid_file_of_a_demoted_editor_is_no_root_setuid(folder):
    """The walk gives a demoted editor's files to root: a setuid program he left there must not become root's."""
    bob = _os_user("agp-bob")
    shared.apply(folder, {bob.pw_uid: True})
    prog = folder / "prog"
    assert _as(bob, "sh", "-c", f"cp /bin/true {prog} && chmod 6755 {prog}").returncode == 0
    shared.apply(folder, {bob.pw_uid: False})
    info = os.lstat(prog)
    assert info.st_uid == 0
    assert not info.st_mode & (stat.S_ISUID | stat.S_ISGID)


# -- query history


@pytest.fixture(scope="module")
def bobs_space(admin_api, user_api, hub_url, settings):
    """Workspace B with bob as editor and a table ``t`` of his; his broker client in B."""
    from conftest import query_rows, remove_workspace, wait_until

    from agp.kernels.credentials import BrokerClient, trino_connect

    b = f"t-atk-b-{uuid.uuid4().hex[:6]}"
    try:
        assert admin_api("POST", "/workspaces", json={"slug": b}).status_code == 201
        assert admin_api("PUT", f"/workspaces/{b}/members/bob", json={"role": "editor"}).status_code == 200
        token = user_api("bob").http.headers["Authorization"].split()[1]
        bob = BrokerClient(f"{hub_url}/services/workspaces", token, b)
        sb = b.replace("-", "_")
        wait_until(lambda: query_rows(trino_connect(bob), f'CREATE TABLE "{sb}".t AS SELECT 42 AS secret'), 60)
        yield {"b": b, "sb": sb, "bob": bob}
    finally:
        remove_workspace(settings, b)


def _entry(api, slug: str, query_id: str) -> dict:
    from conftest import wait_until

    def ended() -> dict:
        r = api("GET", f"/workspaces/{slug}/queries/{query_id}")
        assert r.status_code == 200, r.text
        assert r.json()["state"] in ("FINISHED", "FAILED")
        return r.json()

    return wait_until(ended, 60)


def test_a_prepared_statement_does_not_hide_its_text_from_the_workspace(bobs_space, user_api):
    """bob runs his SELECT as a prepared statement outside any session schema: his workspace's history must show
    the statement, not only ``EXECUTE st_… USING 1``."""
    from agp.kernels.credentials import trino_connect

    conn = trino_connect(bobs_space["bob"], catalog="system", schema="runtime", legacy_prepared_statements=True)
    cur = conn.cursor()
    cur.execute(f'SELECT secret FROM iceberg."{bobs_space["sb"]}".t WHERE secret > ?', params=(1,))
    assert cur.fetchall() == [[42]]
    entry = _entry(user_api("bob"), bobs_space["b"], cur.query_id)
    text = " ".join(entry["query"].split())  # Trino keeps the prepared statement as it formats it
    assert text.startswith(f'SELECT secret FROM iceberg."{bobs_space["sb"]}".t WHERE (secret > ?)'), text


# -- workspace members


def test_two_owners_demoted_at_once_leave_one_owner(admin_api, settings):
    """The last-owner rule counted owners from a read taken without a lock: while one change (here an open
    transaction demoting alice) was in flight, a second demotion of the other owner saw two owners and went
    through, leaving the workspace with none. The second must wait for the first and then be refused."""
    import threading

    from conftest import remove_workspace
    from sqlalchemy import select, text, update
    from sqlalchemy.orm import Session

    from agp.core.models import Membership, Role, Workspace
    from agp.core.permissions import Caller
    from agp.hub import db as hubdb
    from agp.hub import store

    slug = f"t-atk-own-{uuid.uuid4().hex[:6]}"
    engine = hubdb.make_engine(settings.db_url)
    try:
        assert admin_api("POST", "/workspaces", json={"slug": slug}).status_code == 201
        for user in ("alice", "bob"):
            assert admin_api("PUT", f"/workspaces/{slug}/members/{user}", json={"role": "owner"}).status_code == 200
        assert admin_api("DELETE", f"/workspaces/{slug}/members/admin").status_code == 200
        with Session(engine) as first:
            ws_id = first.scalar(select(Workspace.id).where(Workspace.slug == slug))
            first.execute(select(Workspace.id).where(Workspace.id == ws_id).with_for_update())  # as a change does
            first.execute(
                update(Membership)
                .where(Membership.workspace_id == ws_id, Membership.username == "alice")
                .values(role=Role.editor)
            )
            outcome: dict = {}

            def second() -> None:
                with Session(engine) as db:
                    outcome["pid"] = db.scalar(text("SELECT pg_backend_pid()"))
                    started.set()
                    try:
                        store.set_member(db, Caller(name="admin", admin=True), slug, "bob", "editor")
                        outcome["result"] = "changed"
                    except store.Refused as e:
                        outcome["result"] = e.status

            worker = threading.Thread(target=second)
            started = threading.Event()
            worker.start()
            started.wait()
            # The second change either ends on its own (no lock taken) or waits for the first one's lock.
            waiting = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid AND wait_event_type = 'Lock'")
            with engine.connect() as watch:
                while worker.is_alive():
                    seen = watch.execute(waiting, {"pid": outcome["pid"]}).scalar()
                    watch.rollback()  # pg_stat_activity is read once per transaction
                    if seen:
                        break
                    worker.join(0.05)
            first.commit()
        worker.join()
        with Session(engine) as db:
            owners = db.scalars(
                select(Membership.username).join(Workspace).where(Workspace.slug == slug, Membership.role == Role.owner)
            ).all()
        assert owners == ["bob"], f"owners left: {owners} (second change: {outcome})"
        assert outcome["result"] == 409
    finally:
        engine.dispose()
        remove_workspace(settings, slug)
