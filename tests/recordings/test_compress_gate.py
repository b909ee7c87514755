"""Compression yields to live: paused while a channel is live and CPU is short, then finishes."""

from __future__ import annotations

import asyncio
import logging
import signal

import pytest
from prometheus_client import REGISTRY

from server.background.slot import ENCODER
from server.channels.store import CHANNELS
from server.db import DB
from server.live.ladders import LADDERS
from server.recordings.service import RECORDINGS
from server.recordings.store import new_id
from server.settings import Settings
from tests.conftest import LiveStack, wait_until
from tests.recordings.conftest import make_part, publish_for
from transcoder.recordings import media

pytestmark = [pytest.mark.media, pytest.mark.slow]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Always in the window (a job may start while live), and a margin no 2-core box meets
    # while a ladder runs: the job must pause as soon as it sees the live load.
    return settings.with_changes(compression_window="00:00-24:00", compress_live_margin=10)


async def test_compression_pauses_while_live_is_short_of_cpu(
    live_stack: LiveStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="onair.recordings")
    app = live_stack.app
    state = app[RECORDINGS]
    await state.recovered.wait()
    _, key = await app[CHANNELS].create("gate", "Gate")
    rid = new_id()
    folder = state.directory("gate", rid)
    folder.mkdir(parents=True)
    # Long enough that compressing it takes several gate ticks even on an idle fast box (a
    # 30 s part compressed in 4.6 s here once: it finished before the gauge could be seen).
    await make_part(folder / "part-0001.ts", 90, size="640x360")
    await media.finalize(folder, state.tools, "test")

    publisher = await publish_for(live_stack.rtmp(key), 180)

    async def ladder_running() -> bool:
        return "gate" in app[LADDERS].running()

    await wait_until(ladder_running, 60, "the live ladder")
    await app[DB].execute(
        "INSERT INTO recordings (id, channel, state, host) VALUES ($1, 'gate', 'compressing', $2)",
        rid,
        state.node,
    )
    app[ENCODER].wake()

    async def paused() -> bool:
        return REGISTRY.get_sample_value("onair_recordings_compress_paused") == 1

    await wait_until(paused, 60, "the compression job to pause for live")
    assert "compression paused for live channel=gate" in caplog.text
    publisher.send_signal(signal.SIGINT)
    await asyncio.wait_for(publisher.wait(), 15)

    async def ready() -> bool:
        return await app[DB].fetchval("SELECT state FROM recordings WHERE id = $1", rid) == "ready"

    await wait_until(ready, 120, "compression to resume and finish once live ended")
    assert "compression resumed channel=gate" in caplog.text
    assert media.media_name(folder) == media.compressed_name("hevc")
