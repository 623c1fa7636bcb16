"""The lab's flavour: one local process per (user, workspace), each user with a home folder of their own.

When the hub runs as root (the lab's default), each hub user's servers run as an unprivileged OS user of their own
(``agp-<name>``, see :mod:`agp.spawner.osusers`) from a read-only runtime, in a home only that user can read.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner, set_user_setuid
from jupyterhub.utils import url_path_join
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload
from tornado import web
from tornado.httpclient import AsyncHTTPClient
from traitlets import Bool, Dict, Float, Unicode, default
from traitlets.config import LoggingConfigurable

from agp.core.db import shared_engine
from agp.core.models import Role, State, Workspace
from agp.core.permissions import Caller, effective_role
from agp.extension import enable_for as enable_extension
from agp.kernels import kernelspec

from . import shared
from .osusers import OsUserError, ensure_account, os_user_name, server_env
from .workspace import SpawnRefused, check_spawn, workspace_env

# New notebooks open on the Antigravity kernel (installed beside the plain one), whichever spawner starts the server.
DEFAULT_KERNEL = f"--MappingKernelManager.default_kernel_name={kernelspec.NAME}"


def kernel_list_args(plain_python_kernel: bool = False) -> list[str]:
    """What a server offers in JupyterLab's launcher and kernel picker (pure): only the Antigravity kernel, unless
    the plain "Python 3" kernel (ipykernel's own spec, installed with it) is wanted too."""
    return [] if plain_python_kernel else [f"--KernelSpecManager.allowed_kernelspecs={kernelspec.NAME}"]


class WorkspaceMixin(LoggingConfigurable):
    """Membership and state checked at spawn; the workspace's endpoints handed to the server."""

    db_url = Unicode(config=True, help="SQLAlchemy URL of the workspace database (the service's, read-only here).")
    data_plane_env = Dict(config=True, help="Endpoints every workspace server gets; see agp.spawner.data_plane_env.")

    def _lookup(self, slug: str) -> Workspace | None:
        with Session(shared_engine(self.db_url)) as db:
            return db.scalars(
                select(Workspace).where(Workspace.slug == slug).options(selectinload(Workspace.members))
            ).first()

    plain_python_kernel = Bool(
        False,
        config=True,
        help="""Offer ipykernel's plain "Python 3" kernel (no ``%sql``, no workspace helpers) beside the Antigravity
        kernel in JupyterLab's launcher and kernel picker. Default: off, only the Antigravity kernel is offered
        (jupyter_server's ``KernelSpecManager.allowed_kernelspecs``).""",
    )

    def get_args(self) -> list[str]:
        return [*super().get_args(), *kernel_list_args(self.plain_python_kernel)]  # type: ignore[misc]

    def add_args(self, *args: str) -> None:
        """Append those of the server's command-line ``args`` it does not have yet."""
        self.args = [*self.args, *(a for a in args if a not in self.args)]

    async def check_workspace(self) -> None:
        caller = Caller(self.user.name, bool(self.user.admin), frozenset(g.name for g in self.user.groups))
        ws = await asyncio.to_thread(self._lookup, self.name) if self.name else None
        try:
            names = check_spawn(self.name, ws, caller)
        except SpawnRefused as e:
            self.log.warning("refused server %r for %s: %s", self.name, self.user.name, e)
            err = web.HTTPError(403, str(e), reason="Forbidden")
            err.jupyterhub_message = str(e)
            raise err from None
        self.workspace, self.workspace_names = ws, names
        self.workspace_environment = workspace_env(self.data_plane_env, names, ws)
        # What the server may do in the workspace's shared folder (on every flavour: the folder's ACL, the mount)
        self.shared_writable = State(ws.state) == State.ready and effective_role(ws, caller) in (
            Role.owner,
            Role.editor,
        )


class WorkspaceLocalSpawner(WorkspaceMixin, LocalProcessSpawner):
    """Runs JupyterLab for (user, workspace) as a local process; for one machine (the lab), not for production."""

    home_root = Unicode(
        config=True,
        help="""Folder that holds one home folder per user. With ``run_as_os_users`` it must be root's and
        reachable by every user (0711): homes are named after the OS users and made 0700, each its user's.""",
    )
    home_dir = Unicode(help="This user's home folder: ``home_root``/<OS user name, or hub user name when off>.")
    run_as_os_users = Bool(
        config=True,
        help="""Run each hub user's servers as an unprivileged OS user of their own, made on first spawn with
        ``useradd --system`` and named by :func:`agp.spawner.osusers.os_user_name` (``agp-alice``; names that are
        not valid OS names get a hash suffix). Needs the hub to run as root, and ``cmd`` and ``runtime_dir`` to
        point at a Python environment that every user can read (the lab builds one). Default: on when the hub runs
        as root. Off runs every server as the hub's own OS user, which isolates nothing.""",
    )
    os_user_prefix = Unicode(
        "agp-", config=True, help="Prefix of the OS user names made for hub users (with ``run_as_os_users``)."
    )
    runtime_dir = Unicode(
        "",
        config=True,
        help="""The Python environment (a venv) that servers run from with ``run_as_os_users``: its ``bin`` leads
        their PATH and it holds the kernel spec. Empty: PATH gets the system folders only.""",
    )
    shared_root = Unicode(
        "",
        config=True,
        help="""Folder that holds one shared folder per workspace (see :mod:`agp.spawner.shared`); each server
        sees its workspace's as ``shared/`` beside its own files. With ``run_as_os_users`` it must be root's: the
        workspace's folder carries an ACL of its members' OS users. Empty: no shared folder.""",
    )
    shared_dir = ""
    ready_poll_interval = Float(
        0.05,
        config=True,
        help="""Seconds between checks, in start(), that the new server answers (as JupyterHub checks: any
        non-5xx answer at ``<base_url>api``). JupyterHub's own check after start() backs off up to 5 s at random,
        so a server that is up after 2.5 s was often noticed 0.5 to 4 s late. start() gives up after
        ``http_timeout`` seconds with JupyterHub's own timeout message. 0 leaves all the waiting to JupyterHub.""",
    )
    workspace_environment: dict[str, str] = {}

    @default("run_as_os_users")
    def _run_as_os_users(self) -> bool:
        return os.geteuid() == 0

    @property
    def os_user(self) -> str:
        """The OS user this hub user's servers run as (with ``run_as_os_users``)."""
        return os_user_name(self.user.name, self.os_user_prefix)

    @default("home_dir")
    def _home_dir(self) -> str:
        return str(Path(self.home_root) / (self.os_user if self.run_as_os_users else self.user.name))

    @default("default_url")
    def _default_url(self) -> str:
        return "/lab"

    # -- start progress: what start() is doing, as JupyterHub's spawn-pending page and the home page show it
    def _phase(self, progress: int, message: str) -> None:
        self._phases.append({"progress": progress, "message": message})
        self._phase_added.set()
        self._phase_added.clear()  # waiters already woken keep their wake-up

    async def progress(self):
        """Every phase of the start in progress, from the first (a late subscriber sees them all), then each new one
        as it happens; JupyterHub ends this generator when start() returns."""
        self.__dict__.setdefault("_phases", [])
        self.__dict__.setdefault("_phase_added", asyncio.Event())
        seen = 0
        while True:
            while seen < len(self._phases):
                yield self._phases[seen]
                seen += 1
            await self._phase_added.wait()

    async def start(self):
        self._phases = []
        self.__dict__.setdefault("_phase_added", asyncio.Event())
        self._phase(5, f"Checking your membership of workspace {self.name}")
        await self.check_workspace()
        notebook_dir = Path(self.home_dir) / "workspaces" / self.name
        self.notebook_dir = str(notebook_dir)
        if self.run_as_os_users:
            self._phase(15, f"Preparing OS user {self.os_user} and its home folder")
            await self._prepare_account()
        if self.shared_root:
            await asyncio.to_thread(self._prepare_shared)
            # Kernels talk to their server over unix sockets in the user's own 0700 folder, not loopback TCP: any
            # local user could subscribe to a kernel's IOPub port (the HMAC key signs, it does not hide) and read
            # every output and input of another user's notebook. The path stays under the 107 bytes a socket
            # path may have: the home is short, and OS user names are at most 32 characters.
            self.add_args("--KernelManager.transport=ipc", f"--KernelManager.ip={self.home_dir}/.k/k")
        else:
            self._phase(15, f"Preparing the home folder of {self.user.name}")
            notebook_dir.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                self.add_args("--allow-root")
            # The Antigravity kernel, installed into the user's Jupyter data folder. (Servers that run as OS users
            # find it in the runtime, with the extension's config: root writes nothing into a user's home.)
            kernelspec.install(Path(self.home_dir) / ".local" / "share" / "jupyter")
            enable_extension(Path(self.home_dir))
        self.add_args(DEFAULT_KERNEL)
        self._phase(30, "Handing the server its workspace settings and a token of its own")
        ip, port = await super().start()
        self._phase(50, f"Server process started (pid {self.pid})")
        if self.ready_poll_interval > 0 and not self.internal_ssl:
            self._phase(60, "Waiting for JupyterLab to answer")
            host = f"[{ip}]" if ":" in ip else ip
            await self._wait_answering(f"http://{host}:{port}" + url_path_join(self.server.base_url, "api"))
        return ip, port

    async def _wait_answering(self, url: str) -> None:
        """Return once ``url`` answers below 500 or the process has exited (JupyterHub's check then reports it)."""
        client, deadline = AsyncHTTPClient(force_instance=True), time.monotonic() + self.http_timeout
        try:
            while self.proc is not None and self.proc.poll() is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.log.warning("server %s never answered at %s in %s s", self._log_name, url, self.http_timeout)
                    raise TimeoutError(f"Server at {url} didn't respond in {self.http_timeout} seconds")
                try:
                    r = await client.fetch(url, raise_error=False, follow_redirects=False, request_timeout=remaining)
                    if r.code < 500:
                        return
                except Exception as e:  # not listening yet, or a failed request: try again, as JupyterHub does
                    self.log.debug("server %s not answering yet at %s: %s", self._log_name, url, e)
                await asyncio.sleep(self.ready_poll_interval)
        finally:
            client.close()

    async def _prepare_account(self) -> None:
        """The OS user and its home (made if missing); a failure is one sentence for the user, details in the log."""
        try:
            self._check_os_users()
            self.account = await ensure_account(self.user.name, self.os_user, Path(self.home_dir))
        except OsUserError as e:
            self.log.error("server %s of %s: %s", self._log_name, self.user.name, e.log_message)
            raise
        self.log.info("server %s runs as OS user %s (uid %s)", self._log_name, self.os_user, self.account.uid)

    def _prepare_shared(self) -> None:
        """The workspace's shared folder, with this user's entry in its ACL if the workspace service has not put it
        there yet (an OS account made just now); the server finds it in AGP_SHARED_DIR."""
        folder, _ = shared.ensure_folder(Path(self.shared_root), self.workspace_names.slug)
        if self.run_as_os_users and shared.grant(folder, self.account.uid, self.shared_writable):
            self.log.info(
                "shared folder %s: granted OS user %s (writes: %s)", folder, self.os_user, self.shared_writable
            )
        self.shared_dir = str(folder)
        self.workspace_environment = {**self.workspace_environment, "AGP_SHARED_DIR": self.shared_dir}

    def _check_os_users(self) -> None:
        sentence = "Servers cannot start here; ask a platform admin to check the hub's log."
        if os.geteuid() != 0:
            raise OsUserError(sentence, "run_as_os_users needs the hub to run as root (or turn run_as_os_users off)")
        if self.internal_ssl:
            raise OsUserError(sentence, "run_as_os_users does not support JupyterHub's internal_ssl; turn one off")
        if self.cmd and os.path.isabs(self.cmd[0]) and not os.path.exists(self.cmd[0]):
            raise OsUserError(sentence, f"{self.cmd[0]} is missing: the notebook runtime is not built (`agp lab up`)")

    def make_preexec_fn(self, name: str):
        """Off: make the home and enter it, as SimpleLocalProcessSpawner does. On: become the OS user (groups, gid,
        uid), then make the folders the server needs in the home as that user, and enter the home."""
        home = self.home_dir
        link = (os.path.join(self.notebook_dir, shared.LINK_NAME), self.shared_dir) if self.shared_dir else None
        if not self.run_as_os_users:

            def preexec() -> None:
                os.makedirs(home, 0o755, exist_ok=True)
                if link:
                    shared.link(*link)
                os.chdir(home)

            return preexec
        become = set_user_setuid(self.os_user, chdir=False)
        folders = [self.notebook_dir, os.path.join(home, ".tmp"), os.path.join(home, ".k")]
        # The user's site exists before Python starts, so that what `%pip install` puts there imports at once.
        for lib in sorted(Path(self.runtime_dir).glob("lib/python3.*")) if self.runtime_dir else []:
            folders.append(os.path.join(home, ".local", "lib", lib.name, "site-packages"))

        def preexec_as_user() -> None:
            become()
            os.umask(0o077)
            for folder in folders:
                os.makedirs(folder, 0o700, exist_ok=True)
            if link:  # made as the user, in the user's folder: root follows no path a user controls
                shared.link(*link)
            os.chdir(home)

        return preexec_as_user

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        if not self.run_as_os_users:
            env.update(USER=self.user.name, HOME=self.home_dir, SHELL="/bin/bash")
            return env
        for inherited in ("PYTHONPATH", "CONDA_DEFAULT_ENV", "CONDA_ROOT", "LD_LIBRARY_PATH"):
            env.pop(inherited, None)  # the hub's own environment is not the runtime's
        env.update(server_env(Path(self.home_dir), Path(self.runtime_dir or "/usr"), self.os_user))
        return env

    async def move_certs(self, paths: dict) -> dict:
        return paths  # internal_ssl is refused with run_as_os_users, and needs nothing moved without

    def get_env(self) -> dict[str, str]:
        env = super().get_env()
        env.update(self.workspace_environment)
        return env
