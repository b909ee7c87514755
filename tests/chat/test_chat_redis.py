"""Two server processes' worth of apps sharing one redis-server: rooms, names, bans, history."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

from server.channels import tokens
from server.channels.store import CHANNELS
from server.db import DB
from server.settings import Settings
from tests.chat.conftest import Chatter
from tests.conftest import Serve

Connect = Callable[..., Awaitable[Chatter]]


async def test_two_hosts_share_rooms_through_redis(
    chat_settings: Settings, redis_url: str, serve: Serve, connect: Connect
) -> None:
    settings = chat_settings.with_changes(redis_url=redis_url)
    east = await serve(settings)
    west = await serve(settings)
    await east.app[CHANNELS].create("shared", "shared")
    _, token = await tokens.create(east.app[DB], "shared", "moderator", "Mod")

    ann = await connect(east.url, "10.0.0.1")
    bob = await connect(west.url, "10.0.0.2")
    mod = await connect(west.url, "10.0.0.3", token=token)
    ann_user = (await ann.call("join", {"channel": "shared", "name": "Ann"}))["user"]
    await bob.call("join", {"channel": "shared", "name": "Bob"})
    await mod.call("join", {"channel": "shared"})
    # Names are unique across hosts.
    dup = await connect(west.url, "10.0.0.4")
    assert (await dup.call("join", {"channel": "shared", "name": "ann"}))["error"] == "name_taken"

    ack = await ann.call("message", {"channel": "shared", "text": "from east"})
    relayed = await bob.wait_for("message", lambda m: m["text"] == "from east")
    assert relayed["id"] == ack["id"] and relayed["user"]["name"] == "Ann"
    await bob.call("message", {"channel": "shared", "text": "from west"})
    await ann.wait_for("message", lambda m: m["text"] == "from west")
    # Every host pushes the room's total (3 joined over both hosts, plus dup's none).
    await ann.wait_for("viewers", lambda p: p["count"] == 3)
    await bob.wait_for("viewers", lambda p: p["count"] == 3)

    # History on join comes from Redis, whichever host wrote it.
    late = await connect(east.url, "10.0.0.5")
    history = (await late.call("join", {"channel": "shared", "name": "Late"}))["history"]
    assert [m["text"] for m in history] == ["from east", "from west"]

    # A moderator on the west host bans, deletes and slows down for both hosts.
    assert (await mod.call("slow_mode", {"channel": "shared", "seconds": 30}))["ok"]
    await ann.wait_for("slow_mode", lambda p: p["seconds"] == 30)
    assert (await mod.call("delete", {"channel": "shared", "id": ack["id"]}))["ok"]
    await ann.wait_for("deleted", lambda p: p["id"] == ack["id"])
    assert (await mod.call("ban", {"channel": "shared", "user_id": ann_user["id"]}))["ok"]
    assert (await ann.call("message", {"channel": "shared", "text": "x"}))["error"] == "banned"
    assert (await late.call("message", {"channel": "shared", "text": "ok"}))["ok"]
    assert (await late.call("message", {"channel": "shared", "text": "again"}))["error"] == (
        "slow_mode"
    )
    again = await connect(west.url, "10.0.0.6")
    history = (await again.call("join", {"channel": "shared", "name": "Again"}))["history"]
    assert [m["text"] for m in history] == ["from west", "ok"]


async def test_redis_history_survives_restart(
    chat_settings: Settings, redis_url: str, serve: Serve, connect: Connect
) -> None:
    settings = chat_settings.with_changes(redis_url=redis_url)
    first = await serve(settings)
    await first.app[CHANNELS].create("again", "again")
    ann = await connect(first.url)
    await ann.call("join", {"channel": "again", "name": "Ann"})
    for text in ("a", "b", "c"):
        assert (await ann.call("message", {"channel": "again", "text": text}))["ok"]
    await first.stop()
    stored = await _count(settings)
    assert stored == 3
    second = await serve(settings)
    bob = await connect(second.url, "10.0.0.2")
    history = (await bob.call("join", {"channel": "again", "name": "Ann"}))["history"]
    assert [m["text"] for m in history] == ["a", "b", "c"]  # Ann's name came free on stop


async def _count(settings: Settings) -> int:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM chat_messages"))
    finally:
        await conn.close()
