"""Uploading a video through the admin dashboard in Chromium, across a cut connection."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from playwright.async_api import Browser, Request, expect

from tests.browser.conftest import ARTIFACTS, new_channel, open_page
from tests.browser.test_admin import sign_in
from tests.conftest import LiveStack, get_json
from tests.cutting_proxy import CuttingProxy
from tests.recordings.conftest import make_part

pytestmark = [pytest.mark.media]

CHUNK = 256 * 1024  # what the page sends in one PATCH (admin_channel.js)


async def test_upload_a_video_through_the_page_across_a_dropped_connection_and_a_pause(
    live_stack: LiveStack, browser: Browser, tmp_path: Path
) -> None:
    await new_channel(live_stack, "vods", "Videos")
    clip = tmp_path / "clip.mp4"
    await make_part(clip.with_suffix(".ts"), 8, size="640x360")
    remux = await asyncio.create_subprocess_exec(
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-i", str(clip.with_suffix(".ts")), "-c", "copy", str(clip),
    )  # fmt: skip
    assert await remux.wait() == 0
    assert clip.stat().st_size > 5 * CHUNK

    # The page goes through a TCP proxy that cuts the connection inside the second chunk,
    # then holds it a chunk or two later while the operator presses Pause.
    async with CuttingProxy(live_stack.settings.http_port) as proxy:
        base = f"http://127.0.0.1:{proxy.port}"
        admin = await open_page(browser, f"{base}/admin")
        page = admin.page
        await sign_in(page, live_stack.settings.admin_token)
        offsets: list[int] = []  # Upload-Offset of every PATCH the page sends

        def note_offset(request: Request) -> None:
            if request.method == "PATCH" and "/api/uploads/" in request.url:
                offsets.append(int(request.headers["upload-offset"]))

        page.on("request", note_offset)
        await page.goto(f"{base}/admin/channels/vods")
        await page.get_by_label("Video file", exact=True).set_input_files(str(clip))
        proxy.cut_after = proxy.forwarded + CHUNK + CHUNK // 2
        proxy.hold_after = proxy.forwarded + 3 * CHUNK + CHUNK // 2
        await page.get_by_role("button", name="Upload video").click()

        await asyncio.wait_for(proxy.holding.wait(), 60)
        assert proxy.cuts == 1
        await page.get_by_role("button", name="Pause", exact=True).click()
        await expect(page.get_by_role("status")).to_have_text("Upload paused.")
        sent_before_pause = len(offsets)
        proxy.release()
        await page.wait_for_timeout(1500)  # paused: nothing more is sent, however long
        assert len(offsets) == sent_before_pause, offsets
        percent = await page.locator("#upload-percent").text_content()
        assert percent != "100 %"
        await page.get_by_role("button", name="Resume", exact=True).click()
        await expect(page.get_by_role("status")).to_have_text(
            "clip.mp4 uploaded: it is transcoded in the background.", timeout=60_000
        )
        # Resumed, not restarted: after the cut and the pause the page sent on from what the
        # server had (Chromium resends the cut chunk; a 409 names the offset, then
        # tus-js-client asks by HEAD).
        assert offsets.count(0) == 1 and offsets == sorted(offsets), offsets
        assert len(offsets) > sent_before_pause
        video = page.locator("#videos li").first
        await expect(video).to_contain_text("ready", timeout=180_000)  # transcoded to the ladder
        await page.screenshot(path=ARTIFACTS / "admin-upload.png", full_page=True)
        status, videos = await get_json(f"{live_stack.http}/api/channels/vods/videos")
        assert status == 200 and videos[0]["state"] == "ready"
        assert abs(videos[0]["duration_s"] - 8) < 0.5

        # A file that is not a video: the server's 415 in words, and nothing is listed.
        junk = tmp_path / "notes.mp4"
        junk.write_bytes(os.urandom(300_000))
        await page.get_by_label("Video file", exact=True).set_input_files(str(junk))
        await page.get_by_role("button", name="Upload video").click()
        await expect(page.get_by_role("status")).to_have_text(
            "Upload failed: That file is not a video the server can read.", timeout=30_000
        )
        await expect(page.locator("#videos li")).to_have_count(1)
        assert await admin.problems() == []
