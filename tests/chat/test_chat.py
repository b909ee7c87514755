"""Chat over a real Socket.IO connection to the real app (PostgreSQL, one process)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
import pytest
import socketio
from prometheus_client import REGISTRY

from server.channels import tokens
from server.channels.store import CHANNELS
from server.chat import store as chat_store
from server.db import DB
from server.events import EVENTS, StreamEvent
from server.live.viewers import VIEWERS
from server.settings import Settings
from tests.chat.conftest import Chatter, poll
from tests.conftest import ADMIN, Running, Serve

Connect = Callable[..., Awaitable[Chatter]]
XSS = "<img src=x onerror=alert(1)>"


async def moderator_token(running: Running, slug: str) -> str:
    """A moderator token for a channel, straight from the store."""
    _, token = await tokens.create(running.app[DB], slug, "moderator", "Mod")
    return token


async def test_rooms_keep_messages_apart(
    chat_settings: Settings, serve: Serve, connect: Connect
) -> None:
    server = await serve(chat_settings)
    await server.app[CHANNELS].create("alpha", "alpha")
    await server.app[CHANNELS].create("beta", "beta")
    ann = await connect(server.url, "10.0.0.1")
    bob = await connect(server.url, "10.0.0.2")
    cat = await connect(server.url, "10.0.0.3")
    joined = await ann.call("join", {"channel": "alpha", "name": "Ann"})
    assert joined["ok"] and joined["user"]["name"] == "Ann"
    assert joined["user"]["role"] == "viewer" and joined["history"] == []
    assert joined["live"] is False and joined["viewers"] >= 1
    assert (await bob.call("join", {"channel": "alpha"}))["user"]["name"].startswith("guest-")
    assert (await cat.call("join", {"channel": "beta", "name": "Cat"}))["ok"]

    ack = await ann.call("message", {"channel": "alpha", "text": "  hello\x00 there\u202e "})
    assert ack["ok"] and isinstance(ack["id"], str)
    got = await bob.wait_for("message")
    assert got["id"] == ack["id"] and got["channel"] == "alpha"
    assert got["text"] == "hello there"  # control characters stripped
    assert got["user"] == joined["user"] and got["ts"].endswith("Z")
    await ann.wait_for("message")  # the sender sees its own message too

    # Emitted after the alpha message: once cat has this, a misrouted one would be here too.
    await bob.call("join", {"channel": "beta", "name": "Bob"})
    await bob.call("message", {"channel": "beta", "text": "beta only"})
    await cat.wait_for("message", lambda m: m["text"] == "beta only")
    assert cat.texts("alpha") == []
    assert ann.texts("beta") == []


async def test_markup_is_plain_text_end_to_end(
    chat_settings: Settings, serve: Serve, connect: Connect
) -> None:
    server = await serve(chat_settings)
    await server.app[CHANNELS].create("xss", "xss")
    ann = await connect(server.url, "10.0.0.1")
    await ann.call("join", {"channel": "xss", "name": "Ann"})
    ack = await ann.call("message", {"channel": "xss", "text": XSS})
    assert (await ann.wait_for("message"))["text"] == XSS

    async def stored() -> bool:
        query = "SELECT body FROM chat_messages WHERE id = $1"
        return bool(await server.app[DB].fetchval(query, ack["id"]) == XSS)

    await poll(stored)
    url = f"{server.url}/api/channels/xss/messages"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.content_type == "application/json"
        assert [m["text"] for m in await response.json()] == [XSS]


async def test_refusals_name_the_reason(
    chat_settings: Settings, serve: Serve, connect: Connect
) -> None:
    server = await serve(chat_settings)
    await server.app[CHANNELS].create("rules", "rules")
    ann = await connect(server.url, "10.0.0.1")
    refused = (
        REGISTRY.get_sample_value("onair_chat_messages_rejected_total", {"reason": "not_joined"})
        or 0.0
    )
    assert await ann.call("message", {"channel": "rules", "text": "hi"}) == {
        "ok": False,
        "error": "not_joined",
    }
    assert (
        REGISTRY.get_sample_value("onair_chat_messages_rejected_total", {"reason": "not_joined"})
        == refused + 1
    )
    assert (await ann.call("join", {"channel": "nope"}))["error"] == "no_channel"
    for bad in ("<b>", "x" * 25, "  ", "a\u202eb!"):
        joined = await ann.call("join", {"channel": "rules", "name": bad})
        assert joined == {"ok": False, "error": "invalid_name"}, bad
    assert (await ann.call("join", {"channel": "rules", "name": "Ann"}))["ok"]
    bob = await connect(server.url, "10.0.0.2")
    assert (await bob.call("join", {"channel": "rules", "name": "ann"}))["error"] == "name_taken"
    assert (await bob.call("join", {"channel": "rules", "name": "Bob"}))["ok"]

    for text, error in (("", "empty"), (" \x07\n ", "empty"), ("x" * 501, "too_long")):
        assert await ann.call("message", {"channel": "rules", "text": text}) == {
            "ok": False,
            "error": error,
        }
    assert (await ann.call("message", {"channel": "rules", "text": "é" * 500}))["ok"]
    assert (await ann.call("leave", {"channel": "rules"}))["ok"]
    assert (await ann.call("message", {"channel": "rules", "text": "hi"}))["error"] == "not_joined"
    # Leaving gave the name back.
    cat = await connect(server.url, "10.0.0.3")
    assert (await cat.call("join", {"channel": "rules", "name": "ANN"}))["ok"]


async def test_rate_limit_per_connection_and_per_address(
    chat_settings: Settings, serve: Serve, connect: Connect
) -> None:
    settings = chat_settings.with_changes(
        chat_rate_messages=3, chat_rate_ip_messages=4, chat_rate_seconds=60.0
    )
    server = await serve(settings)
    await server.app[CHANNELS].create("fast", "fast")
    ann = await connect(server.url, "10.0.0.1")
    await ann.call("join", {"channel": "fast", "name": "Ann"})
    results = [await ann.call("message", {"channel": "fast", "text": f"m{i}"}) for i in range(4)]
    assert [r["ok"] for r in results] == [True, True, True, False]
    assert results[3]["error"] == "rate_limited"

    # A second connection from the same address has its own bucket, but shares the address's.
    twin = await connect(server.url, "10.0.0.1")
    await twin.call("join", {"channel": "fast", "name": "Twin"})
    assert (await twin.call("message", {"channel": "fast", "text": "one"}))["ok"]
    assert (await twin.call("message", {"channel": "fast", "text": "two"}))["error"] == (
        "rate_limited"
    )
    other = await connect(server.url, "10.0.0.9")
    await other.call("join", {"channel": "fast", "name": "Other"})
    assert (await other.call("message", {"channel": "fast", "text": "fine"}))["ok"]


async def test_moderator_slow_mode_delete_and_ban(
    chat_settings: Settings, serve: Serve, connect: Connect
) -> None:
    server = await serve(chat_settings)
    await server.app[CHANNELS].create("mod", "mod")
    token = await moderator_token(server, "mod")
    mod = await connect(server.url, "10.0.0.1", token=token)
    ann = await connect(server.url, "10.0.0.2")
    bob = await connect(server.url, "10.0.0.3")
    me = await mod.call("join", {"channel": "mod"})
    assert me["user"]["role"] == "moderator" and me["user"]["name"] == "Mod"
    ann_user = (await ann.call("join", {"channel": "mod", "name": "Ann"}))["user"]
    await bob.call("join", {"channel": "mod", "name": "Bob"})

    # Viewers may not moderate.
    for event, data in (
        ("delete", {"channel": "mod", "id": "0" * 28}),
        ("ban", {"channel": "mod", "user_id": ann_user["id"]}),
        ("slow_mode", {"channel": "mod", "seconds": 5}),
    ):
        assert await bob.call(event, data) == {"ok": False, "error": "forbidden"}

    assert await mod.call("slow_mode", {"channel": "mod", "seconds": 60}) == {"ok": True}
    assert await ann.wait_for("slow_mode") == {"channel": "mod", "seconds": 60}
    assert (await ann.call("message", {"channel": "mod", "text": "first"}))["ok"]
    assert (await ann.call("message", {"channel": "mod", "text": "second"}))["error"] == (
        "slow_mode"
    )
    assert (await mod.call("message", {"channel": "mod", "text": "mods are exempt"}))["ok"]
    assert (await mod.call("message", {"channel": "mod", "text": "still exempt"}))["ok"]
    late = await connect(server.url, "10.0.0.4")
    assert (await late.call("join", {"channel": "mod"}))["slow_mode"] == 60
    await mod.call("slow_mode", {"channel": "mod", "seconds": 0})
    await ann.wait_for("slow_mode", lambda p: p["seconds"] == 0)
    assert (await ann.call("message", {"channel": "mod", "text": "again"}))["ok"]

    first = await bob.wait_for("message", lambda m: m["text"] == "first")
    assert await mod.call("delete", {"channel": "mod", "id": first["id"]}) == {"ok": True}
    assert await bob.wait_for("deleted") == {"channel": "mod", "id": first["id"]}
    again = await connect(server.url, "10.0.0.5")
    history = (await again.call("join", {"channel": "mod"}))["history"]
    assert "first" not in [m["text"] for m in history] and "again" in [m["text"] for m in history]

    assert await mod.call("ban", {"channel": "mod", "user_id": ann_user["id"]}) == {"ok": True}
    assert (await ann.call("message", {"channel": "mod", "text": "hi"}))["error"] == "banned"
    assert (await bob.call("message", {"channel": "mod", "text": "not me"}))["ok"]

    # Reconnecting, even under another name, does not lift the ban (same address).
    await ann.sio.disconnect()
    back = await connect(server.url, "10.0.0.2")
    assert await back.call("join", {"channel": "mod", "name": "Ann2"}) == {
        "ok": False,
        "error": "banned",
    }
    # Someone else, from another address, is not caught by it.
    other = await connect(server.url, "10.0.0.6")
    assert (await other.call("join", {"channel": "mod", "name": "Ann"}))["ok"]
    stored = await server.app[DB].fetchval("SELECT count(*) FROM chat_bans WHERE channel = 'mod'")
    assert stored == 1

    async def soft_deleted() -> bool:
        when = await server.app[DB].fetchval(
            "SELECT deleted_at FROM chat_messages WHERE id = $1", first["id"]
        )
        return when is not None

    await poll(soft_deleted)


async def test_moderator_tokens_are_checked_and_revocable(
    chat_settings: Settings, serve: Serve, connect: Connect
) -> None:
    server = await serve(chat_settings)
    await server.app[CHANNELS].create("one", "one")
    await server.app[CHANNELS].create("two", "two")
    moderator, token = await tokens.create(server.app[DB], "one", "moderator", "Mod")
    refused = Chatter()
    reasons: list[object] = []
    refused.sio.on("connect_error", reasons.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await refused.sio.connect(server.url, auth={"token": "nope"}, transports=["websocket"])
    assert reasons == [{"message": "invalid_token"}]
    mod = await connect(server.url, token=token)
    # A token is for one channel only.
    assert (await mod.call("join", {"channel": "two"}))["user"]["role"] == "viewer"
    assert (await mod.call("slow_mode", {"channel": "two", "seconds": 5}))["error"] == "forbidden"
    assert (await mod.call("join", {"channel": "one"}))["user"]["role"] == "moderator"
    assert await mod.call("slow_mode", {"channel": "one", "seconds": 5}) == {"ok": True}
    assert await tokens.revoke(server.app[DB], "one", moderator.id, "moderator")
    assert (await mod.call("slow_mode", {"channel": "one", "seconds": 0}))["error"] == "forbidden"


async def test_history_is_the_last_50_oldest_first(
    chat_settings: Settings, serve: Serve, connect: Connect
) -> None:
    roomy = chat_settings.with_changes(chat_rate_messages=100, chat_rate_ip_messages=100)
    server = await serve(roomy)
    await server.app[CHANNELS].create("hist", "hist")
    ann = await connect(server.url)
    await ann.call("join", {"channel": "hist", "name": "Ann"})
    for i in range(55):
        assert (await ann.call("message", {"channel": "hist", "text": f"n{i}"}))["ok"]
    bob = await connect(server.url, "10.0.0.2")
    history = (await bob.call("join", {"channel": "hist", "name": "Bob"}))["history"]
    assert [m["text"] for m in history] == [f"n{i}" for i in range(5, 55)]
    assert [m["id"] for m in history] == sorted(m["id"] for m in history)


async def test_graceful_restart_keeps_messages_and_bans(
    chat_settings: Settings, serve: Serve, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No periodic flush in this test: only the one on shutdown can store the messages.
    monkeypatch.setattr(chat_store, "FLUSH_SECONDS", 3600.0)
    first = await serve(chat_settings)
    await first.app[CHANNELS].create("keep", "keep")
    token = await moderator_token(first, "keep")
    ann = await connect(first.url, "10.0.0.1")
    mod = await connect(first.url, "10.0.0.7", token=token)
    await ann.call("join", {"channel": "keep", "name": "Ann"})
    await mod.call("join", {"channel": "keep"})
    texts = [f"kept {i}" for i in range(5)]
    for text in texts:
        assert (await ann.call("message", {"channel": "keep", "text": text}))["ok"]
    troll = await connect(first.url, "10.0.0.66")
    troll_user = (await troll.call("join", {"channel": "keep", "name": "Troll"}))["user"]
    ban = {"channel": "keep", "user_id": troll_user["id"], "seconds": 600}
    assert await mod.call("ban", ban) == {"ok": True}
    assert await first.app[DB].fetchval("SELECT count(*) FROM chat_messages") == 0
    await first.stop()

    second = await serve(chat_settings)
    bob = await connect(second.url, "10.0.0.2")
    history = (await bob.call("join", {"channel": "keep", "name": "Bob"}))["history"]
    assert [m["text"] for m in history] == texts
    back = await connect(second.url, "10.0.0.66")
    assert (await back.call("join", {"channel": "keep", "name": "Troll"}))["error"] == "banned"


async def test_viewers_and_stream_events(
    chat_settings: Settings, serve: Serve, connect: Connect
) -> None:
    server = await serve(chat_settings)
    await server.app[CHANNELS].create("show", "show")
    ann = await connect(server.url, "10.0.0.1")
    bob = await connect(server.url, "10.0.0.2")
    await ann.call("join", {"channel": "show", "name": "Ann"})
    await bob.call("join", {"channel": "show", "name": "Bob"})
    assert await ann.wait_for("viewers", lambda p: p["count"] == 2) == {
        "channel": "show",
        "count": 2,
    }
    # HLS players counted elsewhere win when there are more of them.
    server.app[VIEWERS].counts["show"] = 7
    await bob.wait_for("viewers", lambda p: p["count"] == 7)
    await ann.wait_for("viewers", lambda p: p["count"] == 7)
    seen = len(ann.events["viewers"])
    await bob.sio.disconnect()
    server.app[VIEWERS].counts["show"] = 0
    await ann.wait_for("viewers", lambda p: p["count"] == 1)
    assert len(ann.events["viewers"]) == seen + 1  # only when the count changes

    await server.app[EVENTS].publish(StreamEvent("show", True))
    assert await ann.wait_for("stream") == {"channel": "show", "live": True}
    await server.app[EVENTS].publish(StreamEvent("other", False))
    await server.app[EVENTS].publish(StreamEvent("show", False))
    await ann.wait_for("stream", lambda p: p["live"] is False)
    assert ann.events["stream"] == [
        {"channel": "show", "live": True},
        {"channel": "show", "live": False},
    ]


async def test_addresses_are_stored_only_as_keyed_hashes(
    chat_settings: Settings, serve: Serve, connect: Connect
) -> None:
    server = await serve(chat_settings)
    await server.app[CHANNELS].create("priv", "priv")
    ann = await connect(server.url, "203.0.113.77")
    await ann.call("join", {"channel": "priv", "name": "Ann"})
    ack = await ann.call("message", {"channel": "priv", "text": "hello"})

    async def row_text() -> str | None:
        row = await server.app[DB].fetchrow("SELECT * FROM chat_messages WHERE id = $1", ack["id"])
        return None if row is None else " ".join(str(v) for v in row.values())

    await poll(lambda: _is_not_none(row_text()))
    stored = await row_text()
    assert stored is not None and "203.0.113.77" not in stored


async def _is_not_none(value: Awaitable[object]) -> bool:
    return (await value) is not None


async def test_metrics_count_chat(chat_settings: Settings, serve: Serve, connect: Connect) -> None:
    server = await serve(chat_settings)
    await server.app[CHANNELS].create("count", "count")
    before = REGISTRY.get_sample_value("onair_chat_messages_accepted_total") or 0.0
    ann = await connect(server.url)
    await ann.call("join", {"channel": "count", "name": "Ann"})
    await ann.call("message", {"channel": "count", "text": "one"})
    async with aiohttp.ClientSession() as http, http.get(f"{server.url}/metrics") as response:
        text = await response.text()
    for name in (
        "onair_chat_connected_clients",
        "onair_chat_messages_accepted_total",
        "onair_chat_messages_rejected_total",
        "onair_chat_fanout_seconds_bucket",
    ):
        assert name in text
    assert REGISTRY.get_sample_value("onair_chat_messages_accepted_total") == before + 1


async def test_a_moderator_deletes_only_in_the_channel_they_moderate(
    chat_settings: Settings, serve: Serve, connect: Connect
) -> None:
    server = await serve(chat_settings)
    await server.app[CHANNELS].create("home", "home")
    await server.app[CHANNELS].create("away", "away")
    mod = await connect(server.url, "10.0.0.1", token=await moderator_token(server, "home"))
    assert (await mod.call("join", {"channel": "home"}))["user"]["role"] == "moderator"
    writer = await connect(server.url, "10.0.0.2")
    await writer.call("join", {"channel": "away", "name": "Writer"})
    target = await writer.call("message", {"channel": "away", "text": "not yours to delete"})
    # The power is checked in "home"; the message lives in "away".
    assert await mod.call("delete", {"channel": "home", "id": target["id"]}) == {"ok": True}
    mine = await writer.call("message", {"channel": "away", "text": "after the attempt"})
    db = server.app[DB]

    async def stored(message_id: str) -> bool:
        return bool(await db.fetchval("SELECT 1 FROM chat_messages WHERE id = $1", message_id))

    await poll(lambda: stored(mine["id"]))  # written after the delete was queued
    assert not writer.events["deleted"]
    url = f"{server.url}/api/channels/away/messages"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        texts = [m["text"] for m in await response.json()]
    assert texts == ["not yours to delete", "after the attempt"]


async def test_a_revoked_moderator_speaks_on_as_a_viewer(
    chat_settings: Settings, serve: Serve, connect: Connect
) -> None:
    server = await serve(chat_settings)
    await server.app[CHANNELS].create("rev", "rev")
    moderator, token = await tokens.create(server.app[DB], "rev", "moderator", "Mod")
    mod = await connect(server.url, "10.0.0.1", token=token)
    other = await connect(server.url, "10.0.0.2", token=await moderator_token(server, "rev"))
    ann = await connect(server.url, "10.0.0.3")
    assert (await mod.call("join", {"channel": "rev"}))["user"]["role"] == "moderator"
    await other.call("join", {"channel": "rev", "name": "Other"})
    await ann.call("join", {"channel": "rev", "name": "Ann"})
    url = f"{server.url}/api/channels/rev/moderators/{moderator.id}"
    async with aiohttp.ClientSession() as session, session.delete(url, headers=ADMIN) as response:
        assert response.status == 204

    # Still connected, no longer a moderator: no badge on what they say now.
    assert (await mod.call("message", {"channel": "rev", "text": "after"}))["ok"]
    seen = await ann.wait_for("message", lambda m: m["text"] == "after")
    assert seen["user"]["role"] == "viewer" and seen["user"]["name"] == "Mod"
    assert not seen["user"]["id"].startswith("m-")
    # Slow mode now holds them back like anyone.
    assert await other.call("slow_mode", {"channel": "rev", "seconds": 60}) == {"ok": True}
    await mod.wait_for("slow_mode", lambda p: p["seconds"] == 60)
    assert (await mod.call("message", {"channel": "rev", "text": "one"}))["ok"]
    assert (await mod.call("message", {"channel": "rev", "text": "two"}))["error"] == "slow_mode"
    # And a ban by the id they now speak under reaches them.
    await other.call("slow_mode", {"channel": "rev", "seconds": 0})
    await mod.wait_for("slow_mode", lambda p: p["seconds"] == 0)
    banned = {"channel": "rev", "user_id": seen["user"]["id"]}
    assert await other.call("ban", banned) == {"ok": True}
    assert (await mod.call("message", {"channel": "rev", "text": "three"}))["error"] == "banned"
    # Joining again does not bring the badge back.
    again = await mod.call("join", {"channel": "rev", "name": "Mod"})
    assert again == {"ok": False, "error": "banned"}


async def test_an_ipv6_ban_holds_across_the_banned_subscribers_64(
    chat_settings: Settings, serve: Serve, connect: Connect
) -> None:
    server = await serve(chat_settings)
    await server.app[CHANNELS].create("six", "six")
    mod = await connect(server.url, "10.0.0.1", token=await moderator_token(server, "six"))
    await mod.call("join", {"channel": "six"})
    troll = await connect(server.url, "2001:db8:5:6::1")
    user = (await troll.call("join", {"channel": "six", "name": "Troll"}))["user"]
    assert await mod.call("ban", {"channel": "six", "user_id": user["id"]}) == {"ok": True}
    # Another address of the same /64, another name: still the banned subscriber.
    again = await connect(server.url, "2001:db8:5:6:ffff:1:2:3")
    assert await again.call("join", {"channel": "six", "name": "Fresh"}) == {
        "ok": False,
        "error": "banned",
    }
    # The neighbouring /64 is someone else.
    neighbour = await connect(server.url, "2001:db8:5:7::1")
    assert (await neighbour.call("join", {"channel": "six", "name": "Fresh"}))["ok"]
