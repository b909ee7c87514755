"""What each live channel's source, ladder and audience are doing, written for the dashboard.

The host that runs a channel's ladder writes a snapshot to PostgreSQL (live_status) every
REPORT_EVERY_S, and the viewer count of the minute (viewer_minutes); any host's dashboard
reads them (panel.py), so in `split` an edge shows what the media host sees. The snapshot is
deleted when the publisher leaves; a host that dies leaves its rows to go stale.
"""

from __future__ import annotations

import asyncio
import json
import logging
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from server.clients import HTTP
from server.db import DB
from server.events import EVENTS, StreamEvent
from server.live.ladders import LADDERS
from server.live.rtmp_stat import Publisher, fetch_stat, publishers, stat_url
from server.live.streams import STREAMS, Streams
from server.live.viewers import VIEWERS, ViewerSessions
from server.owner import OWNER
from server.settings import SETTINGS
from server.tasks import cancel_and_wait
from transcoder.live.encoders import effective_preset, preset_index
from transcoder.live.ladder import LadderConfig, Rendition
from transcoder.live.pool import LadderPool
from transcoder.live.supervisor import Supervisor

log = logging.getLogger("onair.status")

REPORT_EVERY_S = 2.0  # the dashboard polls every 5 s: each poll sees a fresh snapshot
KEEP_VIEWER_MINUTES = timedelta(days=1)
PRUNE_EVERY = 30  # reports between prunes of old viewer minutes (~a minute)


def rung_preset(rendition: Rendition, config: LadderConfig) -> str:
    """The preset the rung's encoder runs with: an x265/x264 name, an SVT-AV1 number, copy."""
    if rendition.copy:
        return "copy"
    if rendition.codec == "hevc":
        return effective_preset(config.hevc_encoder, config.preset)
    if rendition.codec == "av1":
        return str(config.av1_preset)
    return config.h264_preset


def preset_step(rendition: Rendition, now: LadderConfig, start: LadderConfig) -> int:
    """How many presets faster than it began the rung's encoder runs (0: as configured)."""
    if rendition.copy:
        return 0
    if rendition.codec == "hevc":
        began, runs = (preset_index(now.hevc_encoder, c.preset) for c in (start, now))
        return max(0, began - runs) if began >= 0 and runs >= 0 else 0
    if rendition.codec == "av1":
        return max(0, now.av1_preset - start.av1_preset)
    return 0


