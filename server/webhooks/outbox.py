"""Writing the outbox: an event becomes one delivery row per webhook subscribed to it.

Callers write the rows in the transaction of the event's own write where there is one (the
chat insert, a recording's or a video's move to ready), so an event is never announced
without having happened, nor lost after it did. Nothing here waits on a receiver.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from server.db import Db

EVENTS = ("stream.started", "stream.stopped", "chat.message", "recording.ready", "video.ready")


def iso(when: datetime) -> str:
    """A time as the bodies carry it: ISO 8601 in UTC, milliseconds."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def body(event: str, channel: str, occurred_at: datetime, **fields: Any) -> str:
    """A delivery's JSON body: the event, its channel and time, then what the event names."""
    assert event in EVENTS
    payload = {"event": event, "channel": channel, "occurred_at": iso(occurred_at), **fields}
    return json.dumps(payload, separators=(",", ":"))


def fan_out(source: str) -> str:
    """SQL writing a delivery per subscribed webhook for each row of `source` (columns event,
    channel, body as text, n), in n order, so deliveries keep the events' order."""
    return f"""
        INSERT INTO webhook_deliveries (webhook_id, event, channel, body)
        SELECT w.id, e.event, e.channel, e.body::jsonb
        FROM {source} e
        JOIN webhooks w
          ON e.event = ANY(w.events) AND (w.channels IS NULL OR e.channel = ANY(w.channels))
        ORDER BY e.n, w.id
    """


_ONE = fan_out("(SELECT $1::text AS event, $2::text AS channel, $3::text AS body, 1 AS n)")


async def enqueue(db: Db, event: str, channel: str, occurred_at: datetime, **fields: Any) -> None:
    """Write one event's deliveries (none when no webhook wants it)."""
    await db.execute(_ONE, event, channel, body(event, channel, occurred_at, **fields))
