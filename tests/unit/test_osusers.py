"""Per-user OS accounts of workspace servers: the name mapping, useradd's command, the server's environment, the
notebook runtime's digests, and the spawner's traitlets with and without OS users."""

from __future__ import annotations

import asyncio
import os
import re
import stat
from pathlib import Path

import pytest

from agp.compose import runtime
from agp.core.settings import Settings
from agp.spawner.local import WorkspaceLocalSpawner
from agp.spawner.osusers import (
    MAX_LENGTH,
    Account,
    OsUserError,
    ServerFolders,
    ensure_account,
    make_home,
    os_user_name,
    server_env,
    useradd_command,
)

DEBIAN_NAME = re.compile(r"[a-z_][-a-z0-9_]*")  # adduser's SYS_NAME_REGEX, without the trailing $


@pytest.mark.parametrize(
    ("hub_user", "expected"),
    [
        ("alice", "agp-alice"),
        ("bob", "agp-bob"),
        ("grid-ops-2", "agp-grid-ops-2"),
        ("1st", "agp-1st"),
        ("x" * 28, "agp-" + "x" * 28),
    ],
)
def test_a_valid_os_name_is_kept_behind_the_prefix(hub_user, expected):
    assert os_user_name(hub_user) == expected


@pytest.mark.parametrize(
    ("hub_user", "readable"),
    [
        ("J.Doe@example.org", "j-doe-example-org"[:17]),
        ("Alice", "alice"),
        ("a_b", "a-b"),
        ("x" * 29, "x" * 17),
        ("élodie", "lodie"),
        ("../../etc", "etc"),
        ("root", None),  # valid: stays agp-root, never "root"
    ],
)
def test_any_other_name_is_sanitized_with_a_hash(hub_user, readable):
    name = os_user_name(hub_user)
    assert DEBIAN_NAME.fullmatch(name) and len(name) <= MAX_LENGTH and name.startswith("agp-")
    if readable is None:
        assert name == f"agp-{hub_user}"
    else:
        assert re.fullmatch(rf"agp-{re.escape(readable)}_[0-9a-f]{{10}}", name), name


def test_a_name_of_no_usable_character_is_the_hash_alone():
    assert re.fullmatch(r"agp-[0-9a-f]{10}", os_user_name("ü@ß"))


def test_names_are_collision_free():
    users = ["alice", "Alice", "ALICE", "a.lice", "a-lice", "a_lice", "alice_", "x" * 28, "x" * 29, "x" * 40]
    # A hub user whose name looks like a hashed one stays plain (no underscore), so the two never meet.
    users.append(os_user_name("Alice").removeprefix("agp-").replace("_", "-"))
    names = [os_user_name(u) for u in users]
    assert len(set(names)) == len(names), names


def test_the_mapping_is_stable():
    assert os_user_name("J.Doe@example.org") == os_user_name("J.Doe@example.org")
    assert os_user_name("alice", prefix="u-") == "u-alice"


def test_useradd_makes_a_system_account_without_login_or_home():
    cmd = useradd_command("agp-alice", Path("/var/lib/agp/x/homes/agp-alice"), "alice")
    assert Path(cmd[0]).name == "useradd"
    assert cmd[1:] == [
        "--system",
        "--no-create-home",
        "--home-dir",
        "/var/lib/agp/x/homes/agp-alice",
        "--shell",
        "/usr/sbin/nologin",
        "--user-group",
        "--comment",
        "Antigravity workspace servers of alice",
        "agp-alice",
    ]


def test_useradd_comment_keeps_only_plain_characters():
    cmd = useradd_command("agp-x_0123456789", Path("/h"), "ev:il\nname,x")
    assert cmd[-2] == "Antigravity workspace servers of ev?il?name?x"


def test_server_env_keeps_everything_of_the_user_in_the_home():
    home, venv = Path("/srv/homes/agp-alice"), Path("/srv/runtime/venv")
    env = server_env(home, venv, "agp-alice")
    assert env["HOME"] == str(home) and env["USER"] == env["LOGNAME"] == "agp-alice"
    assert env["PATH"].split(":")[:2] == ["/srv/runtime/venv/bin", "/srv/homes/agp-alice/.local/bin"]
    assert env["PIP_USER"] == "1" and env["PYTHONUSERBASE"] == "/srv/homes/agp-alice/.local"
    for var in ("JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR", "IPYTHONDIR", "TMPDIR"):
        assert env[var].startswith(str(home) + "/"), var
    assert env["SPARK_LOCAL_DIRS"] == env["TMPDIR"]


def test_server_folders():
    f = ServerFolders(Path("/var/lib/agp/lab-1-servers"), Path("/var/lib/agp/runtime-2"))
    assert f.homes == Path("/var/lib/agp/lab-1-servers/homes")
    assert f.trino_ca == Path("/var/lib/agp/lab-1-servers/public/trino-ca.pem")
    assert f.singleuser == Path("/var/lib/agp/runtime-2/venv/bin/jupyterhub-singleuser")
    assert f.cache == Path("/var/lib/agp/runtime-2/cache")


