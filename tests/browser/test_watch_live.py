"""The watch page during a real RTMP push: it plays the H.264 rung and follows the stream."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, Frame, Page, expect

from tests.browser.conftest import (
    ARTIFACTS,
    LADDER_TIMEOUT,
    new_channel,
    open_page,
    wait_h264_rung,
)
from tests.conftest import LiveStack

pytestmark = [pytest.mark.media, pytest.mark.slow]

PLAY_TIMEOUT_MS = LADDER_TIMEOUT * 1000
STATE_TIMEOUT_MS = 30_000  # publish_done → offline, or publish → live, over the chat socket

# Frames decode and the clock moves: checked twice, so a frozen picture does not pass.
PLAYING = """(since) => {
  const v = document.getElementById("player");
  const q = v.getVideoPlaybackQuality();
  const shown = q.totalVideoFrames - q.droppedVideoFrames;
  return !v.paused && v.readyState >= 3 && v.videoWidth > 0 && shown > since.frames
    && v.currentTime > since.time;
}"""
SNAPSHOT = """() => {
  const v = document.getElementById("player");
  const q = v.getVideoPlaybackQuality();
  return {time: v.currentTime, frames: q.totalVideoFrames - q.droppedVideoFrames};
}"""


async def wait_playing(page: Page | Frame, timeout_ms: float = PLAY_TIMEOUT_MS) -> None:
    """Wait until the video decodes frames, then until its clock and frame count move on."""
    start = {"time": 0.5, "frames": 10}
    await page.wait_for_function(PLAYING, arg=start, timeout=timeout_ms, polling=250)
    later = await page.evaluate(SNAPSHOT)
    later["time"] += 1.0
    await page.wait_for_function(PLAYING, arg=later, timeout=20_000, polling=250)


async def test_live_video_plays_on_the_h264_rung(
    live_stack: LiveStack,
    publish,  # type: ignore[no-untyped-def]
    browser: Browser,
) -> None:
    key = await new_channel(live_stack, "show", "Evening Show")
    await new_channel(live_stack, "quiet", "A Quiet Channel")
    await publish(live_stack.rtmp(key), size="320x240")
    master = await wait_h264_rung(live_stack, "show")
    assert "hvc1" in master and "avc1" in master

    desktop = await open_page(browser, f"{live_stack.http}/watch/show")
    page = desktop.page
    hevc = await page.evaluate(
        """() => MediaSource.isTypeSupported('video/mp4; codecs="hvc1.1.6.L93.B0"')"""
    )
    assert hevc is False, "this Chromium decodes HEVC: the H.264 fallback is not under test"
    await wait_playing(page)
    # hls.js dropped the HEVC variants by CODECS and plays the H.264 one.
    codec = await page.get_attribute("#player", "data-codec")
    assert codec is not None and codec.startswith("avc1"), codec
    quality = page.get_by_label("Quality", exact=True)
    options = await quality.locator("option").all_inner_texts()
    assert options[0].startswith("Auto")
    assert options[1:] == ["240p"], options
    await expect(page.locator("#state")).to_have_text("Live")
    await expect(page.locator("#viewers")).to_have_text("1 watching", timeout=15_000)

    # Screenshots with a little chat in them (artefacts; README links committed copies).
    await page.get_by_label("Name", exact=True).fill("host")
    await page.get_by_label("Name", exact=True).press("Enter")
    await expect(page.locator("#chat-status")).to_have_text("You are host.")
    for text in ("Welcome to the evening show!", "Chat is plain text: <b>no markup</b>"):
        await page.get_by_label("Message", exact=True).fill(text)
        await page.get_by_label("Message", exact=True).press("Enter")
        await expect(page.locator("#messages li").last).to_contain_text(text)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "watch-desktop.png")

    phone = await open_page(browser, f"{live_stack.http}/watch/show", phone=True)
    await wait_playing(phone.page)
    await expect(phone.page.locator("#messages li")).to_have_count(2)
    await phone.page.screenshot(path=ARTIFACTS / "watch-phone.png", full_page=True)

    # The channel list: the live channel first, with a still from its latest segment.
    listing = await open_page(browser, f"{live_stack.http}/")
    cards = listing.page.locator("#channel-list > li")
    await expect(cards).to_have_count(2)
    await expect(cards.first).to_contain_text("Evening Show")
    await expect(cards.first.locator(".badge")).to_have_text("Live")
    await expect(cards.nth(1)).to_contain_text("A Quiet Channel")
    await expect(cards.nth(1).locator(".badge")).to_have_text("Offline")
    await listing.page.wait_for_function(
        "() => document.querySelector('#channel-list img').naturalWidth > 0", timeout=20_000
    )
    await listing.page.screenshot(path=ARTIFACTS / "channels.png")

    for watched in (desktop, phone, listing):
        assert await watched.problems() == []


async def test_page_goes_offline_and_back_live_with_the_publisher(
    live_stack: LiveStack,
    publish,  # type: ignore[no-untyped-def]
    browser: Browser,
) -> None:
    key = await new_channel(live_stack, "onoff")
    publisher = await publish(live_stack.rtmp(key), size="320x240")
    watched = await open_page(browser, f"{live_stack.http}/watch/onoff")
    page = watched.page
    await wait_playing(page)
    await expect(page.locator("#state")).to_have_text("Live")

    await publisher.stop()
    await expect(page.locator("#state")).to_have_text("Offline", timeout=STATE_TIMEOUT_MS)
    await expect(page.locator("#offline-card")).to_be_visible()

    await publish(live_stack.rtmp(key), size="320x240")
    await expect(page.locator("#state")).to_have_text("Live", timeout=STATE_TIMEOUT_MS)
    await expect(page.locator("#offline-card")).to_be_hidden()
    await wait_playing(page)
    assert await watched.problems() == []
