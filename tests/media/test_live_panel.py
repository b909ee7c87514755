"""The dashboard's live panel API against a real publish: the media host reports, and another
host sharing only the database (an edge in `split`) shows the same."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.channels import tokens
from server.channels.store import CHANNELS
from server.db import DB
from tests.conftest import ADMIN, LiveStack, free_port, get_json, wait_until
from tests.server.test_admin_sessions import sign_in

pytestmark = [pytest.mark.media]

LADDER_TIMEOUT = 120.0  # the first segments of every rung, on 2 shared cores
OFFLINE_TIMEOUT = 15.0


async def panel_of(base: str, slug: str) -> dict[str, Any]:
    status, body = await get_json(f"{base}/api/channels/{slug}/live", ADMIN)
    assert status == 200, (status, body)
    assert isinstance(body, dict)
    return body


async def test_live_panel_shows_source_rungs_and_audience_from_any_host(
    live_stack: LiveStack, publish, aiohttp_client
) -> None:  # type: ignore[no-untyped-def]
    stack = live_stack
    _, key = await stack.app[CHANNELS].create("panel", "Panel")
    await stack.app[CHANNELS].create("other", "Other")
    quiet = await panel_of(stack.http, "panel")
    assert quiet["live"] is False and quiet["ladder"] is None and quiet["warnings"] == []
    assert len(quiet["viewers_series"]) == 60 and len(quiet["chat_series"]) == 60

    publisher = await publish(stack.rtmp(key), size="640x360", fps=30)
    body: dict[str, Any] = {}

    async def rungs_with_speed() -> bool:
        nonlocal body
        body = await panel_of(stack.http, "panel")
        ladder = body["ladder"]
        sent = body["input"]
        return (
            body["live"]
            and ladder is not None
            and all(r["speed"] is not None for r in ladder["rungs"])
            and sent is not None
            and sent["video_kbps"] > 0
        )

    await wait_until(rungs_with_speed, LADDER_TIMEOUT, "a live panel with every rung's speed")
    assert body["host"] == stack.settings.node_name
    assert body["source"] == {
        "codec": "h264",
        "profile": body["source"]["profile"],
        "width": 640,
        "height": 360,
        "fps": 30.0,
        "audio": "aac",
    }
    # testsrc2 at x264 ultrafast: hundreds of kbit/s, never megabits of nothing.
    assert 50 < body["input"]["video_kbps"] < 20_000, body["input"]
    rungs = {r["name"]: r for r in body["ladder"]["rungs"]}
    assert rungs["360p"]["codec"] == "hevc"
    assert rungs["360p"]["preset"] in ("superfast", "ultrafast")
    assert rungs["h264"]["copy"] is True and rungs["h264"]["preset"] == "copy"
    assert all(r["state"] in ("running", "backoff") for r in rungs.values())

    # An edge: its own server, no nginx (its rtmp_stat port answers nothing), the same database.
    edge_settings = stack.settings.with_changes(node_name="edge-1", http_port=free_port())
    edge: TestClient = await aiohttp_client(create_app(edge_settings))
    response = await edge.get("/api/channels/panel/live", headers=ADMIN)
    seen = await response.json()
    assert response.status == 200 and seen["live"] is True
    assert seen["host"] == stack.settings.node_name
    assert [r["name"] for r in seen["ladder"]["rungs"]] == list(rungs)
    # The edge's channel list, channel and watch page show it live too, since the same start.
    _, on_media = await get_json(f"{stack.http}/api/channels/panel")
    listed = {c["slug"]: c for c in await (await edge.get("/api/channels")).json()}
    assert listed["panel"]["live"] is True and listed["other"]["live"] is False
    assert listed["panel"]["started_at"] == on_media["started_at"] is not None
    assert (await (await edge.get("/api/channels/panel")).json())["live"] is True
    assert 'data-live="true"' in await (await edge.get("/watch/panel")).text()

    # A streamer of another channel sees nothing of this one; nobody signed in neither.
    _, streamer = await tokens.create(stack.app[DB], "other", "streamer", "Streamer")
    await sign_in(edge, streamer)
    response = await edge.get("/api/channels/panel/live")
    assert response.status == 403, await response.text()
    response = await edge.get("/api/channels/other/live")
    assert response.status == 200 and (await response.json())["live"] is False
    anonymous, _ = await get_json(f"{stack.http}/api/channels/panel/live")
    assert anonymous == 401

    # The viewers of this minute were written by the media host.
    assert all(p["viewers"] == 0 for p in body["viewers_series"])  # nobody watches

    await publisher.stop()

    async def offline() -> bool:
        return (await panel_of(stack.http, "panel"))["live"] is False

    await wait_until(offline, OFFLINE_TIMEOUT, "the panel offline once the publisher left")

    async def offline_on_the_edge() -> bool:
        return (await (await edge.get("/api/channels/panel")).json())["live"] is False

    await wait_until(offline_on_the_edge, OFFLINE_TIMEOUT, "the edge's channel offline")


async def test_a_host_that_stopped_reporting_is_named(live_stack: LiveStack) -> None:
    await live_stack.app[CHANNELS].create("ghost", "Ghost")
    # What a media host killed without warning leaves behind: its last report, growing old.
    await live_stack.app[DB].execute(
        """INSERT INTO live_status (channel, host, started_at, updated_at, status)
           VALUES ('ghost', 'media-2', now() - interval '1 hour', now() - interval '2 minutes',
                   '{}'::jsonb)"""
    )
    body = await panel_of(live_stack.http, "ghost")
    assert body["live"] is False and body["host"] == "media-2"
    assert len(body["warnings"]) == 1
    assert body["warnings"][0].startswith("The media host media-2 has not reported for 1")
