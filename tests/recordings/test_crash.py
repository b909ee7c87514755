"""The server SIGKILLed mid-recording: the next start finalizes the session, nothing is lost."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from server.settings import Settings
from server.stack import server_environ
from tests.conftest import running_nginx, wait_until
from tests.recordings.conftest import decodes, duration, make_channel, publish_for

pytestmark = [pytest.mark.media, pytest.mark.slow]


async def start_server(settings: Settings) -> asyncio.subprocess.Process:
    """`onair serve` as systemd runs it, with this test's recording settings."""
    env = server_environ(settings)
    env["ONAIR_COMPRESS_PRESET"] = settings.compress_preset
    env["ONAIR_RECORDING_RESERVE_BYTES"] = str(settings.recording_reserve_bytes)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "serve", env=env, stdin=asyncio.subprocess.DEVNULL
    )

    async def answering() -> bool:
        assert process.returncode is None, "onair serve exited while starting"
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{settings.server_port}/metrics") as response,
            ):
                return response.status == 200
        except aiohttp.ClientError:
            return False

    await wait_until(answering, 60, "onair serve to answer")
    return process


@pytest.fixture
async def servers() -> AsyncIterator[list[asyncio.subprocess.Process]]:
    started: list[asyncio.subprocess.Process] = []
    yield started
    for process in started:
        if process.returncode is None:
            process.terminate()
            await process.wait()


async def test_kill_9_mid_recording_is_finalized_at_next_start(
    settings: Settings, servers: list[asyncio.subprocess.Process]
) -> None:
    key = await make_channel(settings.database_url or "", "crash")
    servers.append(await start_server(settings))
    db = await asyncpg.connect(settings.database_url)
    try:
        async with running_nginx(settings):
            publisher = await publish_for(f"rtmp://127.0.0.1:{settings.rtmp_port}/live/{key}", 120)
            part: Path | None = None

            async def recording_for_a_while() -> bool:
                nonlocal part
                rid = await db.fetchval("SELECT id FROM recordings WHERE state = 'recording'")
                if rid is None:
                    return False
                part = settings.media_root / "recordings" / "crash" / rid / "part-0001.ts"
                return part.exists() and part.stat().st_size > 300_000

            await wait_until(recording_for_a_while, 60, "several seconds recorded")
            assert part is not None
            recorded = await duration(part)
            servers[0].send_signal(signal.SIGKILL)
            await servers[0].wait()
            publisher.send_signal(signal.SIGINT)
            await publisher.wait()

            servers.append(await start_server(settings))

            async def finalized() -> bool:
                # ready: finalized, and compressed too, so no file is replaced while we decode
                return await db.fetchval("SELECT state FROM recordings") == "ready"

            await wait_until(finalized, 90, "the crashed recording to be finalized")
    finally:
        row = await db.fetchrow("SELECT * FROM recordings")
        await db.close()
    assert row is not None
    assert row["ended_at"] is not None and row["finalized_at"] is not None
    assert row["duration_s"] >= recorded - 1.0, (dict(row), recorded)
    folder = settings.media_root / "recordings" / "crash" / row["id"]
    assert not list(folder.glob("part-*.ts"))
    assert await decodes(folder / "index.m3u8")
