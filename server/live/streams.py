"""Who is live: publishers, session start times, go_live/go_offline, reconcile after a restart.

The live path runs one way: hooks.py decides, Streams records and tells the others (an event
on the bus: chat, recordings, uploads listen) and starts or stops the channel's ladder. A
ladder that gives up reports back only through the on_failed callback Streams gave it.
"""

from __future__ import annotations

import asyncio
import logging
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
from aiohttp import web

from server.clients import HTTP
from server.events import EVENTS, EventBus, StreamEvent
from server.live.ladders import LADDERS, new_pool
from server.live.rtmp_stat import fetch_stat, publishers, stat_url
from server.owner import OWNER
from server.settings import SETTINGS
from server.tasks import cancel_and_wait
from transcoder.layout import loopback_rtmp
from transcoder.live.pool import LadderPool

log = logging.getLogger("onair.ingest")

# Under `onair up` the server starts before nginx: keep asking for this long.
RECONCILE_PATIENCE = 30.0


class Streams:
    """Publishers by nginx client id (publish_done and update name the key, not the slug),
    when each live session began, and which ladders gave up."""

    def __init__(self, ladders: LadderPool, events: EventBus, rtmp_port: int) -> None:
        self.ladders = ladders
        self.events = events
        self.rtmp_port = rtmp_port
        self.publishers: dict[str, str] = {}  # nginx client id -> slug
        self.started: dict[str, datetime] = {}  # slug -> start of the live session
        self.failed: set[str] = set()  # slugs whose ladder gave up this session

    def by_slug(self, slug: str) -> str | None:
        """The client id publishing on `slug`, if any."""
        return next((cid for cid, s in self.publishers.items() if s == slug), None)

    def started_at(self, slug: str) -> datetime | None:
        """When the current session began, or None when offline."""
        return self.started.get(slug)

    async def go_live(self, slug: str, client_id: str, *, resume: bool = False) -> None:
        """Mark live, start the ladder in the background, tell everyone.

        `resume` appends to the playlists a killed server left, so players carry on.
        """
        self.publishers[client_id] = slug
        started = self.started.setdefault(slug, datetime.now(UTC))
        self.failed.discard(slug)
        self.ladders.start_soon(slug, loopback_rtmp(self.rtmp_port, slug), resume=resume)
        await self.events.publish(StreamEvent(slug, live=True, started_at=started, resumed=resume))

    async def go_offline(self, client_id: str) -> str | None:
        """The publisher left: mark offline and tell everyone, then stop the ladder.

        In that order: a graceful FFmpeg stop may take its whole grace period, and viewers
        should not see "Live" for a stream that has already ended. Returns the slug.
        """
        slug = self.publishers.pop(client_id, None)
        if slug is None:
            return None
        started = self.started.pop(slug, None)
        await self.events.publish(StreamEvent(slug, live=False, started_at=started))
        # Shielded: nginx-rtmp gives up on the publish_done hook after a few seconds and
        # aiohttp then cancels this handler, which would turn the graceful stop (FFmpeg can
        # need its whole grace period once the publisher is gone) into SIGKILL mid-segment.
        await asyncio.shield(self.ladders.stop(slug))
        self.failed.discard(slug)
        return slug

    def ladder_failed(self, slug: str) -> None:
        """The ladder's on_failed: nobody can watch, so the next update hook drops the
        publisher (OBS reconnects, and the new publish starts a fresh ladder)."""
        if slug in self.started:
            self.failed.add(slug)

    async def reconcile(self, http: aiohttp.ClientSession, stat_url: str) -> None:
        """After a restart: adopt publishers nginx still has and resume their ladders."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RECONCILE_PATIENCE
        while True:
            try:
                body = await fetch_stat(http, stat_url)
                break
            except (aiohttp.ClientError, TimeoutError) as err:
                if loop.time() > deadline:
                    log.warning(
                        "reconcile skipped: rtmp_stat unreachable error=%s", type(err).__name__
                    )
                    return
                await asyncio.sleep(0.5)
        try:
            found = publishers(body)
        except ET.ParseError:
            log.warning("reconcile skipped: rtmp_stat is not XML")
            return
        for publisher in found:
            if publisher.client_id in self.publishers:
                continue
            await self.go_live(publisher.slug, publisher.client_id, resume=True)
            log.info("reconciled live channel=%s clientid=%s", publisher.slug, publisher.client_id)


STREAMS: web.AppKey[Streams] = web.AppKey("streams", Streams)


async def live_streams(app: web.Application) -> AsyncIterator[None]:
    """Streams and every channel's ladder for the life of the app; they run in the host's
    owner (server/owner.py), which reconciles when it takes over.

    On the way down, or when this process stops owning, every FFmpeg is stopped: no ladder
    outlives its owner.
    """
    settings = app[SETTINGS]
    # The pool reports a ladder that gave up to the Streams built just below.
    pool = new_pool(settings, on_failed=lambda slug: streams.ladder_failed(slug))
    streams = Streams(pool, app[EVENTS], settings.rtmp_port)
    app[LADDERS], app[STREAMS] = pool, streams
    reconciling: list[asyncio.Task[None]] = []

    async def take_over() -> None:
        # As after a restart: reconcile resumes each channel nginx still has, and the pool
        # reaps the dead owner's FFmpeg of that channel (its pidfiles) before starting its
        # own; the dead owner's ladder keeps writing segments until then.
        url = stat_url(settings.http_port)
        reconciling.append(asyncio.create_task(streams.reconcile(app[HTTP], url)))

    async def hand_over() -> None:
        await cancel_and_wait(reconciling)
        reconciling.clear()
        # With other workers on this host one of them takes the ladders over and appends to
        # the playlists (a rolling restart): ending them would stop every player watching.
        await pool.close(end=settings.workers == 1)
        streams.publishers.clear()
        streams.started.clear()
        streams.failed.clear()

    async with app[OWNER].duty("ladders", take_over, hand_over):
        yield
