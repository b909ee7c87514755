"""cancel_and_wait ends a loop that swallowed its first cancellation."""

from __future__ import annotations

import asyncio

from server.tasks import cancel_and_wait


async def swallows_one_cancel(ticks: list[int]) -> None:
    """A loop whose library ate one CancelledError (as redis-py can on Python 3.11)."""
    swallowed = False
    while True:
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            if swallowed:
                raise
            swallowed = True
        ticks.append(1)


async def test_a_swallowed_cancellation_does_not_hang_the_shutdown() -> None:
    ticks: list[int] = []
    task = asyncio.create_task(swallows_one_cancel(ticks))
    await asyncio.sleep(0.05)
    task.cancel()  # what the shutdown did before: cancel once, then gather
    await asyncio.sleep(0.1)
    assert not task.done() and task.cancelling() == 1  # "cancelling", yet running on
    await asyncio.wait_for(cancel_and_wait([task]), 30)
    assert task.cancelled()


async def test_finished_and_failed_tasks_are_fine() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    failed = asyncio.create_task(fails())
    finished = asyncio.create_task(asyncio.sleep(0))
    await asyncio.sleep(0.01)
    await cancel_and_wait([failed, finished])
    assert failed.done() and finished.done()
