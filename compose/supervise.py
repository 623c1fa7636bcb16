"""A thin client of the lab's supervisord: start it, start and inspect programs, shut it all down."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
import xmlrpc.client
from pathlib import Path

import psutil
from supervisor.xmlrpc import SupervisorTransport

log = logging.getLogger(__name__)

# States in which a program will not become healthy without being started again.
DEAD = {"EXITED", "FATAL", "BACKOFF", "UNKNOWN"}


class Supervisor:
    def __init__(self, conf: Path, sock: Path, pidfile: Path):
        self.conf, self.sock, self.pidfile = conf, sock, pidfile

    def _proxy(self) -> xmlrpc.client.ServerProxy:
        transport = SupervisorTransport(None, None, f"unix://{self.sock}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            proc = psutil.Process(pid)
            if (
                proc.is_running()
                and proc.status() != psutil.STATUS_ZOMBIE
                and "supervisord" in " ".join(proc.cmdline())
            ):
                return pid
        except psutil.Error:
            pass
        return None

    def running(self) -> bool:
        if self.pid() is None:
            return False
        try:
            return self._proxy().supervisor.getState()["statename"] == "RUNNING"
        except (OSError, xmlrpc.client.Error):
            return False

    def start(self, timeout: float = 20.0) -> None:
        """Start supervisord (daemonised) with the lab's config, or load the new config into the running one."""
        if self.running():
            self._sync()
            return
        self.sock.unlink(missing_ok=True)
        subprocess.run([sys.executable, "-m", "supervisor.supervisord", "-c", str(self.conf)], check=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.running():
                return
            time.sleep(0.1)
        raise RuntimeError(
            f"supervisord did not start within {timeout:.0f} s; see {self.conf.parent}/logs/supervisord.log"
        )

    def _sync(self) -> None:
        proxy = self._proxy()
        added, changed, removed = proxy.supervisor.reloadConfig()[0]
        for name in removed + changed:
            if self.state(name) not in {"RUNNING", "STARTING"}:
                proxy.supervisor.removeProcessGroup(name)
        for name in added + changed:
            try:
                proxy.supervisor.addProcessGroup(name)
            except xmlrpc.client.Fault as e:
                log.debug("program %s kept its running config: %s", name, e.faultString)

    def start_program(self, name: str) -> None:
        try:
            self._proxy().supervisor.startProcess(name, False)
        except xmlrpc.client.Fault as e:
            if "ALREADY_STARTED" not in e.faultString:
                raise

    def stop_program(self, name: str) -> None:
        try:
            self._proxy().supervisor.stopProcess(name, True)
        except xmlrpc.client.Fault as e:
            if "NOT_RUNNING" not in e.faultString:
                raise

    def info(self, name: str) -> dict:
        try:
            return self._proxy().supervisor.getProcessInfo(name)
        except (OSError, xmlrpc.client.Error):
            return {"statename": "STOPPED", "pid": 0}

    def state(self, name: str) -> str:
        return self.info(name)["statename"]

    def shutdown(self, timeout: float = 90.0) -> None:
        """Stop every program (their whole process groups), then supervisord itself; wait until it is gone."""
        pid = self.pid()
        if pid is None:
            return
        try:
            proxy = self._proxy()
            proxy.supervisor.stopAllProcesses(True)
            proxy.supervisor.shutdown()
        except (OSError, xmlrpc.client.Error) as e:
            log.warning("supervisord did not answer (%s); terminating it", e)
            _terminate(pid)
        try:
            psutil.Process(pid).wait(timeout)
        except psutil.NoSuchProcess:
            pass
        except psutil.TimeoutExpired:
            _terminate(pid)


def _terminate(pid: int) -> None:
    try:
        proc = psutil.Process(pid)
        proc.terminate()
        proc.wait(10)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        proc.kill()
