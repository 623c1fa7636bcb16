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