def test_settings_put_servers_outside_the_lab_and_the_runtime_beside_the_cache(tmp_path):
    a = Settings(lab_dir=tmp_path / "a", cache_dir=tmp_path / "c")
    b = Settings(lab_dir=tmp_path / "b", cache_dir=tmp_path / "c")
    assert a.servers_root != b.servers_root and a.servers_root.parent == Path("/var/lib/agp")
    assert a.server_runtime_root == b.server_runtime_root
    custom = Settings(servers_dir=tmp_path / "s", server_runtime_dir=tmp_path / "r", server_os_users=False)
    assert (custom.servers_root, custom.server_runtime_root) == (tmp_path / "s", tmp_path / "r")
    assert custom.run_as_os_users is False


def test_source_digest_depends_on_paths_and_contents_not_order():
    files = [("a.py", b"1"), ("b/c.py", b"2")]
    assert runtime.source_digest(files) == runtime.source_digest(reversed(files))
    assert runtime.source_digest(files) != runtime.source_digest([("a.py", b"1"), ("b/c.py", b"3")])
    assert runtime.source_digest(files) != runtime.source_digest([("a.py", b"1"), ("b/d.py", b"2")])


def test_requirements_are_the_distributions_dependencies():
    text = '[project]\nname = "x"\ndependencies = ["b>=2", "a[x]>=1"]\n[tool.ruff]\nline-length = 1\n'
    assert runtime.requirements(text) == ["a[x]>=1", "b>=2"]


def test_requirements_include_the_notebook_extra_and_no_other():
    text = (
        '[project]\nname = "x"\ndependencies = ["b>=2"]\n'
        '[project.optional-dependencies]\nnotebook = ["matplotlib>=3"]\ntest = ["pytest"]\n'
    )
    assert runtime.requirements(text) == ["b>=2", "matplotlib>=3"]


def test_the_wheel_is_built_from_the_packages_only():
    files = {rel for rel, _ in runtime.source_files(runtime.source_root())}
    assert "pyproject.toml" in files and "spawner/osusers.py" in files
    assert not any(f.startswith(("tests/", "helm/", "images/")) or "__pycache__" in f for f in files)


def _spawner(**config) -> WorkspaceLocalSpawner:
    class User:
        name = "J.Doe@example.org"

    spawner = WorkspaceLocalSpawner(home_root="/srv/homes", **config)
    spawner.user = User()
    return spawner


def test_spawner_with_os_users_names_the_home_after_the_os_user():
    spawner = _spawner(run_as_os_users=True, runtime_dir="/srv/rt/venv")
    assert spawner.os_user == os_user_name("J.Doe@example.org")
    assert spawner.home_dir == f"/srv/homes/{spawner.os_user}"
    env = spawner.user_env({"PYTHONPATH": "/root/x", "PATH": "/root/.pyenv/shims", "LANG": "C.UTF-8"})
    assert "PYTHONPATH" not in env and env["PATH"].startswith("/srv/rt/venv/bin:") and env["LANG"] == "C.UTF-8"
    assert env["USER"] == spawner.os_user and env["HOME"] == spawner.home_dir


def test_spawner_without_os_users_keeps_the_hub_users_name():
    spawner = _spawner(run_as_os_users=False)
    assert spawner.home_dir == "/srv/homes/J.Doe@example.org"
    env = spawner.user_env({})
    assert env == {"USER": "J.Doe@example.org", "HOME": "/srv/homes/J.Doe@example.org", "SHELL": "/bin/bash"}


def test_a_useradd_failure_is_one_sentence_for_the_user_and_the_details_for_the_log(tmp_path):
    # The real useradd, refusing a name it cannot take (as root) or any change at all (as another user).
    with pytest.raises(OsUserError) as failed:
        asyncio.run(ensure_account("alice", "bad name!", tmp_path / "home"))
    e = failed.value
    assert str(e) == e.jupyterhub_message
    assert str(e) == "Your server's system account could not be created; ask a platform admin to check the hub's log."
    assert "useradd" in e.log_message and "bad name!" in e.log_message and "'alice'" in e.log_message
    assert "exited" in e.log_message or "could not run" in e.log_message
    assert not (tmp_path / "home").exists()


def test_a_home_that_is_a_symlink_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "home").symlink_to(tmp_path / "elsewhere")
    account = Account("agp-x", os.getuid(), os.getgid(), tmp_path / "home")
    with pytest.raises(OsUserError, match="home folder is not usable") as failed:
        make_home(account)
    assert "is not a folder" in failed.value.log_message


def test_a_home_is_made_private_again(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    make_home(Account("agp-x", os.getuid(), os.getgid(), home))
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    make_home(Account("agp-x", os.getuid(), os.getgid(), tmp_path / "new"))
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700


def test_a_missing_runtime_is_one_sentence_for_the_user_and_the_fix_in_the_log(tmp_path, caplog):
    if os.geteuid() != 0:
        pytest.skip("the check that the hub is root comes first")
    spawner = _spawner(run_as_os_users=True, cmd=[str(tmp_path / "venv" / "bin" / "jupyterhub-singleuser")])
    with pytest.raises(OsUserError) as failed:
        asyncio.run(spawner._prepare_account())
    assert str(failed.value) == "Servers cannot start here; ask a platform admin to check the hub's log."
    assert "the notebook runtime is not built (`agp lab up`)" in caplog.text
