"""The server SIGKILLed during a live stream: on restart it reconciles and the ladder resumes."""

from __future__ import annotations

import re
import signal

import aiohttp
import asyncpg
import pytest

from server import channels
from server.settings import Settings
from tests.conftest import ffmpeg_pids, running_nginx, start_server, wait_until
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


async def test_kill_9_server_then_ladder_resumes_without_orphans(
    settings: Settings,
    publish,
    servers,  # type: ignore[no-untyped-def]
) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        from server.db import migrate

        await migrate(conn)
        key = channels.new_stream_key()
        await conn.execute(
            "INSERT INTO channels (slug, title, key_hash) VALUES ('crash', 'Crash', $1)",
            channels.hash_key(key),
        )
    finally:
        await conn.close()

    servers.append(await start_server(settings))
    media_dir = settings.media_root
    async with running_nginx(settings):
        await publish(f"rtmp://127.0.0.1:{settings.rtmp_port}/live/{key}", size="320x240")

        async def ladder_running() -> bool:
            return (
                len(ffmpeg_pids(media_dir)) == 1
                and (media_dir / "live" / "crash" / "master.m3u8").exists()
            )

        await wait_until(ladder_running, LADDER_TIMEOUT, "the ladder to run")
        [old_pid] = ffmpeg_pids(media_dir)

        # nginx re-checks every 10 s and drops the publisher when a check fails, so kill
        # right after a check: the restart then has the whole interval.
        seen = await update_hooks_seen(settings)

        async def update_arrived() -> bool:
            return await update_hooks_seen(settings) > seen

        await wait_until(update_arrived, 15, "an on_update hook")
        servers[0].send_signal(signal.SIGKILL)
        await servers[0].wait()
        servers.append(await start_server(settings))

        playlist = media_dir / "live" / "crash" / "master.m3u8"
        mtime = playlist.stat().st_mtime

        async def resumed() -> bool:
            pids = ffmpeg_pids(media_dir)
            return (
                len(pids) == 1
                and pids[0] != old_pid
                and playlist.stat().st_mtime > mtime
                and any(
                    p.stat().st_mtime > mtime
                    for p in (media_dir / "live" / "crash").glob("*/index.m3u8")
                )
            )

        await wait_until(resumed, LADDER_TIMEOUT, "the ladder to resume with one FFmpeg")
