"""The recordings API's edges: unknown things are 404, writes need the admin token."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from server.channels.store import CHANNELS
from server.db import DB
from server.recordings.service import RECORDINGS
from server.recordings.store import new_id


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
