"""GET /api/channels/<slug>/live: the dashboard's live panel, read from what the host running
the channel's ladder reported (status.py), with the last hour's viewers and chat per minute
and what is wrong, in words."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from aiohttp import web

from server.channels.store import CHANNELS
from server.db import DB
from server.live.directory import STALE_AFTER_S
from server.web.auth import path_slug, require_channel

routes = web.RouteTableDef()

SERIES_MINUTES = 60
NO_LADDER_AFTER_S = 30.0  # live this long without a ladder: the probe or FFmpeg failed
NO_INPUT_AFTER_S = 20.0  # nginx-rtmp averages its rates over ~10 s

_SERIES = f"""
WITH minutes AS (
    SELECT generate_series(date_trunc('minute', now()) - interval '{SERIES_MINUTES - 1} minutes',
                           date_trunc('minute', now()), interval '1 minute') AS minute
)
SELECT m.minute,
       coalesce(v.viewers, 0) AS viewers,
       (SELECT count(*) FROM chat_messages c
        WHERE c.channel = $1 AND c.created_at >= m.minute
          AND c.created_at < m.minute + interval '1 minute') AS messages
FROM minutes m LEFT JOIN viewer_minutes v ON v.channel = $1 AND v.minute = m.minute
ORDER BY m.minute
"""


def _names(names: list[str]) -> str:
    return ", ".join(names)


def warnings(status: dict[str, Any], *, live_for_s: float) -> list[str]:
    """What an operator should know about a live channel, in words, worst first."""
    found = []
    ladder = status.get("ladder")
    if status.get("failed"):
        found.append(
            "The ladder gave up after FFmpeg failed again and again: nobody can watch until "
            "the streamer reconnects (OBS does it by itself once it is dropped)."
        )
    elif ladder is None and live_for_s > NO_LADDER_AFTER_S:
        found.append(
            "No ladder is running: the source could not be probed or FFmpeg could not start "
            "(the server log says which)."
        )
    if ladder is not None:
        if ladder["shed"]:
            found.append(
                f"The ladder is behind real time: {_names(ladder['shed'])} shed "
                "(each comes back once the CPU has room for it)."
            )
        stepped = [r for r in ladder["rungs"] if r["preset_step"] > 0]
        if stepped:
            found.append(
                f"The box is short of CPU: {_names([r['name'] for r in stepped])} "
                f"{'runs' if len(stepped) == 1 else 'run'} a faster preset than configured, "
                "for more bits at the same quality."
            )
        for rung in ladder["rungs"]:
            if rung["state"] == "running" and rung["behind"]:
                found.append(
                    f"{rung['name']} is behind real time ({rung['speed']:.2f}x): "
                    "its viewers will stall."
                )
            elif rung["state"] == "backoff":
                found.append(f"{rung['name']} is restarting after its FFmpeg ended.")
    sent = status.get("input")
    if sent is not None and sent["video_kbps"] == 0 and live_for_s > NO_INPUT_AFTER_S:
        found.append("No video is arriving from the encoder: check OBS and its network.")
    return found


async def panel(db: asyncpg.Pool, slug: str) -> dict[str, Any]:
    """The live panel's body for one channel."""
    async with db.acquire() as conn:
        row = await conn.fetchrow(
            """
            SELECT host, started_at, updated_at, status::text AS status,
                   extract(epoch FROM now() - updated_at)::float8 AS age,
                   extract(epoch FROM now() - started_at)::float8 AS live_for
            FROM live_status WHERE channel = $1
            """,
            slug,
        )
        series = await conn.fetch(_SERIES, slug)
    body: dict[str, Any] = {
        "live": False,
        "host": None,
        "started_at": None,
        "reported_at": None,
        "source": None,
        "input": None,
        "ladder": None,
        "viewers": 0,
        "warnings": [],
        "viewers_series": [
            {"minute": r["minute"].isoformat(), "viewers": r["viewers"]} for r in series
        ],
        "chat_series": [
            {"minute": r["minute"].isoformat(), "messages": r["messages"]} for r in series
        ],
    }
    if row is None:
        return body
    body["host"] = row["host"]
    body["reported_at"] = row["updated_at"].isoformat()
    if row["age"] > STALE_AFTER_S:
        body["warnings"] = [
            f"The media host {row['host']} has not reported for {row['age']:.0f} s: "
            "its server may be down (the stream is shown offline until it reports again)."
        ]
        return body
    status = json.loads(row["status"])
    body.update(
        live=True,
        started_at=row["started_at"].isoformat(),
        source=status["source"],
        input=status["input"],
        ladder=status["ladder"],
        viewers=status["viewers"],
        warnings=warnings(status, live_for_s=row["live_for"]),
    )
    return body


@routes.get("/api/channels/{slug}/live")
async def live_panel(request: web.Request) -> web.Response:
    """Admin or the channel's streamer: the channel's live state for the dashboard."""
    slug = path_slug(request)
    require_channel(request, slug)
    await request.app[CHANNELS].get(slug)  # 404 for a channel that does not exist
    return web.json_response(await panel(request.app[DB], slug))
