"""The in-process event bus: streams publish start/stop; chat, recordings and uploads listen."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

log = logging.getLogger("onair.events")


@dataclass(frozen=True)
class StreamEvent:
    """A channel went live (live=True) or offline (live=False); `resumed`: a restarted server
    adopted a publisher that never left."""

    channel: str
    live: bool
    started_at: datetime | None = None  # when the live session began
    resumed: bool = False


Listener = Callable[[StreamEvent], Awaitable[None]]


class EventBus:
    """Listeners run one after another; one that fails is logged and the rest still run."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Register a listener; returns a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def publish(self, event: StreamEvent) -> None:
        """Deliver the event to every listener."""
        for listener in list(self._listeners):
            try:
                await listener(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event listener failed channel=%s live=%s", event.channel, event.live)


EVENTS: web.AppKey[EventBus] = web.AppKey("events", EventBus)
