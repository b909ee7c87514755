"""A real session: publish 20 s over RTMP, get a recording that plays, compresses and deletes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server.background.slot import ENCODER, Job
from server.channels.store import CHANNELS
from server.recordings.service import RECORDINGS
from tests.conftest import LiveStack, json_of, wait_until
from tests.recordings.conftest import decodes, publish_for
from transcoder.recordings import media

pytestmark = [pytest.mark.media, pytest.mark.slow]


class HoldTheSlot:
    """A job source whose one job holds the host's encoder slot until released: compression
    waits behind it, as it waits behind an upload's transcode, so the test sees the
    recording in `compressing` for as long as it needs to."""

    kind = "test-hold"

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self._given = False

    async def next_job(self) -> Job | None:
        if self._given:
            return None
        self._given = True
        return Job(self.kind, "hold", self._hold)

    async def _hold(self) -> None:
        self.started.set()
        await self.release.wait()

    async def crashed(self, job: Job) -> None:
        """Never: the job only waits."""


async def test_twenty_second_session_is_recorded_compressed_and_deleted(
    live_stack: LiveStack, admin: dict[str, str], tmp_path: Path
) -> None:
    hold = HoldTheSlot()
    live_stack.app[ENCODER].add(hold)
    try:
        await session_recorded_compressed_and_deleted(live_stack, admin, tmp_path, hold)
    finally:
        hold.release.set()


async def session_recorded_compressed_and_deleted(
    live_stack: LiveStack, admin: dict[str, str], tmp_path: Path, hold: HoldTheSlot
) -> None:
    await asyncio.wait_for(hold.started.wait(), 30)
    _, key = await live_stack.app[CHANNELS].create("rec", "Rec")
    pushed = time.time()
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
        return recordings[0]["state"] == "compressing"

    await wait_until(finalized, 60, "the recording to be finalized")
    rec = recordings[0]  # the list as a page shows it while compression waits for the slot
    assert 18.0 <= rec["duration_s"] <= 22.0, rec
    assert rec["bytes"] > 0 and rec["codec"] == "h264"
    # where it sits on the wall clock (chat replay): one part, its first frame pushed just now
    [(at, wall)] = rec["clock"]
    assert at == 0 and pushed - 1 <= wall <= pushed + 15, (pushed, rec["clock"])
    # Through nginx, the way a player gets it.
    assert await decodes(live_stack.http + rec["hls_url"])
    assert await decodes(live_stack.http + rec["mp4_url"])
    async with (
        aiohttp.ClientSession() as session,
        session.get(live_stack.http + rec["mp4_url"], headers={"Range": "bytes=0-99"}) as resp,
    ):
        assert resp.status == 206 and len(await resp.read()) == 100
        before = {"etag": resp.headers.get("ETag"), "date": resp.headers.get("Last-Modified")}
    hold.release.set()

    async def compressed() -> bool:
        nonlocal recordings
        recordings = await json_of(live_stack.http + "/api/channels/rec/recordings")
        return recordings[0]["state"] == "ready"

    await wait_until(compressed, 120, "H.265 compression to finish")
    done = recordings[0]
    assert done["codec"] == "hevc" and done["bytes"] < rec["bytes"], (done, rec)
    assert abs(done["duration_s"] - rec["duration_s"]) < 0.5
    assert await decodes(live_stack.http + done["hls_url"])
    directory = live_stack.app[RECORDINGS].directory("rec", done["id"])
    assert not (directory / media.ORIGINAL).exists()  # the original is gone once replaced
    # The link listed before the swap still downloads, whole, and is now the H.265 file.
    download = tmp_path / "download.mp4"
    async with aiohttp.ClientSession() as session:
        async with session.get(live_stack.http + rec["mp4_url"]) as response:
            assert response.status == 200, (rec["mp4_url"], response.status)
            download.write_bytes(await response.read())
        # The download is the HEVC file; the row counts it and the H.264 rendition beside it.
        hevc = (directory / media.compressed_name("hevc")).stat().st_size
        assert download.stat().st_size == hevc
        assert hevc + (directory / media.FALLBACK).stat().st_size == done["bytes"]
        assert await decodes(download)
        async with session.get(
            live_stack.http + rec["mp4_url"], headers={"Range": "bytes=0-99"}
        ) as response:
            assert response.status == 206 and len(await response.read()) == 100
        # A download resumed across the swap gets the new file whole, never mixed ranges.
        for validator in before.values():
            assert validator is not None
            headers = {"Range": "bytes=100-", "If-Range": validator}
            async with session.get(live_stack.http + rec["mp4_url"], headers=headers) as response:
                assert response.status == 200, (validator, response.status)
                assert len(await response.read()) == hevc
        original = f"{live_stack.http}/vod/rec/{done['id']}/{media.ORIGINAL}"
        async with session.get(original) as response:
            assert response.status == 404
        assert done["mp4_url"] == rec["mp4_url"]  # one link for the recording's whole life
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
    assert not directory.exists()
