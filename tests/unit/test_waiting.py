"""wait_event never swallows a cancel, even one that lands as the event fires."""

from __future__ import annotations

import asyncio

import pytest

from transcoder.waiting import wait_event


async def test_set_timeout_and_cancel_racing_with_set() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    event.set()
    assert await wait_event(event, 1) is True

    for _ in range(50):
        event = asyncio.Event()

        async def loop_forever(ev: asyncio.Event = event) -> None:
            while True:
                await wait_event(ev, 30)
                ev.clear()

        task = asyncio.create_task(loop_forever())
        await asyncio.sleep(0)
        # The event fires and the cancel arrives in the same loop iteration.
        event.set()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
