"""Retention by age and by water mark on a real (tmpfs) volume; never a recording in progress."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from server.channels.store import CHANNELS
from server.db import DB
from server.recordings.service import RECORDINGS
from server.recordings.store import new_id
from server.settings import Settings
from tests.recordings.conftest import tmpfs

MB = 1024 * 1024


@pytest.fixture
def media_dir() -> Iterator[Path]:
    """A 40 MiB volume of its own, so water marks are measured, not mocked."""
    with tmpfs("40m") as path:
        yield path


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_changes(
        recording_retention_days=30, media_high_water=0.70, media_low_water=0.45
    )


async def add(client: TestClient, state: str, days_old: float, mib: int) -> str:
    """A recording row in `state` with `mib` MiB on disk."""
    app = client.app
    rid = new_id()
    folder = app[RECORDINGS].directory("keep", rid)
    folder.mkdir(parents=True)
    (folder / "video.mp4").write_bytes(b"\0" * mib * MB)
    await app[DB].execute(
        "INSERT INTO recordings (id, channel, state, started_at, bytes, host) "
        "VALUES ($1, 'keep', $2, $3, $4, $5)",
        rid, state, datetime.now(UTC) - timedelta(days=days_old), mib * MB,
        app[RECORDINGS].node,
    )  # fmt: skip
    return rid


async def states(client: TestClient) -> dict[str, str]:
    rows = await client.app[DB].fetch("SELECT id, state FROM recordings")
    return {r["id"]: r["state"] for r in rows}


async def test_age_and_water_mark(client: TestClient) -> None:
    await client.app[RECORDINGS].recovered.wait()  # start-up recovery is over: rows are ours
    await client.app[CHANNELS].create("keep", "Keep")
    recording = await add(client, "recording", 60, 6)  # oldest of all, but still live
    finalizing = await add(client, "finalizing", 50, 1)
    too_old = await add(client, "ready", 40, 1)
    oldest = await add(client, "ready", 20, 6)
    older = await add(client, "compressing", 10, 6)
    newer = await add(client, "ready", 5, 6)
    newest = await add(client, "failed", 1, 1)
    # 27 MiB of 40 used: below high water (0.70 of 40 = 28), so only age deletes.
    # (The housekeeping loop may run it too: assert on states, not on who deleted.)
    await client.app[RECORDINGS].enforce_retention()
    before = await states(client)
    assert before[too_old] == "deleted"
    assert [rid for rid, state in before.items() if state == "deleted"] == [too_old]
    assert not client.app[RECORDINGS].directory("keep", too_old).exists()

    (client.app[RECORDINGS].root / "filler").write_bytes(b"\0" * 4 * MB)
    # Now 30 of 40 MiB: delete oldest first until at most 0.45 of 40 = 18 MiB are used.
    await client.app[RECORDINGS].enforce_retention()

    after = await states(client)
    assert sorted(rid for rid, state in after.items() if state == "deleted") == sorted(
        [too_old, oldest, older]
    )
    assert after[recording] == "recording" and after[finalizing] == "finalizing"
    assert after[newer] == "ready" and after[newest] == "failed"
    for rid in (oldest, older):
        assert after[rid] == "deleted"
        assert not client.app[RECORDINGS].directory("keep", rid).exists()
    assert client.app[RECORDINGS].directory("keep", recording).exists()
    metrics = await (await client.get("/metrics")).text()
    assert 'onair_recordings_deleted_total{reason="water"} ' in metrics
    assert "onair_media_free_bytes" in metrics
