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
