"""The server SIGKILLed mid-recording: the next start finalizes the session, nothing is lost."""

from __future__ import annotations

import signal
from pathlib import Path

import asyncpg
import pytest

from server.settings import Settings
from tests.conftest import ServeProcess, channel_in_database, running_nginx, wait_until
from tests.recordings.conftest import decodes, duration, publish_for

pytestmark = [pytest.mark.media, pytest.mark.slow]


async def test_kill_9_mid_recording_is_finalized_at_next_start(
    settings: Settings, serve_process: ServeProcess
) -> None:
    key = await channel_in_database(settings.database_url or "", "crash")
    first = await serve_process(settings)
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
            first.process.send_signal(signal.SIGKILL)
            await first.process.wait()
            publisher.send_signal(signal.SIGINT)
            await publisher.wait()

            await serve_process(settings)

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
