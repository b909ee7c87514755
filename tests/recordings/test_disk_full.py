"""A full media volume: recording stops cleanly, live goes on, recording resumes with space."""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from server.channels.store import CHANNELS
from server.db import DB
from server.recordings.service import RECORDINGS
from tests.conftest import LiveStack, wait_until
from tests.recordings.conftest import decodes, publish_for, tmpfs

pytestmark = [pytest.mark.media, pytest.mark.slow]
MB = 1024 * 1024


@pytest.fixture
def media_dir() -> Iterator[Path]:
    """A 48 MiB media volume: live ladder and recordings on the same small disk."""
    with tmpfs("48m") as path:
        yield path


async def text(stack: LiveStack, path: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(stack.http + path) as response:
        return await response.text() if response.status == 200 else ""


def last_segment(playlist: str) -> str | None:
    lines = [ln for ln in playlist.splitlines() if ln and not ln.startswith("#")]
    return lines[-1] if lines else None


async def test_full_disk_stops_recording_not_live_and_space_brings_it_back(
    live_stack: LiveStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="onair.recordings")
    app = live_stack.app
    _, key = await app[CHANNELS].create("full", "Full")
    publisher = await publish_for(live_stack.rtmp(key), 180)
    root = live_stack.settings.media_root
    folder: Path | None = None

    async def recording() -> bool:
        nonlocal folder
        recorder = app[RECORDINGS].active.get("full")
        if recorder is None:
            return False
        folder = recorder.directory
        part = folder / "part-0001.ts"
        return part.exists() and part.stat().st_size > 100_000

    await wait_until(recording, 60, "the recording to start")
    assert folder is not None

    rungs: list[str] = []

    async def live_rung() -> bool:
        nonlocal rungs
        rungs = re.findall(
            r"^(\w+/index\.m3u8)$", await text(live_stack, "/hls/full/master.m3u8"), re.M
        )
        return bool(rungs) and "#EXTINF" in await text(live_stack, f"/hls/full/{rungs[0]}")

    await wait_until(live_rung, 120, "the live ladder")
    rung = rungs[0]

    filler = root / "filler"
    free = shutil.disk_usage(root).free
    filler.write_bytes(b"\0" * (free - 5 * MB))  # leave less than the 10 MB reserve

    async def paused() -> bool:
        recorder = app[RECORDINGS].active["full"]
        metrics = await text(live_stack, "/metrics")
        return (
            recorder.state == "disk_full"
            and 'onair_recordings_disk_full{channel="full"} 1.0' in metrics
        )

    await wait_until(paused, 30, "recording to stop on a full disk")
    assert "recording paused: disk full channel=full" in caplog.text
    assert not (folder / "part-0002.ts").exists()

    seen = last_segment(await text(live_stack, f"/hls/full/{rung}"))

    async def live_goes_on() -> bool:
        now = last_segment(await text(live_stack, f"/hls/full/{rung}"))
        return now is not None and now != seen

    await wait_until(live_goes_on, 30, "new live segments while the disk is full")
    assert publisher.returncode is None

    filler.unlink()

    async def resumed() -> bool:
        part = folder / "part-0002.ts"
        return part.exists() and part.stat().st_size > 100_000

    await wait_until(resumed, 30, "recording to resume into a new part")
    assert "recording resumed channel=full" in caplog.text

    publisher.send_signal(signal.SIGINT)
    await asyncio.wait_for(publisher.wait(), 15)

    async def finalized() -> bool:
        # ready: finalized and compressed, so no file is replaced while we decode
        state = await app[DB].fetchval("SELECT state FROM recordings WHERE channel = 'full'")
        return state == "ready"

    await wait_until(finalized, 90, "the recording to be finalized")
    assert await decodes(folder / "index.m3u8")
