"""The local spawner's start() returns once the new server answers, as JupyterHub's own check would see it; a
server that exits first is left to JupyterHub's check, one that never answers fails with JupyterHub's message."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from agp.spawner.local import WorkspaceLocalSpawner

BASE = "/user/alice/demo/"


def _spawner(code: str) -> WorkspaceLocalSpawner:
    spawner = WorkspaceLocalSpawner(http_timeout=2)
    spawner.proc = subprocess.Popen([sys.executable, "-c", code])
    return spawner


def _stop(spawner: WorkspaceLocalSpawner) -> None:
    spawner.proc.kill()
    spawner.proc.wait()


class _Turns(web.RequestHandler):
    """``<BASE>api`` answering with ``turns`` in order, then the last one."""

    def initialize(self, turns: list[int], seen: list[int]) -> None:
        self.turns, self.seen = turns, seen

    def get(self) -> None:
        status = self.turns[min(len(self.seen), len(self.turns) - 1)]
        self.seen.append(status)
        self.set_status(status)
        self.finish("{}")


def test_start_waits_until_the_server_answers_below_500():
    async def scenario() -> list[int]:
        seen: list[int] = []
        app = web.Application([(f"{BASE}api", _Turns, {"turns": [503, 502, 200], "seen": seen})])
        sockets = bind_sockets(0, "127.0.0.1")
        server = HTTPServer(app)
        server.add_sockets(sockets)
        spawner = _spawner("import time; time.sleep(60)")
        try:
            await spawner._wait_answering(f"http://127.0.0.1:{sockets[0].getsockname()[1]}{BASE}api")
        finally:
            _stop(spawner)
            server.stop()
        return seen

    assert asyncio.run(scenario()) == [503, 502, 200], "5xx answers are not ready; the first other answer is"


def test_a_server_that_exits_before_answering_is_left_to_jupyterhubs_check():
    async def scenario() -> int | None:
        spawner = _spawner("raise SystemExit(3)")
        spawner.proc.wait()
        await spawner._wait_answering("http://127.0.0.1:9/user/alice/demo/api")
        return spawner.proc.returncode

    assert asyncio.run(scenario()) == 3


def test_a_server_that_never_answers_fails_with_jupyterhubs_timeout_message():
    async def scenario() -> None:
        spawner = _spawner("import time; time.sleep(60)")
        try:
            await spawner._wait_answering("http://127.0.0.1:9/user/alice/demo/api")
        finally:
            _stop(spawner)

    with pytest.raises(TimeoutError, match=r"didn't respond in 2 seconds"):
        asyncio.run(scenario())
