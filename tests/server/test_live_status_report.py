"""The live status reporter against a real PostgreSQL: what a media host writes for the panel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp.test_utils import TestClient

from server.channels.store import CHANNELS
from server.clients import HTTP
from server.db import DB
from server.events import EVENTS
from server.live.ladders import LADDERS
from server.live.status import StatusReporter
from server.live.streams import Streams
from server.live.viewers import VIEWERS


async def test_a_round_writes_live_channels_and_prunes_old_viewer_minutes(
    client: TestClient,
) -> None:
    app = client.app
    db = app[DB]
    await app[CHANNELS].create("on", "On")
    await app[CHANNELS].create("gone", "Gone")
    old = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=2)
    await db.execute(
        "INSERT INTO viewer_minutes (channel, minute, viewers) VALUES ('gone', $1, 7)", old
    )
    streams = Streams(app[LADDERS], app[EVENTS], rtmp_port=1)
    started = datetime.now(UTC) - timedelta(minutes=3)
    streams.started["on"] = started
    reporter = StatusReporter(
        db, streams, app[LADDERS], app[VIEWERS], app[HTTP], host="media-1", http_port=1
    )

    await reporter.report()  # the first round also prunes

    row = await db.fetchrow("SELECT host, started_at, status FROM live_status")
    assert row is not None and (row["host"], row["started_at"]) == ("media-1", started)
    minutes = await db.fetch("SELECT channel, viewers FROM viewer_minutes ORDER BY channel")
    assert [(m["channel"], m["viewers"]) for m in minutes] == [("on", 0)]
