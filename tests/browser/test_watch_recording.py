"""A past broadcast still plays in Chromium once compressed (on its own page, from the watch
page's list): with HEVC (which this Chromium cannot decode) on its H.264 rendition, with AV1
on the AV1 one.

Before, the compressed copy was one HEVC file: Chromium on Linux and Firefox could no longer
play a recording once compression had replaced its original.
"""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from server.background.slot import ENCODER
from server.channels.store import CHANNELS
from server.db import DB
from server.recordings.service import RECORDINGS
from server.recordings.store import new_id
from server.settings import Settings
from tests.browser.conftest import ARTIFACTS, open_page
from tests.browser.test_replay import start_replay
from tests.browser.test_watch_live import wait_playing
from tests.conftest import LiveStack, wait_until
from tests.recordings.conftest import make_part
from transcoder.recordings import media

pytestmark = [pytest.mark.media, pytest.mark.slow]


@pytest.fixture(params=["hevc", "av1"])
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    return settings.with_changes(compress_codec=request.param)


async def test_a_compressed_recording_plays_on_the_watch_page(
    live_stack: LiveStack, browser: Browser, settings: Settings
) -> None:
    app = live_stack.app
    recordings = app[RECORDINGS]
    await recordings.recovered.wait()
    await app[CHANNELS].create("past", "Past Broadcasts")
    rid = new_id()
    folder = recordings.directory("past", rid)
    folder.mkdir(parents=True)
    await make_part(folder / "part-0001.ts", 12, size="640x360")
    before = await media.finalize(folder, recordings.tools, "test")
    await app[DB].execute(
        "INSERT INTO recordings (id, channel, state, host, started_at, duration_s, bytes) "
        "VALUES ($1, 'past', 'compressing', $2, now(), $3, $4)",
        rid, recordings.node, before.duration_s, before.bytes,
    )  # fmt: skip
    app[ENCODER].wake()

    async def compressed() -> bool:
        row = await app[DB].fetchrow("SELECT state, codec FROM recordings WHERE id = $1", rid)
        done = row is not None and row["state"] == "ready"
        return done and row["codec"] == settings.compress_codec

    await wait_until(compressed, 120, f"{settings.compress_codec} compression to finish")
    assert not (folder / media.ORIGINAL).exists()

    watched = await open_page(browser, f"{live_stack.http}/watch/past")
    page = watched.page
    await page.get_by_role("link", name="Play the broadcast of").click()
    await page.wait_for_url(f"**/watch/past/recordings/{rid}")
    await start_replay(page)
    await wait_playing(page, 60_000)
    codec = await page.get_attribute("#player", "data-codec")
    expected = "av01" if settings.compress_codec == "av1" else "avc1"  # no HEVC in this Chromium
    assert codec is not None and codec.startswith(expected), codec
    await expect(page.get_by_role("heading", name="Chat replay")).to_be_visible()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=ARTIFACTS / f"watch-recording-{settings.compress_codec}.png")
    assert await watched.problems() == []
