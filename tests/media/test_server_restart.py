"""The server SIGKILLed during a live stream: on restart it reconciles and the ladder resumes."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import aiohttp
import pytest

from server.live.rtmp_stat import fetch_stat, publishers, stat_url
from server.settings import Settings
from tests.conftest import (
    Publisher,
    Served,
    ServeProcess,
    channel_in_database,
    ffmpeg_pids,
    running_nginx,
    wait_until,
)
from tests.media.test_live_path import LADDER_TIMEOUT

pytestmark = [pytest.mark.media, pytest.mark.slow]


# nginx-rtmp re-checks each publisher this often (on_update, nginx/onair.conf.template).
UPDATE_INTERVAL = 10.0


async def still_publishing(settings: Settings, slug: str) -> bool:
    """nginx-rtmp lists a publisher on `slug`."""
    async with aiohttp.ClientSession() as session:
        body = await fetch_stat(session, stat_url(settings.http_port))
    return any(publisher.slug == slug for publisher in publishers(body))


async def kill_9(served: Served) -> None:
    """SIGKILL the server at whatever moment this is (nginx covers its on_update checks)."""
    served.process.send_signal(signal.SIGKILL)
    await served.process.wait()


async def kill_9_and_stay_down(
    settings: Settings, served: Served, publisher: Publisher, slug: str
) -> None:
    """SIGKILL the server and keep it down for longer than one on_update round, as a crash
    and systemd's restart may take: nginx answers the check for it, so the publisher stays
    (it used to be dropped whenever a restart overlapped a check, and OBS with it)."""
    await kill_9(served)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + UPDATE_INTERVAL + 2
    while loop.time() < deadline:
        assert publisher.process.returncode is None, "nginx dropped the publisher"
        assert await still_publishing(settings, slug), "nginx no longer lists the publisher"
        await asyncio.sleep(0.5)


async def test_kill_9_server_then_ladder_resumes_without_orphans(
    settings: Settings,
    publish,  # type: ignore[no-untyped-def]
    serve_process: ServeProcess,
) -> None:
    assert settings.database_url is not None
    key = await channel_in_database(settings.database_url, "crash")
    first = await serve_process(settings)
    media_dir = settings.media_root
    async with running_nginx(settings):
        publisher = await publish(
            f"rtmp://127.0.0.1:{settings.rtmp_port}/live/{key}", size="320x240"
        )

        async def ladder_running() -> bool:
            return (media_dir / "live" / "crash" / "master.m3u8").exists()

        await wait_until(ladder_running, LADDER_TIMEOUT, "the ladder to run")
        old_pids = ffmpeg_pids(media_dir)
        assert len(old_pids) == 2  # 240p HEVC and the H.264 copy, one FFmpeg each

        await kill_9_and_stay_down(settings, first, publisher, "crash")
        await serve_process(settings)

        playlist = media_dir / "live" / "crash" / "master.m3u8"
        mtime = playlist.stat().st_mtime

        async def resumed() -> bool:
            pids = ffmpeg_pids(media_dir)
            return (
                len(pids) == 2
                and not set(pids) & set(old_pids)
                and playlist.stat().st_mtime > mtime
                and any(
                    p.stat().st_mtime > mtime
                    for p in (media_dir / "live" / "crash").glob("*/index.m3u8")
                )
            )

        await wait_until(resumed, LADDER_TIMEOUT, "the ladder to resume, one FFmpeg per rung")


def leftover(marker: str = "", pidfile: Path | None = None) -> subprocess.Popen[bytes]:
    """An FFmpeg as an older server left it: own session, the marker in its argv, and its
    pidfile in the old place and format ("<pid>\\n<marker>\\n"); without a pidfile, an
    FFmpeg that is none of ours."""
    tag = ["-metadata", f"comment={marker}"] if marker else []
    proc = subprocess.Popen(
        ["ffmpeg", "-nostdin", "-loglevel", "quiet", "-re", "-f", "lavfi",
         "-i", "testsrc=size=64x64:rate=5", *tag, "-f", "null", "-"],
        start_new_session=True,
    )  # fmt: skip
    if pidfile is not None:
        pidfile.parent.mkdir(parents=True, exist_ok=True)
        pidfile.write_text(f"{proc.pid}\n{marker}\n")
    return proc


async def test_an_upgrade_in_place_reaps_what_the_old_layout_left(
    settings: Settings,
    publish,  # type: ignore[no-untyped-def]
    serve_process: ServeProcess,
) -> None:
    assert settings.database_url is not None
    key = await channel_in_database(settings.database_url, "upgrade")
    media = settings.media_root
    # What the layout before the house move wrote (transcoder/live.py, recordings/process.py,
    # uploads/jobs.py): a live ladder, a recorder and a VOD ladder, each with its pidfile.
    ladder = leftover(str(media / "live" / "upgrade"), media / "run" / "upgrade.pid")
    recorder = leftover(
        "onair-recording-1a2b3c4d5e6f7a8b", media / "run" / "recordings" / "1a2b3c4d5e6f7a8b.pid"
    )
    video = leftover(
        "onair-recording-720p", media / "run" / "videos" / "ladder-1a2b3c4d5e6f7a8c.pid"
    )
    bystander = leftover()  # not ours: left alone
    try:
        await serve_process(settings)
        async with running_nginx(settings):

            async def reaped_at_start() -> bool:
                return recorder.poll() is not None and video.poll() is not None

            await wait_until(reaped_at_start, 30, "the recorder and VOD leftovers to be reaped")
            assert ladder.poll() is None  # a channel's ladder is reaped when it goes live
            await publish(f"rtmp://127.0.0.1:{settings.rtmp_port}/live/{key}", size="320x240")

            async def ladder_replaced() -> bool:
                pids = ffmpeg_pids(media / "live" / "upgrade")
                return ladder.poll() is not None and len(pids) == 2 and ladder.pid not in pids

            await wait_until(ladder_replaced, LADDER_TIMEOUT, "the old ladder to be replaced")
        for proc in (ladder, recorder, video):
            assert proc.returncode == -signal.SIGKILL
        assert bystander.poll() is None
        assert not (media / "run" / "recordings" / "1a2b3c4d5e6f7a8b.pid").exists()
        assert not (media / "run" / "videos" / "ladder-1a2b3c4d5e6f7a8c.pid").exists()
    finally:
        for proc in (ladder, recorder, video, bystander):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
