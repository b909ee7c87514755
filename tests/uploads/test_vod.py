"""A real tus client uploads a clip through nginx; the connection is cut; it resumes; the
video becomes an H.265 + H.264 HLS ladder that nginx serves and ffmpeg decodes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError, TusUploadFailed
from tusclient.uploader import Uploader

from tests.conftest import ADMIN_TOKEN, LiveStack, json_of, wait_until
from tests.cutting_proxy import CuttingProxy
from tests.recordings.conftest import decodes
from tests.uploads.conftest import uploading_channel

pytestmark = [pytest.mark.media]
CHUNK = 64 * 1024


async def test_cut_upload_resumes_and_becomes_a_playable_ladder(
    live_stack: LiveStack, clip: Path
) -> None:
    channel = await uploading_channel(live_stack.http, "films")
    size = (await asyncio.to_thread(clip.stat)).st_size
    nginx_port = live_stack.settings.http_port
    async with CuttingProxy(nginx_port, cut_after=size // 2) as proxy:
        client = TusClient(
            f"http://127.0.0.1:{proxy.port}/api/channels/films/uploads", headers=channel.auth
        )
        with clip.open("rb") as stream:
            uploader = client.uploader(
                file_stream=stream, chunk_size=CHUNK, metadata={"filename": "My holiday.mp4"}
            )
            with pytest.raises((TusUploadFailed, TusCommunicationError)):
                await asyncio.to_thread(uploader.upload)
        assert proxy.cuts == 1
    path = uploader.url.split(str(proxy.port), 1)[1]
    upload_url = live_stack.http + path

    # The bytes that arrived before the cut are kept, including part of the chunk in flight.
    async with (
        aiohttp.ClientSession() as session,
        session.head(upload_url, headers={**channel.auth, "Tus-Resumable": "1.0.0"}) as response,
    ):
        assert response.status == 200
        kept = int(response.headers["Upload-Offset"])
    assert 0 < kept < size
    assert int(response.headers["Upload-Length"]) == size

    def resume() -> int:
        direct = TusClient(f"{live_stack.http}/api/channels/films/uploads", headers=channel.auth)
        with clip.open("rb") as stream:
            again = Uploader(file_stream=stream, url=upload_url, client=direct, chunk_size=CHUNK)
            started_at = again.offset
            again.upload()
            return started_at

    assert await asyncio.to_thread(resume) == kept

    videos_url = f"{live_stack.http}/api/channels/films/videos"
    seen_states: set[str] = set()

    async def ready() -> bool:
        videos = await json_of(videos_url)
        assert isinstance(videos, list) and len(videos) == 1
        seen_states.add(videos[0]["state"])
        assert videos[0]["state"] != "failed", videos[0]["error"]
        return bool(videos[0]["state"] == "ready")

    await wait_until(ready, 90, "the video to be ready")
    (video,) = await json_of(videos_url)  # type: ignore[misc]
    assert video["title"] == "My holiday"
    assert video["progress"] == 1
    assert video["renditions"] == ["480p", "360p", "h264"]  # never above the 480p source
    assert 1.5 < video["duration_s"] < 2.5

    async with aiohttp.ClientSession() as session:
        async with session.get(live_stack.http + video["hls_url"]) as response:
            assert response.status == 200
            assert response.headers["Cache-Control"] == "no-cache"
            master = await response.text()
        async with session.get(live_stack.http + video["poster_url"]) as response:
            assert response.status == 200
            assert (await response.read())[:2] == b"\xff\xd8"  # a JPEG
    assert 'CODECS="hvc1.' in master and 'CODECS="avc1.' in master
    assert "RESOLUTION=854x480" in master and "RESOLUTION=640x360" in master
    base = (live_stack.http + video["hls_url"]).rsplit("/", 1)[0]
    for name in video["renditions"]:
        assert await decodes(f"{base}/{name}/index.m3u8"), name

    # The source is gone once the ladder is ready; the upload is done.
    assert list((live_stack.settings.media_root / "uploads").iterdir()) == []
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{live_stack.http}/api/channels/films/uploads", headers=channel.auth
        ) as response,
    ):
        (upload,) = await response.json()
    assert upload["state"] == "done" and upload["video_id"] == video["id"]


async def test_videos_wait_while_a_channel_is_live(
    live_stack: LiveStack,
    clip: Path,
    publish,  # type: ignore[no-untyped-def]
) -> None:
    """The VOD queue follows compression's rule: nothing starts while live needs the CPU."""
    from server.background.slot import ENCODER
    from server.live.streams import STREAMS

    channel = await uploading_channel(live_stack.http, "busy")
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{live_stack.http}/api/channels", json={"slug": "onair"}, headers=admin_headers()
        ) as response,
    ):
        key = (await response.json())["stream_key"]
    publisher = await publish(live_stack.rtmp(key), size="320x180")
    app = live_stack.app

    async def live() -> bool:
        return "onair" in app[STREAMS].started

    await wait_until(live, 30, "the channel to go live")

    def upload() -> None:
        client = TusClient(f"{live_stack.http}/api/channels/busy/uploads", headers=channel.auth)
        with clip.open("rb") as stream:
            client.uploader(file_stream=stream, chunk_size=CHUNK).upload()

    await asyncio.to_thread(upload)
    slot = app[ENCODER]

    async def looked() -> bool:  # the slot woke for the new video and went back to sleep
        return not slot.wake_pending

    await wait_until(looked, 10, "the VOD queue to look at the new video")
    (video,) = await json_of(f"{live_stack.http}/api/channels/busy/videos")  # type: ignore[misc]
    assert (video["state"], video["progress"]) == ("queued", 0)

    await publisher.stop()

    async def ready() -> bool:
        (video,) = await json_of(f"{live_stack.http}/api/channels/busy/videos")  # type: ignore[misc]
        return bool(video["state"] == "ready")

    await wait_until(ready, 90, "the video to transcode once the channel is offline")


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}
