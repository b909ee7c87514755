"""Stopping background tasks for good.

A task is cancelled and awaited at shutdown, but a library may swallow the cancellation
(redis-py's and asyncio's timeouts can on Python 3.11 when it lands just as a reply does;
seen in CI: chat's tick loop went on "cancelling" and the server never finished stopping).
cancel_and_wait cancels such a task again until it has ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

# Longer than any graceful stop a cancelled task still runs (a relay's FFmpeg gets 3 s), so
# a second cancel never cuts one short; a swallowed cancel costs this much at shutdown.
AGAIN_AFTER_S = 10.0


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel every task and wait until each has ended; their exceptions are not raised."""
    tasks = list(tasks)
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=AGAIN_AFTER_S)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" warning
