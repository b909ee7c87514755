"""Bans through the admin API: listed with the user's name, lifted for every host at once,
another ban on the same user kept, and never across channels."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from server.channels import tokens
from server.channels.store import CHANNELS
from server.db import DB
from server.settings import Settings
from tests.chat.conftest import Chatter
from tests.conftest import ADMIN, Serve, wait_until

Connect = Callable[..., Awaitable[Chatter]]


async def api(method: str, url: str) -> tuple[int, object]:
    """An admin call: its status and JSON body (None for 204)."""
    async with (
        aiohttp.ClientSession(headers=ADMIN) as session,
        session.request(method, url) as response,
    ):
        body = await response.json() if response.status != 204 else None
        return response.status, body


@pytest.mark.parametrize("shared", ["redis", "memory"])
async def test_unban_lifts_a_ban_for_every_host_and_keeps_the_others(
    chat_settings: Settings, redis_url: str, serve: Serve, connect: Connect, shared: str
) -> None:
    settings = chat_settings.with_changes(redis_url=redis_url if shared == "redis" else None)
    east = await serve(settings)
    # Without Redis each process has its own state: one host is all there is.
    west = await serve(settings) if shared == "redis" else east
    await east.app[CHANNELS].create("room", "room")
    await east.app[CHANNELS].create("other", "other")
    _, token = await tokens.create(east.app[DB], "room", "moderator", "Mod")

    ann = await connect(west.url, "10.0.0.1")
    mod = await connect(east.url, "10.0.0.3", token=token)
    ann_user = (await ann.call("join", {"channel": "room", "name": "Ann"}))["user"]
    await mod.call("join", {"channel": "room"})
    assert (await ann.call("message", {"channel": "room", "text": "hello"}))["ok"]
    for seconds in (None, 600):  # a ban for good, then a second, shorter one
        ban = {"channel": "room", "user_id": ann_user["id"]}
        if seconds:
            ban["seconds"] = seconds
        assert (await mod.call("ban", ban))["ok"]
    assert (await ann.call("message", {"channel": "room", "text": "x"}))["error"] == "banned"

    listed: list[dict[str, object]] = []

    async def named() -> bool:
        # The name is the one the user last wrote under: it shows once chat's batched writer
        # has stored the message (until then the entry carries the user id alone).
        nonlocal listed
        status, body = await api("GET", f"{east.url}/api/channels/room/bans")
        assert status == 200 and isinstance(body, list) and len(body) == 2
        listed = body
        return {b["name"] for b in listed} == {"Ann"}

    await wait_until(named, 15, "the bans listed with the user's name")
    assert {b["user_id"] for b in listed} == {ann_user["id"]}
    shorter, for_good = listed  # newest first
    assert shorter["until"] is not None and for_good["until"] is None
    assert "ip_hash" not in shorter

    # A ban id is the channel's: another channel's path does not lift it.
    assert (await api("DELETE", f"{east.url}/api/channels/other/bans/{for_good['id']}"))[0] == 404
    assert (await api("DELETE", f"{east.url}/api/channels/room/bans/{for_good['id']}"))[0] == 204
    # The other ban on Ann still holds, on both hosts.
    assert (await ann.call("message", {"channel": "room", "text": "y"}))["error"] == "banned"
    assert (await api("DELETE", f"{west.url}/api/channels/room/bans/{shorter['id']}"))[0] == 204
    assert (await ann.call("message", {"channel": "room", "text": "free"}))["ok"]
    assert (await api("GET", f"{east.url}/api/channels/room/bans"))[1] == []
    assert (await api("DELETE", f"{east.url}/api/channels/room/bans/{shorter['id']}"))[0] == 404
    assert (await api("DELETE", f"{east.url}/api/channels/room/bans/x1"))[0] == 404
    async with (
        aiohttp.ClientSession() as anonymous,
        anonymous.get(f"{east.url}/api/channels/room/bans") as response,
    ):
        assert response.status == 401
