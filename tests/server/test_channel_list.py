"""The channel list is reused for a moment: never stale after a write, briefly after others'."""

from __future__ import annotations

import asyncio

import asyncpg
from aiohttp.test_utils import TestClient

from server.channels import store as channels
from server.channels.store import ChannelStore


async def slugs(client: TestClient) -> list[str]:
    response = await client.get("/api/channels")
    assert response.status == 200
    return [c["slug"] for c in await response.json()]


async def test_writes_through_the_server_show_at_once(
    client: TestClient, admin: dict[str, str]
) -> None:
    for slug in ("one", "two"):
        created = await client.post("/api/channels", json={"slug": slug}, headers=admin)
        assert created.status == 201
        assert slug in await slugs(client)  # the list just read does not hide it
    assert (await client.delete("/api/channels/one", headers=admin)).status == 204
    assert await slugs(client) == ["two"]
    index = await client.get("/")
    assert "one" not in await index.text()


async def test_a_list_read_during_a_write_is_not_kept(
    client: TestClient, admin: dict[str, str]
) -> None:
    # Readers in flight while channels are created: whichever lists finish after a write,
    # the next read shows the new channel.
    for n in range(10):
        readers = [asyncio.create_task(slugs(client)) for _ in range(10)]
        await asyncio.sleep(0)  # let the readers send their requests first
        created = await client.post("/api/channels", json={"slug": f"late{n}"}, headers=admin)
        assert created.status == 201
        await asyncio.gather(*readers)
        assert f"late{n}" in await slugs(client)


async def test_writes_by_another_process_show_within_the_listing_time(
    client: TestClient, database_url: str
) -> None:
    assert await slugs(client) == []  # the server now holds an (empty) list
    # As `onair channel create` on another host would: straight into the shared database.
    conn = await asyncpg.connect(database_url)
    try:
        await ChannelStore(conn).create("elsewhere", "Elsewhere")  # type: ignore[arg-type]
    finally:
        await conn.close()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + channels.LISTING_SECONDS + 5  # generous on a loaded machine
    while (found := await slugs(client)) != ["elsewhere"]:
        assert loop.time() < deadline, f"the list stayed {found}"
        await asyncio.sleep(0.1)
