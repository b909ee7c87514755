"""kill -9 of `onair serve` mid-transcode (the job paused): the orphan ffmpeg is reaped at the
next start and the video goes back to the queue; deleting it then leaves no process and no
file."""

from __future__ import annotations

import asyncio
import io
import os
import signal
from pathlib import Path

import aiohttp
import pytest

from server.settings import Settings
from tests.conftest import ServeProcess, ffmpeg_pids, wait_until
from tests.uploads.conftest import uploading_channel
from transcoder import vod

pytestmark = [pytest.mark.media, pytest.mark.slow]


def ladder_pids(videos: Path) -> list[int]:
    """The ladder FFmpeg writing under videos, not the short poster run that precedes it."""
    found = []
    for pid in ffmpeg_pids(videos):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue  # it ended meanwhile
        if vod.POSTER.encode() not in argv:
            found.append(pid)
    return found


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A slow preset, so the job is still running when the server dies."""
    return settings.with_changes(compress_preset="slower")


async def test_server_killed_mid_transcode(
    settings: Settings, serve_process: ServeProcess, tmp_path: Path
) -> None:
    clip = tmp_path / "long.mp4"
    proc = await asyncio.create_subprocess_exec(
        "ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi",
        "-i", "testsrc2=size=854x480:rate=30", "-t", "20",
        "-c:v", "libx264", "-preset", "ultrafast", str(clip),
    )  # fmt: skip
    assert await proc.wait() == 0
    data = await asyncio.to_thread(clip.read_bytes)

    server = (await serve_process(settings)).process
    base = f"http://127.0.0.1:{settings.server_port}"
    channel = await uploading_channel(base, "crash")
    tus = {**channel.auth, "Tus-Resumable": "1.0.0"}
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{base}/api/channels/crash/uploads", headers={**tus, "Upload-Length": str(len(data))}
        ) as response:
            url = base + response.headers["Location"]
        async with session.patch(
            url,
            data=io.BytesIO(data),
            headers={
                **tus,
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
        ) as response:
            assert response.status == 204

        async def video() -> dict[str, object]:
            async with session.get(f"{base}/api/channels/crash/videos") as response:
                (found,) = await response.json()
                return dict(found)

        videos = settings.media_root / "videos" / "crash"
        running: list[int] = []

        async def transcoding() -> bool:
            nonlocal running
            running = ladder_pids(videos)
            return (await video())["state"] == "transcoding" and bool(running)

        await wait_until(transcoding, 30, "the ladder ffmpeg to run")
        # Paused, as the encoder slot pauses background jobs while a channel is live: a
        # running FFmpeg would soon die on its own (its next progress line finds the pipe to
        # the dead server broken), a paused one stays until the next server reaps it.
        for pid in running:
            os.kill(pid, signal.SIGSTOP)
        os.kill(server.pid, signal.SIGKILL)
        await server.wait()
        assert ffmpeg_pids(videos) == running  # its own session: it outlived the server

        server = (await serve_process(settings)).process
        assert not set(ffmpeg_pids(videos)) & set(running)  # reaped before anything else ran
        assert (await video())["state"] in ("queued", "transcoding")  # back in the queue

        vid = (await video())["id"]
        async with session.delete(f"{base}/api/videos/{vid}", headers=channel.auth) as response:
            assert response.status == 204

    async def nothing_left() -> bool:
        return not ffmpeg_pids(videos) and not any((settings.media_root / "uploads").iterdir())

    await wait_until(nothing_left, 15, "no ffmpeg and no upload bytes left")
    assert not videos.exists() or not list(videos.rglob("*")), list(videos.rglob("*"))
