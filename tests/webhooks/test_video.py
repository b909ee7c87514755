"""An uploaded video announces video.ready once its ladder is made."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from tusclient.client import TusClient

from server.webhooks.signing import verify
from tests.conftest import Serve, json_of, wait_until
from tests.uploads.conftest import uploading_channel
from tests.webhooks.conftest import Receiver, add_webhook

pytestmark = [pytest.mark.media, pytest.mark.slow]

DEADLINE = 120.0  # a VOD ladder on 2 shared cores


async def test_an_uploaded_video_announces_video_ready(
    serve: Serve, settings, receiver: Receiver, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    clip = tmp_path / "clip.mp4"
    await asyncio.to_thread(
        subprocess.run,
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
         "-t", "1", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
         "-c:a", "aac", str(clip)],
        check=True,
    )  # fmt: skip
    running = await serve(settings.with_changes(compress_preset="ultrafast"))
    channel = await uploading_channel(running.url, "films")
    await receiver.start()
    _, secret = await add_webhook(running.url, receiver.url, ["video.ready"])

    def upload() -> None:
        client = TusClient(f"{running.url}/api/channels/films/uploads", headers=channel.auth)
        with clip.open("rb") as stream:
            client.uploader(file_stream=stream, metadata={"filename": "clip.mp4"}).upload()

    await asyncio.to_thread(upload)

    async def announced() -> bool:
        return len(receiver.delivered()) >= 1

    await wait_until(announced, DEADLINE, "video.ready at the receiver")
    (video,) = await json_of(f"{running.url}/api/channels/films/videos")
    (ready,) = receiver.delivered()
    assert video["state"] == "ready"
    assert ready.event == "video.ready" and ready.body["channel"] == "films"
    assert ready.body["video"]["id"] == video["id"] and ready.body["video"]["bytes"] > 0
    assert verify(secret, ready.raw, ready.signature)
