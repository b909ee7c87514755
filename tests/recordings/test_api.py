"""The recordings API's edges: unknown things are 404, writes need the admin token."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from server.channels.store import CHANNELS
from server.db import DB
from server.recordings.service import RECORDINGS
from server.recordings.store import new_id
from transcoder.recordings import media

HEVC = media.compressed_name("hevc")


async def add(client: TestClient, state: str) -> str:
    await client.app[RECORDINGS].recovered.wait()  # start-up recovery would finalize these
    rid = new_id()
    await client.app[DB].execute(
        "INSERT INTO recordings (id, channel, state, started_at) VALUES ($1, 'api', $2, $3)",
        rid,
        state,
        datetime.now(UTC),
    )
    return rid


async def test_list_and_delete_edges(client: TestClient, admin: dict[str, str]) -> None:
    assert (await client.get("/api/channels/nobody/recordings")).status == 404
    assert (await client.get("/api/channels/..%2Fetc/recordings")).status == 404
    await client.app[CHANNELS].create("api", "Api")
    assert await (await client.get("/api/channels/api/recordings")).json() == []

    live = await add(client, "recording")
    failed = await add(client, "failed")
    listed = await (await client.get("/api/channels/api/recordings")).json()
    assert [r["id"] for r in listed] == [failed, live]  # newest first
    assert set(listed[0]) >= {
        "id",
        "state",
        "started_at",
        "duration_s",
        "bytes",
        "hls_url",
        "mp4_url",
    }
    assert listed[0]["hls_url"] is None and listed[0]["mp4_url"] is None

    assert (await client.delete(f"/api/recordings/{failed}")).status == 401
    assert (await client.delete(f"/api/recordings/{live}", headers=admin)).status == 409
    assert (await client.delete("/api/recordings/not-an-id", headers=admin)).status == 404
    assert (await client.delete(f"/api/recordings/{new_id()}", headers=admin)).status == 404
    assert (await client.delete(f"/api/recordings/{failed}", headers=admin)).status == 204
    assert (await client.get(f"/vod/api/{live}/index.m3u8")).status == 404
    assert (await client.get(f"/vod/api/{live}/secrets.txt")).status == 404


async def test_state_machine_refuses_skipping_steps(client: TestClient) -> None:
    await client.app[CHANNELS].create("api", "Api")
    rid = await add(client, "recording")

    with pytest.raises(asyncpg.CheckViolationError):
        await client.app[DB].execute("UPDATE recordings SET state = 'deleted' WHERE id = $1", rid)
    with pytest.raises(asyncpg.CheckViolationError):
        await client.app[DB].execute("UPDATE recordings SET state = 'ready' WHERE id = $1", rid)


async def test_the_download_link_outlives_the_swap_of_its_file(client: TestClient) -> None:
    """recording.mp4 serves the original, then the compressed copy, also in the moment after
    compression deleted the original and before the row says so; a resume across the swap
    (If-Range with the old validator) gets the new file whole."""
    await client.app[CHANNELS].create("api", "Api")
    rid = await add(client, "compressing")
    folder = client.app[RECORDINGS].directory("api", rid)
    folder.mkdir(parents=True)
    (folder / media.ORIGINAL).write_bytes(b"o" * 1000)
    link = f"/vod/api/{rid}/recording.mp4"
    listed = await (await client.get("/api/channels/api/recordings")).json()
    assert listed[0]["mp4_url"] == link

    first = await client.get(link, headers={"Range": "bytes=0-99"})
    assert first.status == 206 and await first.read() == b"o" * 100
    assert first.headers["Content-Range"] == "bytes 0-99/1000"
    old = {"etag": first.headers["ETag"], "date": first.headers["Last-Modified"]}
    # What compression does, in its order: the verified copy renamed in, the original
    # deleted; the row (compressed_at) is not updated yet.
    (folder / ".compress").mkdir()
    (folder / ".compress" / HEVC).write_bytes(b"c" * 600)
    os.utime(folder / ".compress" / HEVC, (time.time() + 5, time.time() + 5))
    (folder / ".compress" / HEVC).replace(folder / HEVC)
    (folder / media.ORIGINAL).unlink()

    whole = await client.get(link)
    assert whole.status == 200 and await whole.read() == b"c" * 600
    assert whole.headers["Cache-Control"] == "no-cache"
    for validator in old.values():
        resumed = await client.get(link, headers={"Range": "bytes=100-", "If-Range": validator})
        assert resumed.status == 200 and await resumed.read() == b"c" * 600, validator
    same = await client.get(
        link, headers={"Range": "bytes=100-", "If-Range": whole.headers["ETag"]}
    )
    assert same.status == 206 and await same.read() == b"c" * 500
    assert (await client.get(link, headers={"Range": "bytes=600-"})).status == 416
    head = await client.head(link)
    assert head.status == 200 and head.headers["Content-Length"] == "600"
    revalidated = await client.get(link, headers={"If-None-Match": whole.headers["ETag"]})
    assert revalidated.status == 304
    assert (await client.get(f"/vod/api/{rid}/{media.ORIGINAL}")).status == 404
    assert (await client.get(f"/vod/api/{rid}/{HEVC}")).status == 200
