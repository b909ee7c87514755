"""One background encoder at a time: recordings compression and VOD jobs share one slot."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

import asyncpg
import pytest

from server.app import create_app
from server.db import DB
from server.recordings.service import RECORDINGS
from server.recordings.store import new_id
from server.settings import Settings
from server.uploads.service import UPLOADS
from server.uploads.store import new_upload_id, new_video_id
from tests.conftest import channel_in_database, ffmpeg_pids, wait_until
from tests.recordings.conftest import make_part
from transcoder.recordings import media

pytestmark = [pytest.mark.media, pytest.mark.slow]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Fast background encodes, a reserve that fits a test machine, no off-peak window."""
    return settings.with_changes(
        compress_preset="ultrafast", recording_reserve_bytes=10_000_000, compression_window=""
    )


def encoders(rid: str, vid: str) -> set[str]:
    """Which background jobs have an FFmpeg running now: "compress" and "vod"."""
    running = set()
    if ffmpeg_pids(f"onair-recording-{rid}"):
        running.add("compress")
    if ffmpeg_pids(f"onair-video-{vid}"):
        running.add("vod")
    return running


async def test_compression_and_a_vod_job_offered_at_once_never_encode_together(
    settings: Settings,
    aiohttp_client,  # type: ignore[no-untyped-def]
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.INFO)
    media_dir = settings.media_root
    assert settings.database_url is not None
    await channel_in_database(settings.database_url, "both")
    rid = new_id()
    folder = media_dir / "recordings" / "both" / rid
    folder.mkdir(parents=True)
    await make_part(folder / "part-0001.ts", 20, size="640x360")
    await media.finalize(folder, media.Tools(), "test")
    clip = tmp_path / "upload.ts"
    await make_part(clip, 20, size="854x480")
    uid, vid = new_upload_id(), new_video_id()
    (media_dir / "uploads" / uid).mkdir(parents=True)
    shutil.copy(clip, media_dir / "uploads" / uid / "data")

    # Both jobs wait before the server starts, so both queues see work at the same instant.
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(
            "INSERT INTO recordings (id, channel, state, host) VALUES ($1, 'both', "
            "'compressing', $2)",
            rid, settings.node_name,
        )  # fmt: skip
        size = clip.stat().st_size
        await conn.execute(
            "INSERT INTO uploads (id, channel, state, length, received, title, host, video_id) "
            "VALUES ($1, 'both', 'done', $2, $2, 'Upload', $3, $4)",
            uid, size, settings.node_name, vid,
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO videos (id, channel, upload_id, title, duration_s, width, height, "
            "source_bytes, host) VALUES ($1, 'both', $2, 'Upload', 20, 854, 480, $3, $4)",
            vid, uid, size, settings.node_name,
        )  # fmt: skip
    finally:
        await conn.close()
    app = create_app(settings)
    seen: list[set[str]] = []

    async def sample() -> None:
        while True:
            seen.append(await asyncio.to_thread(encoders, rid, vid))
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    try:
        await aiohttp_client(app)

        async def both_done() -> bool:
            recording = await app[DB].fetchval("SELECT state FROM recordings WHERE id = $1", rid)
            video = await app[DB].fetchval("SELECT state FROM videos WHERE id = $1", vid)
            return recording == "ready" and video == "ready"

        await wait_until(both_done, 240, "the compression and the VOD job to finish")
    finally:
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
    assert {"compress"} in seen and {"vod"} in seen
    assert all(len(kinds) <= 1 for kinds in seen), "two background encoders ran at once"
    # The second starts as soon as the first ends, not at the next poll of its queue.
    events = {
        r.getMessage().split(" channel=")[0]: r.created
        for r in caplog.records
        if r.name in ("onair.recordings", "onair.uploads")
    }
    if events["compression started"] < events["video transcode started"]:
        first_end, second_start = events["compression done"], events["video transcode started"]
    else:
        first_end, second_start = events["video ready"], events["compression started"]
    assert second_start - first_end < 2.0
    assert app[RECORDINGS] is not None and app[UPLOADS] is not None
