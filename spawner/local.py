"""The lab's flavour: one local process per (user, workspace), each user with a home folder of their own."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from jupyterhub.spawner import SimpleLocalProcessSpawner
from jupyterhub.utils import url_path_join
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload
from tornado import web
from tornado.httpclient import AsyncHTTPClient
from traitlets import Dict, Float, Unicode, default
from traitlets.config import LoggingConfigurable

from agp.extension import enable_for as enable_extension
from agp.hub.db import shared_engine
from agp.hub.models import Workspace
from agp.hub.permissions import Caller
from agp.kernels import kernelspec

from .workspace import SpawnRefused, check_spawn, workspace_env


class WorkspaceMixin(LoggingConfigurable):
    """Membership and state checked at spawn; the workspace's endpoints handed to the server."""

    db_url = Unicode(config=True, help="SQLAlchemy URL of the workspace database (the service's, read-only here).")
    data_plane_env = Dict(config=True, help="Endpoints every workspace server gets; see agp.spawner.data_plane_env.")

    def _lookup(self, slug: str) -> Workspace | None:
        with Session(shared_engine(self.db_url)) as db:
            return db.scalars(
                select(Workspace).where(Workspace.slug == slug).options(selectinload(Workspace.members))
            ).first()

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


class WorkspaceLocalSpawner(WorkspaceMixin, SimpleLocalProcessSpawner):
    """Runs JupyterLab for (user, workspace) as a local process; for one machine (the lab), not for production."""

    home_root = Unicode(config=True, help="Folder that holds one home folder per user.")
    ready_poll_interval = Float(
        0.05,
        config=True,
        help="""Seconds between checks, in start(), that the new server answers (as JupyterHub checks: any
        non-5xx answer at ``<base_url>api``). JupyterHub's own check after start() backs off up to 5 s at random,
        so a server that is up after 2.5 s was often noticed 0.5 to 4 s late. start() gives up after
        ``http_timeout`` seconds with JupyterHub's own timeout message. 0 leaves all the waiting to JupyterHub.""",
    )
    workspace_environment: dict[str, str] = {}

    @default("home_dir")
    def _home_dir(self) -> str:
        return str(Path(self.home_root) / self.user.name)

    @default("default_url")
    def _default_url(self) -> str:
        return "/lab"

    async def start(self):
        await self.check_workspace()
        notebook_dir = Path(self.home_dir) / "workspaces" / self.name
        notebook_dir.mkdir(parents=True, exist_ok=True)
        self.notebook_dir = str(notebook_dir)
        if os.geteuid() == 0 and "--allow-root" not in self.args:
            self.args = [*self.args, "--allow-root"]
        # The Antigravity kernel, installed into the user's Jupyter data folder and made the default.
        kernelspec.install(Path(self.home_dir) / ".local" / "share" / "jupyter")
        enable_extension(Path(self.home_dir))
        default = f"--MappingKernelManager.default_kernel_name={kernelspec.NAME}"
        if default not in self.args:
            self.args = [*self.args, default]
        ip, port = await super().start()
        if self.ready_poll_interval > 0 and not self.internal_ssl:
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

    def get_env(self) -> dict[str, str]:
        env = super().get_env()
        env.update(self.workspace_environment)
        env["HOME"] = self.home_dir
        return env
