"""Wait for an event with a time limit, in a way that never swallows a cancel."""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """True when `event` is set within `seconds`, False on time-out.

    asyncio.timeout rather than wait_for: Python 3.11's wait_for swallows a cancel that lands
    just as the event fires, and a `while True` loop around it would then never stop.
    """
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
