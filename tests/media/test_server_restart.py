"""The server SIGKILLed during a live stream: on restart it reconciles and the ladder resumes."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import aiohttp
import pytest

from server.settings import Settings
from tests.conftest import (
    Served,
    ServeProcess,
    channel_in_database,
    ffmpeg_pids,
    running_nginx,
    wait_until,
)
from tests.media.test_live_path import LADDER_TIMEOUT

pytestmark = [pytest.mark.media, pytest.mark.slow]


async def update_hooks_seen(settings: Settings) -> float:
    """How many on_update hooks the running server has accepted."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{settings.server_port}/metrics") as response,
    ):
        text = await response.text()
    match = re.search(
        r'^onair_ingest_hook_decisions_total\{decision="accepted",hook="update"\} (\S+)$',
        text,
        re.M,
    )
    return float(match.group(1)) if match else 0.0


async def kill_9_after_an_update_hook(settings: Settings, served: Served) -> None:
    """SIGKILL the server right after nginx's on_update check of the publisher: nginx
    re-checks every 10 s and drops a publisher whose check fails, so a restart then has the
    whole interval."""
    seen = await update_hooks_seen(settings)

    async def update_arrived() -> bool:
        return await update_hooks_seen(settings) > seen

    await wait_until(update_arrived, 15, "an on_update hook")
    served.process.send_signal(signal.SIGKILL)
    await served.process.wait()


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
        await publish(f"rtmp://127.0.0.1:{settings.rtmp_port}/live/{key}", size="320x240")

        async def ladder_running() -> bool:
            return (media_dir / "live" / "crash" / "master.m3u8").exists()

        await wait_until(ladder_running, LADDER_TIMEOUT, "the ladder to run")
        old_pids = ffmpeg_pids(media_dir)
        assert len(old_pids) == 2  # 240p HEVC and the H.264 copy, one FFmpeg each

        await kill_9_after_an_update_hook(settings, first)
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
