"""stream.started and stream.stopped: the live streams' events on the bus, written to the
outbox right after the publish or the stop was decided (they have no row of their own)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

from aiohttp import web

from server.db import DB
from server.events import EVENTS, StreamEvent
from server.webhooks import outbox
from server.webhooks.deliverer import DELIVERER


async def stream_events(app: web.Application) -> AsyncIterator[None]:
    """Subscribe to the bus for the life of the app."""

    async def announce(event: StreamEvent) -> None:
        if event.resumed:
            return  # a restarted server adopting a publisher: the stream never stopped
        name = "stream.started" if event.live else "stream.stopped"
        started = event.started_at
        fields = {"started_at": outbox.iso(started)} if started else {}
        await outbox.enqueue(app[DB], name, event.channel, datetime.now(UTC), **fields)
        app[DELIVERER].wake()

    unsubscribe = app[EVENTS].subscribe(announce)
    yield
    unsubscribe()
