"""A real session: publish 20 s over RTMP, get a recording that plays, compresses and deletes."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from server.channels.store import CHANNELS
from server.recordings.service import RECORDINGS
from tests.conftest import LiveStack, json_of, wait_until
from tests.recordings.conftest import decodes, publish_for
from transcoder.recordings import media

pytestmark = [pytest.mark.media, pytest.mark.slow]


async def test_twenty_second_session_is_recorded_compressed_and_deleted(
    live_stack: LiveStack, admin: dict[str, str]
) -> None:
    _, key = await live_stack.app[CHANNELS].create("rec", "Rec")
    publisher = await publish_for(live_stack.rtmp(key), 20)
    recordings: list[dict[str, Any]] = []

    async def recording() -> bool:
        nonlocal recordings
        recordings = await json_of(live_stack.http + "/api/channels/rec/recordings")
        return len(recordings) == 1 and recordings[0]["state"] == "recording"

    await wait_until(recording, 20, "a recording in state recording")
    assert recordings[0]["hls_url"] is None
    assert await asyncio.wait_for(publisher.wait(), 60) == 0

    async def finalized() -> bool:
        nonlocal recordings
        recordings = await json_of(live_stack.http + "/api/channels/rec/recordings")
        return recordings[0]["state"] in ("compressing", "ready")

    await wait_until(finalized, 60, "the recording to be finalized")
    rec = recordings[0]
    assert 18.0 <= rec["duration_s"] <= 22.0, rec
    assert rec["bytes"] > 0 and rec["codec"] == "h264"
    # Through nginx, the way a player gets it.
    assert await decodes(live_stack.http + rec["hls_url"])
    assert await decodes(live_stack.http + rec["mp4_url"])
    async with (
        aiohttp.ClientSession() as session,
        session.get(live_stack.http + rec["mp4_url"], headers={"Range": "bytes=0-99"}) as resp,
    ):
        assert resp.status == 206 and len(await resp.read()) == 100

    async def compressed() -> bool:
        nonlocal recordings
        recordings = await json_of(live_stack.http + "/api/channels/rec/recordings")
        return recordings[0]["state"] == "ready"

    await wait_until(compressed, 120, "H.265 compression to finish")
    done = recordings[0]
    assert done["codec"] == "hevc" and done["bytes"] < rec["bytes"], (done, rec)
    assert done["mp4_url"].endswith(media.COMPRESSED)
    assert abs(done["duration_s"] - rec["duration_s"]) < 0.5
    assert await decodes(live_stack.http + done["hls_url"])
    async with aiohttp.ClientSession() as session:
        async with session.get(live_stack.http + rec["mp4_url"]) as response:
            assert response.status == 404  # the original is gone once replaced
        url = f"{live_stack.http}/api/recordings/{done['id']}"
        async with session.delete(url) as response:
            assert response.status == 401
        async with session.delete(url, headers=admin) as response:
            assert response.status == 204
        async with session.get(live_stack.http + done["hls_url"]) as response:
            assert response.status == 404
        async with session.delete(url, headers=admin) as response:
            assert response.status == 404
    assert await json_of(live_stack.http + "/api/channels/rec/recordings") == []
    directory = live_stack.app[RECORDINGS].directory("rec", done["id"])
    assert not directory.exists()
