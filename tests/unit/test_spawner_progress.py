"""The local spawner's start progress: the phases start() went through, replayed to a subscriber that joins late,
then each new one as it happens (JupyterHub's spawn-pending page and the home page both subscribe)."""

from __future__ import annotations

import asyncio

from agp.spawner.local import WorkspaceLocalSpawner


def test_a_late_subscriber_sees_every_phase_then_the_next_one():
    async def scenario() -> list[tuple[int, str]]:
        spawner = WorkspaceLocalSpawner()
        spawner._phases = []
        spawner._phase_added = asyncio.Event()
        spawner._phase(5, "Checking your membership of workspace demo")
        spawner._phase(15, "Preparing OS user agp-alice and its home folder")
        seen: list[tuple[int, str]] = []

        async def follow() -> None:
            async for event in spawner.progress():
                seen.append((event["progress"], event["message"]))

        follower = asyncio.create_task(follow())
        while len(seen) < 2:  # the replay of what happened before it joined
            await asyncio.sleep(0)
        spawner._phase(50, "Server process started (pid 42)")
        while len(seen) < 3:
            await asyncio.sleep(0)
        follower.cancel()
        return seen

    seen = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert [p for p, _ in seen] == [5, 15, 50]
    assert seen[2][1] == "Server process started (pid 42)"


def test_progress_before_any_start_waits_instead_of_failing():
    async def scenario() -> bool:
        gen = WorkspaceLocalSpawner().progress()
        try:
            await asyncio.wait_for(gen.__anext__(), 0.2)
        except TimeoutError:
            return True
        finally:
            await gen.aclose()
        return False

    assert asyncio.run(scenario()), "no phase yet: the generator waits for one"


def test_jupyterhub_reads_the_phases_of_a_start_until_it_returns():
    """As the hub's progress API does: iterate_until(spawn future, _generate_progress()), which ends the stream
    when start() returns (the generator itself never ends)."""
    from jupyterhub.utils import iterate_until

    async def scenario() -> list[str]:
        spawner = WorkspaceLocalSpawner()
        spawner._phases, spawner._phase_added = [], asyncio.Event()
        spawner._spawn_pending = True
        release = asyncio.Event()

        async def start() -> None:  # the phases start() reports, with a pause the reader waits through
            spawner._phase(5, "Checking your membership of workspace demo")
            await release.wait()
            spawner._phase(50, "Server process started (pid 42)")
            spawner._phase(60, "Waiting for JupyterLab to answer")

        spawn = asyncio.ensure_future(start())
        seen: list[str] = []
        async for event in iterate_until(spawn, spawner._generate_progress()):
            seen.append(event["message"])
            if len(seen) == 2:
                release.set()
        return seen

    assert asyncio.run(asyncio.wait_for(scenario(), 10)) == [
        "Server requested",
        "Checking your membership of workspace demo",
        "Server process started (pid 42)",
        "Waiting for JupyterLab to answer",
    ]
