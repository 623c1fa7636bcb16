"""Per-user OS accounts for workspace servers on one machine: the name mapping (pure) and the account itself.

Hub user names come from Keycloak and may hold capitals, dots, ``@`` or any Unicode; OS user names may not. A name
that is already a valid OS name becomes ``agp-<name>``; any other becomes ``agp-<sanitized prefix>_<hash>``. The
underscore appears only in hashed names, so a hashed name never equals a plain one, and the hash keeps two hub users
whose sanitized names agree apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import pwd
import re
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

PREFIX = "agp-"
MAX_LENGTH = 32  # useradd's limit on Linux
_PLAIN = re.compile(r"[a-z0-9][a-z0-9-]*")
_HASH_LENGTH = 10  # 40 bits of sha256


@dataclass(frozen=True)
class ServerFolders:
    """Where servers that run as OS users live: one lab's ``root`` (homes 0711, public files 0755) and the shared
    ``runtime_root`` (the venv and the public cache, 0755); all root's, so no user can change what another runs."""

    root: Path
    runtime_root: Path

    homes = property(lambda self: self.root / "homes")
    public = property(lambda self: self.root / "public")
    shared = property(lambda self: self.root / "shared")  # one folder per workspace: agp.spawner.shared
    trino_ca = property(lambda self: self.root / "public" / "trino-ca.pem")
    venv = property(lambda self: self.runtime_root / "venv")
    python = property(lambda self: self.runtime_root / "venv" / "bin" / "python")
    singleuser = property(lambda self: self.runtime_root / "venv" / "bin" / "jupyterhub-singleuser")
    cache = property(lambda self: self.runtime_root / "cache")  # the servers' AGP_CACHE_DIR: Spark's jars


class OsUserError(RuntimeError):
    """The server's OS account or home could not be made; ``str()`` is the sentence shown on the hub's page."""

    def __init__(self, message: str, log_message: str):
        super().__init__(message)
        self.log_message = log_message
        self.jupyterhub_message = message  # what JupyterHub's spawn-failed page shows


def os_user_name(hub_user: str, prefix: str = PREFIX) -> str:
    """The OS user that runs ``hub_user``'s servers: ``agp-alice``, or ``agp-j-doe_3f2a9c01de`` for ``J.Doe@x``."""
    if len(prefix) + len(hub_user) <= MAX_LENGTH and _PLAIN.fullmatch(hub_user):
        return prefix + hub_user
    digest = hashlib.sha256(hub_user.encode()).hexdigest()[:_HASH_LENGTH]
    readable = re.sub(r"[^a-z0-9]+", "-", hub_user.lower()).strip("-")
    room = MAX_LENGTH - len(prefix) - 1 - _HASH_LENGTH
    readable = readable[:room].rstrip("-")
    return f"{prefix}{readable}_{digest}" if readable else f"{prefix}{digest}"


def useradd_command(name: str, home: Path, hub_user: str) -> list[str]:
    """A system account without login, password or created home (the spawner makes the home itself)."""
    comment = "Antigravity workspace servers of " + re.sub(r"[^A-Za-z0-9@._ -]", "?", hub_user)[:64]
    return [
        shutil.which("useradd", path="/usr/sbin:/sbin:/usr/bin:/bin") or "useradd",
        "--system",
        "--no-create-home",
        "--home-dir",
        str(home),
        "--shell",
        "/usr/sbin/nologin",
        "--user-group",
        "--comment",
        comment,
        name,
    ]


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    home: Path


_lock = asyncio.Lock()  # one useradd at a time: two servers of one user may start together


async def ensure_account(hub_user: str, name: str, home: Path) -> Account:
    """The OS account ``name`` (made with useradd if missing) and its home, 0700 and owned by it."""
    async with _lock:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            cmd = useradd_command(name, home, hub_user)
            try:
                proc = await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True)
                failure = f"exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()}" if proc.returncode else ""
            except OSError as e:
                failure = f"could not run: {e}"
            if failure:
                raise OsUserError(
                    "Your server's system account could not be created; ask a platform admin to check the hub's log.",
                    f"{' '.join(cmd)} (for hub user {hub_user!r}) {failure}",
                ) from None
            entry = pwd.getpwnam(name)
    account = Account(name, entry.pw_uid, entry.pw_gid, home)
    if account.uid == 0:
        raise OsUserError(
            "Your server's system account is not usable; ask a platform admin to check the hub's log.",
            f"OS user {name} (for hub user {hub_user!r}) has uid 0; refusing to run a server as root",
        )
    await asyncio.to_thread(make_home, account)
    return account


def make_home(account: Account) -> None:
    """Create the home if missing; an existing one must be a real folder (no symlink), which is made the account's
    and 0700 again. Its parent is root's: only root can have put anything there."""
    home = account.home
    with contextlib.suppress(FileExistsError):
        home.mkdir(mode=0o700)
    info = os.lstat(home)
    if not stat.S_ISDIR(info.st_mode):
        raise OsUserError(
            "Your home folder is not usable; ask a platform admin to check the hub's log.",
            f"home {home} of OS user {account.name} exists and is not a folder",
        )
    if (info.st_uid, info.st_gid) != (account.uid, account.gid):
        os.chown(home, account.uid, account.gid, follow_symlinks=False)
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(home, 0o700)


def server_env(home: Path, runtime: Path, user: str) -> dict[str, str]:
    """What a server running as an OS user gets on top of JupyterHub's variables: its home, Jupyter's folders in
    it, the runtime's programs first on PATH, ``pip install`` into the user's own site, temporary files in the home."""
    tmp = str(home / ".tmp")
    return {
        "HOME": str(home),
        "USER": user,
        "LOGNAME": user,
        "SHELL": "/bin/bash",
        "PATH": f"{runtime / 'bin'}:{home / '.local' / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "VIRTUAL_ENV": str(runtime),
        "JUPYTER_CONFIG_DIR": str(home / ".jupyter"),
        "JUPYTER_DATA_DIR": str(home / ".local" / "share" / "jupyter"),
        "JUPYTER_RUNTIME_DIR": str(home / ".local" / "share" / "jupyter" / "runtime"),
        "IPYTHONDIR": str(home / ".ipython"),
        "PYTHONUSERBASE": str(home / ".local"),
        "PIP_USER": "1",
        "PIP_CACHE_DIR": str(home / ".cache" / "pip"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "TMPDIR": tmp,
        "SPARK_LOCAL_DIRS": tmp,
    }