def _speed(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def ladder_json(sup: Supervisor) -> dict[str, Any]:
    """The ladder as the live panel shows it: each rung, what was shed, what it did."""
    config, start = sup.config, sup.started_config
    now = asyncio.get_running_loop().time()
    rungs = []
    for rendition in sup.renditions:
        rung = sup.rungs.get(rendition.name)
        progress = rung.last_progress if rung is not None else None
        rungs.append(
            {
                "name": rendition.name,
                "codec": rendition.codec,
                "width": rendition.width,
                "height": rendition.height,
                "kbps": rendition.video_kbps,
                "copy": rendition.copy,
                "state": rung.state if rung is not None else "idle",
                "speed": _speed(rung.speed()) if rung is not None else None,
                # below live speed for a whole shed window (not a slow start)
                "behind": rung is not None and rung.policy.should_shed(now),
                "fps": progress.fps if progress is not None else None,
                "preset": rung_preset(rendition, config),
                "preset_step": preset_step(rendition, config, start),
            }
        )
    return {
        "state": sup.state,
        "preset": sup.preset,
        "speed": _speed(sup.speed),
        "rungs": rungs,
        "shed": [r.name for r in sup.shed],
        "events": [
            {
                "at": datetime.fromtimestamp(e.at, UTC).isoformat(),
                "kind": e.kind,
                "rung": e.rung,
                "detail": e.detail,
            }
            for e in sup.events
        ],
    }


def snapshot(
    slug: str,
    streams: Streams,
    ladders: LadderPool,
    viewers: ViewerSessions,
    inputs: dict[str, Publisher],
) -> dict[str, Any]:
    """One live channel's status, as stored in live_status.status."""
    sup = ladders.supervisor(slug)
    source = sup.source if sup is not None else None
    publisher = inputs.get(slug)
    return {
        "source": None
        if source is None
        else {
            "codec": source.video_codec,
            "profile": source.video_profile,
            "width": source.width,
            "height": source.height,
            "fps": round(source.fps, 3),
            "audio": source.audio_codec,
        },
        "input": None
        if publisher is None
        else {
            "kbps": publisher.input_kbps,
            "video_kbps": publisher.video_kbps,
            "audio_kbps": publisher.audio_kbps,
        },
        "ladder": ladder_json(sup) if sup is not None else None,
        "failed": slug in streams.failed,
        "viewers": viewers.count(slug),
    }


class StatusReporter:
    """Writes this host's live channels to live_status and viewer_minutes."""

    def __init__(
        self,
        db: asyncpg.Pool,
        streams: Streams,
        ladders: LadderPool,
        viewers: ViewerSessions,
        http: aiohttp.ClientSession,
        *,
        host: str,
        http_port: int,
    ) -> None:
        self.db, self.streams, self.ladders, self.viewers = db, streams, ladders, viewers
        self.http = http
        self.host = host
        self.stat_url = stat_url(http_port)
        self._reports = 0

    async def _inputs(self) -> dict[str, Publisher]:
        """What each publisher sends, from nginx-rtmp; empty when nginx does not answer."""
        try:
            return {p.slug: p for p in publishers(await fetch_stat(self.http, self.stat_url))}
        except (aiohttp.ClientError, TimeoutError, ET.ParseError) as err:
            log.debug("rtmp_stat unreadable error=%s", type(err).__name__)
            return {}

    async def report(self) -> None:
        """One round: every channel live here now, and its viewers this minute."""
        live = dict(self.streams.started)
        self._reports += 1
        inputs = await self._inputs() if live else {}
        rows = [
            (slug, started, snapshot(slug, self.streams, self.ladders, self.viewers, inputs))
            for slug, started in live.items()
        ]
        async with self.db.acquire() as conn, conn.transaction():
            if rows:
                await conn.executemany(
                    """
                    INSERT INTO live_status (channel, host, started_at, status)
                    SELECT $1, $2, $3, $4::jsonb WHERE EXISTS (SELECT FROM channels WHERE slug = $1)
                    ON CONFLICT (channel) DO UPDATE
                    SET host = EXCLUDED.host, started_at = EXCLUDED.started_at,
                        updated_at = now(), status = EXCLUDED.status
                    """,
                    [(slug, self.host, started, json.dumps(s)) for slug, started, s in rows],
                )
                await conn.executemany(
                    """
                    INSERT INTO viewer_minutes (channel, minute, viewers)
                    SELECT $1, date_trunc('minute', now()), $2
                    WHERE EXISTS (SELECT FROM channels WHERE slug = $1)
                    ON CONFLICT (channel, minute) DO UPDATE
                    SET viewers = GREATEST(viewer_minutes.viewers, EXCLUDED.viewers)
                    """,
                    [(slug, s["viewers"]) for slug, _, s in rows],
                )
            # Rows this host wrote for channels no longer live here (a missed publish_done).
            await conn.execute(
                "DELETE FROM live_status WHERE host = $1 AND NOT channel = ANY($2::text[])",
                self.host,
                list(live),
            )
            if self._reports % PRUNE_EVERY == 1:
                await conn.execute(
                    "DELETE FROM viewer_minutes WHERE minute < now() - $1::interval",
                    KEEP_VIEWER_MINUTES,
                )

    async def on_stream(self, event: StreamEvent) -> None:
        """EventBus listener: a channel that ended is offline on the panel at once (one that
        went live shows at the next round: the publish hook waits for no report)."""
        if not event.live:
            await self.db.execute(
                "DELETE FROM live_status WHERE channel = $1 AND host = $2", event.channel, self.host
            )

    async def report_forever(self) -> None:
        """Report every REPORT_EVERY_S; a failed round is logged and the next one tries again."""
        while True:
            try:
                await self.report()
            except (asyncpg.PostgresError, OSError) as err:
                log.warning("live status not written error=%s", type(err).__name__)
            await asyncio.sleep(REPORT_EVERY_S)


async def live_status(app: web.Application) -> AsyncIterator[None]:
    """Report this host's live channels for the life of the app."""
    settings = app[SETTINGS]
    reporter = StatusReporter(
        app[DB],
        app[STREAMS],
        app[LADDERS],
        app[VIEWERS],
        app[HTTP],
        host=settings.node_name,
        http_port=settings.http_port,
    )
    unsubscribe: Callable[[], None] | None = None
    tasks: list[asyncio.Task[None]] = []

    async def start() -> None:
        nonlocal unsubscribe
        unsubscribe = app[EVENTS].subscribe(reporter.on_stream)
        tasks.append(asyncio.create_task(reporter.report_forever()))

    async def stop() -> None:
        nonlocal unsubscribe
        if unsubscribe is not None:
            unsubscribe()
            unsubscribe = None
        await cancel_and_wait(tasks)
        tasks.clear()
        if settings.workers > 1:
            # Another worker takes the ladders over and reports them within seconds: the rows
            # stay (fresh for STALE_AFTER_S), so no worker shows the channel offline meanwhile.
            return
        # This host's channels are no longer reported (a restart adopts them again).
        try:
            await app[DB].execute("DELETE FROM live_status WHERE host = $1", settings.node_name)
        except (asyncpg.PostgresError, OSError) as err:
            log.warning("live status left to go stale error=%s", type(err).__name__)

    # Only the owner knows the ladders: it alone reports them.
    async with app[OWNER].duty("live status", start, stop):
        yield
