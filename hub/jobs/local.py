"""The lab's executor: one runner process per attempt on the service's machine, as the owner's OS user when servers
run as OS users (the same account, home and read-only runtime as the owner's servers).

Every process of an attempt carries ``AGP_JOB_RUN=<tag>`` in its environment (the runner, the kernel it starts,
the kernel's Spark JVM): jupyter_client starts each kernel in a session of its own, so a process group does not
hold them all, and cancel finds them by the tag instead. The log and the result are files of the service's own
folder, opened by the service and handed to the runner as open descriptors: a runner cannot point them elsewhere
(a symlink in a folder it owns would have made the service read any file for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from agp.core.settings import Settings
from agp.hub.shared_sync import shared_root
from agp.spawner.osusers import OsUserError, ServerFolders, ensure_account, os_user_name, server_env

from .executor import RESULT_LIMIT, ExecutorError, Outcome, RunSpec, parse_result

log = logging.getLogger(__name__)
TAG_VARIABLE = "AGP_JOB_RUN"


class LocalExecutor:
    name = "local"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.run_as_os_users = settings.run_as_os_users
        self.folders = ServerFolders(settings.servers_root, settings.server_runtime_root)
        self.dir = settings.lab_dir / "jobs"
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        self._procs: dict[str, subprocess.Popen] = {}  # the runners this process started, to reap them
        # Called (from a thread) when a runner exits, so that the scheduler notices at once, not at its next round.
        self.notify: Callable[[], None] | None = None

    # -- start
    async def start(self, spec: RunSpec) -> str:
        if self.run_as_os_users:
            os_user = os_user_name(spec.owner)
            try:
                account = await ensure_account(spec.owner, os_user, self.folders.homes / os_user)
            except OsUserError as e:
                raise ExecutorError("The run's system account could not be prepared.", e.log_message) from e
            home, python, uid = account.home, str(self.folders.python), account.uid
            base = server_env(home, self.folders.venv, os_user)
            base["AGP_CACHE_DIR"] = str(self.folders.cache)
            user: str | None = os_user
        else:
            home = self.settings.lab_dir / "homes" / spec.owner
            home.mkdir(parents=True, exist_ok=True)
            python, user, uid = sys.executable, None, os.getuid()
            base = {
                "HOME": str(home),
                "USER": spec.owner,
                "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
                "JUPYTER_DATA_DIR": str(home / ".local" / "share" / "jupyter"),
                "AGP_CACHE_DIR": str(self.settings.cache_dir),
            }
        log_path, result_path = self.dir / f"{spec.tag}.log", self.dir / f"{spec.tag}.result"
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        log_fd = os.open(log_path, flags, 0o600)
        result_fd = os.open(result_path, flags, 0o600)
        try:
            # The result file goes to the runner as an open descriptor (pass_fds keeps its number).
            env = {**base, **spec.runner_env(f"/dev/fd/{result_fd}"), "AGP_JOB_HOME": str(home)}
            # The workspace's shared folder, as the owner's servers see it (its ACL lets the owner's OS user in).
            env["AGP_SHARED_DIR"] = str(shared_root(self.settings) / spec.environment.get("AGP_WORKSPACE", ""))
            env["PYTHONUNBUFFERED"] = "1"
            proc = await asyncio.to_thread(
                subprocess.Popen,
                [python, "-m", "agp.kernels.jobrun"],
                env=env,
                cwd=home,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=subprocess.STDOUT,
                pass_fds=(result_fd,),
                start_new_session=True,
                user=user,
                group=user,
                extra_groups=[] if user else None,
                umask=0o077,
            )
        except OSError as e:
            raise ExecutorError("The runner could not be started.", f"{spec.tag}: {e}") from e
        finally:
            os.close(log_fd)
            os.close(result_fd)
        self._procs[spec.tag] = proc
        threading.Thread(target=self._wait_exit, args=(proc,), name=f"wait-{spec.tag}", daemon=True).start()
        started = psutil.Process(proc.pid).create_time()
        log.info("job run %s: runner pid %s as %s", spec.tag, proc.pid, user or "the service's user")
        return json.dumps(
            {
                "pid": proc.pid,
                "created": started,
                "tag": spec.tag,
                "uid": uid,
                "log": str(log_path),
                "result": str(result_path),
            }
        )

    def _wait_exit(self, proc: subprocess.Popen) -> None:
        proc.wait()
        if self.notify is not None:
            self.notify()

    # -- poll
    async def poll(self, ref: str) -> Outcome | None:
        r = json.loads(ref)
        proc = self._procs.get(r["tag"])
        if proc is not None:
            code = proc.poll()
            if code is None:
                return None
            self._procs.pop(r["tag"], None)
        else:
            if _alive(r["pid"], r["created"]):
                return None  # a runner a previous service started: it runs on
            code = None
        # Whatever of the attempt is left (a kernel whose runner was killed) goes with it.
        await asyncio.to_thread(kill_tagged, r["tag"], signal.SIGKILL, uid=r.get("uid"))
        try:
            with open(r["result"], "rb") as f:
                text = f.read(RESULT_LIMIT)
        except OSError:
            text = b""
        return parse_result(text, code)

    # -- cancel
    async def cancel(self, ref: str, grace: float) -> None:
        r = json.loads(ref)
        tag, uid = r["tag"], r.get("uid")
        # First as a user's ^C: the kernel interrupts its cell (a %sql query is cancelled in Trino, Spark cancels its
        # jobs), then the runner is asked to stop, then whatever is left is killed.
        await asyncio.to_thread(kill_tagged, tag, signal.SIGINT, kernels_only=True, uid=uid)
        deadline = time.monotonic() + grace
        await _wait_gone(tag, min(grace, 3.0), uid)
        await asyncio.to_thread(kill_tagged, tag, signal.SIGTERM, uid=uid)
        await _wait_gone(tag, max(0.0, deadline - time.monotonic()), uid)
        await asyncio.to_thread(kill_tagged, tag, signal.SIGKILL, uid=uid)

    async def log(self, ref: str, offset: int = 0, limit: int = 1 << 20) -> bytes:
        r = json.loads(ref)
        try:
            with open(r["log"], "rb") as f:
                f.seek(max(0, offset))
                return f.read(limit)
        except OSError:
            return b""

    async def cleanup(self, ref: str) -> None:
        r = json.loads(ref)
        for key in ("log", "result"):
            with contextlib.suppress(OSError):
                os.unlink(r[key])


def _alive(pid: int, created: float) -> bool:
    try:
        p = psutil.Process(pid)
        return abs(p.create_time() - created) < 0.01 and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def tagged(tag: str, kernels_only: bool = False, uid: int | None = None) -> list[psutil.Process]:
    """Every process of OS user ``uid`` (its real uid) whose environment has ``AGP_JOB_RUN=<tag>`` (the service runs
    as root in the lab: it reads every process's environment)."""
    found = []
    for p in psutil.process_iter():
        try:
            # Any process may carry any tag (it is only an environment variable): the service, as root, signals only
            # what the run's own OS user could signal itself, never a process of root's or of another user's that
            # carries it (``uid`` is None for runs started before runners' uids were recorded).
            if uid is not None and p.uids().real != uid:
                continue
            if p.environ().get(TAG_VARIABLE) != tag:
                continue
            if kernels_only and "ipykernel_launcher" not in " ".join(p.cmdline()):
                continue
            found.append(p)
        except psutil.Error:
            continue
    return found


def kill_tagged(tag: str, sig: int, kernels_only: bool = False, uid: int | None = None) -> int:
    """Send ``sig`` to every process of the attempt ``tag`` (of OS user ``uid``); returns how many were signalled."""
    n = 0
    for p in tagged(tag, kernels_only, uid):
        with contextlib.suppress(psutil.Error):
            p.send_signal(sig)
            n += 1
    if n:
        log.info("job run %s: %s sent to %d process(es)", tag, signal.Signals(sig).name, n)
    return n


async def _wait_gone(tag: str, seconds: float, uid: int | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not await asyncio.to_thread(tagged, tag, False, uid):
            return
        await asyncio.sleep(0.2)
