"""Chat's REST: history pages (back, and forward within time bounds) and moderator tokens."""

from __future__ import annotations

from datetime import timedelta, timezone

from aiohttp.test_utils import TestClient

from server.channels.store import CHANNELS
from server.chat.limits import MessageIds
from server.chat.payloads import MessagePayload, UserPayload
from server.chat.store import MessageWriter, utc_from_ms
from server.db import DB


async def store(client: TestClient, slug: str, count: int) -> list[str]:
    """Write `count` messages through the batch writer; returns their ids, oldest first."""
    writer = MessageWriter(client.app[DB])
    ids: list[str] = []
    maker = MessageIds()
    for i in range(count):
        message_id, ms = maker.next()
        ids.append(message_id)
        user: UserPayload = {"id": "g-1", "name": "Ann", "role": "viewer"}
        message: MessagePayload = {
            "id": message_id,
            "channel": slug,
            "user": user,
            "text": f"t{i}",
            "ts": "",
        }
        writer.add(message, "hash", utc_from_ms(ms))
    await writer.flush()
    return ids


async def test_messages_page_backwards(client: TestClient) -> None:
    await client.app[CHANNELS].create("pages", "Pages")
    ids = await store(client, "pages", 120)
    latest = await (await client.get("/api/channels/pages/messages")).json()
    assert [m["id"] for m in latest] == ids[-50:]
    assert latest[0]["text"] == "t70" and latest[0]["user"]["name"] == "Ann"
    older = await client.get(f"/api/channels/pages/messages?before={latest[0]['id']}&limit=30")
    assert [m["id"] for m in await older.json()] == ids[40:70]
    oldest = await client.get(f"/api/channels/pages/messages?before={ids[5]}&limit=200")
    assert [m["id"] for m in await oldest.json()] == ids[:5]


async def test_messages_page_forward_within_time_bounds(client: TestClient) -> None:
    """A replay's reads: from `since` (or `after` an id) onwards, oldest first, before `until`."""
    await client.app[CHANNELS].create("replay", "Replay")
    writer = MessageWriter(client.app[DB])
    start = 1_800_000_000_000  # ms; one message a second from here
    ids = []
    for i in range(10):
        ms = start + i * 1000
        ids.append(f"{ms:012x}{i:016x}")
        user: UserPayload = {"id": "g-1", "name": "Ann", "role": "viewer"}
        message: MessagePayload = {
            "id": ids[-1], "channel": "replay", "user": user, "text": f"s{i}", "ts": "",
        }  # fmt: skip
        writer.add(message, "hash", utc_from_ms(ms))
    await writer.flush()

    def at(seconds: int) -> str:
        return utc_from_ms(start + seconds * 1000).isoformat().replace("+00:00", "Z")

    async def texts(query: str) -> list[str]:
        response = await client.get(f"/api/channels/replay/messages?{query}")
        assert response.status == 200, await response.text()
        return [m["text"] for m in await response.json()]

    assert await texts(f"since={at(2)}&until={at(7)}&limit=3") == ["s2", "s3", "s4"]
    assert await texts(f"after={ids[4]}&until={at(7)}&limit=3") == ["s5", "s6"]
    assert await texts(f"since={at(8)}") == ["s8", "s9"]
    assert await texts(f"until={at(2)}") == ["s0", "s1"]  # the latest before it
    assert await texts(f"after={ids[8]}") == ["s9"]
    # a time zone other than UTC means the same moment
    seoul = utc_from_ms(start + 9000).astimezone(timezone(timedelta(hours=9))).isoformat()
    assert await texts("since=" + seoul.replace("+", "%2B")) == ["s9"]


async def test_messages_bad_queries(client: TestClient) -> None:
    await client.app[CHANNELS].create("q", "Q")
    assert (await client.get("/api/channels/missing/messages")).status == 404
    assert (await client.get("/api/channels/Bad..slug/messages")).status == 404
    for query in (
        "limit=0", "limit=201", "limit=x", "before=zz", "before=' OR 1=1 --", "after=zz",
        f"before={'a' * 28}&after={'b' * 28}", "since=yesterday", "until=2026-12-07T20:00:00",
    ):  # fmt: skip
        response = await client.get(f"/api/channels/q/messages?{query}")
        assert response.status == 400
        assert "error" in await response.json()


async def test_moderator_tokens_admin_only(client: TestClient, admin: dict[str, str]) -> None:
    await client.app[CHANNELS].create("modded", "Modded")
    path = "/api/channels/modded/moderators"
    assert (await client.post(path, json={"name": "Zoe"})).status == 401
    assert (await client.get(path)).status == 401
    created = await client.post(path, json={"name": "Zoe"}, headers=admin)
    assert created.status == 201
    body = await created.json()
    assert body["name"] == "Zoe" and body["channel"] == "modded" and len(body["token"]) >= 22
    listed = await (await client.get(path, headers=admin)).json()
    assert [m["name"] for m in listed] == ["Zoe"] and "token" not in listed[0]
    assert (await client.post(path, json={"name": "<script>"}, headers=admin)).status == 400
    missing = await client.post("/api/channels/none/moderators", json={}, headers=admin)
    assert missing.status == 404
    assert (await client.delete(f"{path}/{body['id']}")).status == 401
    assert (await client.delete(f"{path}/{body['id']}", headers=admin)).status == 204
    assert (await client.delete(f"{path}/{body['id']}", headers=admin)).status == 404
    assert (await client.delete(f"{path}/abc", headers=admin)).status == 404
