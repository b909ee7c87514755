"""The watch page lists uploaded videos, shows progress while one transcodes, and plays one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, expect
from tusclient.client import TusClient

from server.db import DB
from tests.browser.conftest import browser, chromium, open_page  # noqa: F401 (fixtures)
from tests.conftest import LiveStack, wait_until
from tests.uploads.conftest import uploading_channel

pytestmark = [pytest.mark.media, pytest.mark.slow]

# Frames decode and the clock moves (the clip is 2 s long).
PLAYING = """() => {
  const v = document.getElementById("player");
  const q = v.getVideoPlaybackQuality();
  return v.readyState >= 2 && v.videoWidth > 0 && v.currentTime > 0.5
    && q.totalVideoFrames - q.droppedVideoFrames > 10;
}"""


async def test_videos_are_listed_with_progress_and_play(
    live_stack: LiveStack,
    clip: Path,
    browser: Browser,  # noqa: F811
) -> None:
    channel = await uploading_channel(live_stack.http, "films")

    def upload() -> None:
        client = TusClient(f"{live_stack.http}/api/channels/films/uploads", headers=channel.auth)
        with clip.open("rb") as stream:
            client.uploader(file_stream=stream, metadata={"title": "Harbour at dusk"}).upload()

    await asyncio.to_thread(upload)

    async def ready() -> bool:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{live_stack.http}/api/channels/films/videos") as response,
        ):
            videos = await response.json()
        return bool(videos) and videos[0]["state"] == "ready"

    await wait_until(ready, 90, "the video to be ready")
    # A second video, still transcoding, as the queue would leave it mid-job.
    await live_stack.app[DB].execute(
        "INSERT INTO videos (id, channel, upload_id, title, state, progress) "
        "VALUES ('0000000000000001', 'films', 'x', 'Still cooking', 'transcoding', 0.42)"
    )

    watched = await open_page(browser, f"{live_stack.http}/watch/films")
    page = watched.page
    videos = page.locator("#videos")
    await expect(videos.get_by_role("heading", name="Videos")).to_be_visible()
    items = videos.locator("li")
    await expect(items).to_have_count(2)
    await expect(items.filter(has_text="Still cooking")).to_contain_text("processing 42 %")
    await expect(page.get_by_label("Processing Still cooking")).to_have_attribute("value", "42")

    await page.get_by_role("button", name="Play Harbour at dusk").click()
    await page.wait_for_function(PLAYING, timeout=60_000, polling=250)
    codec = await page.get_attribute("#player", "data-codec")
    assert codec is not None and codec.startswith("avc1"), codec  # Chromium: the H.264 rung
    await expect(page.locator("#state")).to_have_text("Replay")

    # The job finishes: the page notices by itself.
    await live_stack.app[DB].execute(
        "UPDATE videos SET state = 'failed' WHERE id = '0000000000000001'"
    )
    await expect(items).to_have_count(1, timeout=15_000)
    assert await watched.problems() == []
