"""Hosts sharing one database: each one's background work touches only its own rows.

Host A is the database rows (and folder) a live media host would have; host B is a real app
with its own media volume and node_name, started against the same database.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.db import DB
from server.recordings.service import RECORDINGS
from server.recordings.store import new_id
from server.settings import Settings
from server.uploads.store import new_upload_id, new_video_id
from tests.conftest import channel_in_database, open_tempdir, wait_until


@pytest.fixture
def other_media() -> Iterator[Path]:
    """Host A's media volume."""
    path = open_tempdir("onair-media-a-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def add_recording(db: asyncpg.Connection, host: str, state: str, media: Path) -> str:
    """A recording row owned by `host`, with a file in its folder on that host's volume."""
    rid = new_id()
    folder = media / "recordings" / "hosts" / rid
    folder.mkdir(parents=True)
    (folder / "video.mp4").write_bytes(b"\0" * 1024)
    await db.execute(
        "INSERT INTO recordings (id, channel, state, host, bytes) "
        "VALUES ($1, 'hosts', $2, $3, 1024)",
        rid,
        state,
        host,
    )
    return rid


async def add_video(db: asyncpg.Connection, host: str) -> str:
    """A queued video owned by `host` (its source exists on no volume here)."""
    vid = new_video_id()
    await db.execute(
        "INSERT INTO videos (id, channel, upload_id, title, host) "
        "VALUES ($1, 'hosts', $2, 't', $3)",
        vid,
        new_upload_id(),
        host,
    )
    return vid


async def test_a_host_leaves_other_hosts_rows_alone(
    settings: Settings,
    other_media: Path,
    aiohttp_client,
    admin: dict[str, str],  # type: ignore[no-untyped-def]
) -> None:
    assert settings.database_url is not None
    await channel_in_database(settings.database_url, "hosts")
    db = await asyncpg.connect(settings.database_url)
    try:
        # Oldest first: were B to take any host's rows, it would take A's before its own.
        a_live = await add_recording(db, "node-a", "recording", other_media)
        a_ready = await add_recording(db, "node-a", "ready", other_media)
        a_video = await add_video(db, "node-a")
        b_stale = await add_recording(db, "node-b", "recording", settings.media_root)
        b_ready = await add_recording(db, "node-b", "ready", settings.media_root)
        b_video = await add_video(db, "node-b")
    finally:
        await db.close()

    # B: its volume is always over high water, so it deletes every recording of its own it may.
    b = settings.with_changes(node_name="node-b", media_high_water=0.0, media_low_water=0.0)
    client: TestClient = await aiohttp_client(create_app(b))
    app = client.app

    async def state_of(table: str, row_id: str) -> str:
        return str(await app[DB].fetchval(f"SELECT state FROM {table} WHERE id = $1", row_id))

    async def b_caught_up() -> bool:
        return (
            await state_of("recordings", b_ready) == "deleted"
            and await state_of("videos", b_video) == "failed"
        )

    await app[RECORDINGS].recovered.wait()
    # B's own crash leftover is finalized (failed: no media), and B's retention, which runs
    # at once over a volume above high water, may already have deleted it.
    assert await state_of("recordings", b_stale) in ("failed", "deleted")
    await wait_until(b_caught_up, 20, "B's retention and VOD queue to do B's work")
    assert not (settings.media_root / "recordings" / "hosts" / b_ready).exists()
    # A's live recording, A's finished recording (and its file), A's queued video: untouched.
    assert await state_of("recordings", a_live) == "recording"
    assert await state_of("recordings", a_ready) == "ready"
    assert (other_media / "recordings" / "hosts" / a_ready / "video.mp4").exists()
    assert await state_of("videos", a_video) == "queued"

    # Deleting A's recording through B works: the row is marked, A's sweep removes the folder.
    response = await client.delete(f"/api/recordings/{a_ready}", headers=admin)
    assert response.status == 204, await response.text()
    assert await state_of("recordings", a_ready) == "deleted"
    folder = other_media / "recordings" / "hosts" / a_ready
    assert folder.exists()
    old = time.time() - 7200
    os.utime(folder, (old, old))
    a = settings.with_changes(node_name="node-a", media_dir=other_media)
    a_client: TestClient = await aiohttp_client(create_app(a))
    await a_client.app[RECORDINGS].enforce_retention()
    assert not folder.exists()
