"""The chat contract with two server processes of one host (ONAIR_WORKERS=2, one Redis):
clients attached to different workers see each other's messages, acks, history, bans and slow
mode. Real `onair serve` processes, as systemd's onair@ instances run them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from server.settings import Settings
from tests.chat.conftest import Chatter
from tests.conftest import ServeProcess, create_channel, create_moderator, free_port

Connect = Callable[..., Awaitable[Chatter]]


async def test_chat_contract_across_two_workers(
    chat_settings: Settings, redis_url: str, serve_process: ServeProcess, connect: Connect
) -> None:
    settings = chat_settings.with_changes(redis_url=redis_url, workers=2)
    first = await serve_process(settings)
    second = await serve_process(settings.with_changes(server_port=free_port()))
    await create_channel(first.url, "shared")
    token = await create_moderator(second.url, "shared")

    ann = await connect(first.url, "10.0.0.1")
    bob = await connect(second.url, "10.0.0.2")
    mod = await connect(second.url, "10.0.0.3", token=token)
    joined = await ann.call("join", {"channel": "shared", "name": "Ann"})
    assert joined["ok"] and joined["history"] == []
    ann_user = joined["user"]
    assert (await bob.call("join", {"channel": "shared", "name": "Bob"}))["ok"]
    assert (await mod.call("join", {"channel": "shared"}))["user"]["role"] == "moderator"
    # A name is one person's across the workers.
    dup = await connect(second.url, "10.0.0.4")
    assert (await dup.call("join", {"channel": "shared", "name": "ann"}))["error"] == "name_taken"

    # A message acknowledged on one worker arrives on the other with the same id.
    ack = await ann.call("message", {"channel": "shared", "text": "from the first"})
    assert ack["ok"]
    relayed = await bob.wait_for("message", lambda m: m["text"] == "from the first")
    assert relayed["id"] == ack["id"] and relayed["user"]["name"] == "Ann"
    await bob.call("message", {"channel": "shared", "text": "from the second"})
    await ann.wait_for("message", lambda m: m["text"] == "from the second")
    # Both workers push the room's total: three joined across them.
    await ann.wait_for("viewers", lambda p: p["count"] == 3)
    await bob.wait_for("viewers", lambda p: p["count"] == 3)

    # History on join, whichever worker took the message.
    late = await connect(first.url, "10.0.0.5")
    history = (await late.call("join", {"channel": "shared", "name": "Late"}))["history"]
    assert [m["text"] for m in history] == ["from the first", "from the second"]

    # A moderator on the second worker slows, deletes and bans for clients of the first.
    assert (await mod.call("slow_mode", {"channel": "shared", "seconds": 30}))["ok"]
    await ann.wait_for("slow_mode", lambda p: p["seconds"] == 30)
    assert (await mod.call("delete", {"channel": "shared", "id": ack["id"]}))["ok"]
    await ann.wait_for("deleted", lambda p: p["id"] == ack["id"])
    await late.wait_for("deleted", lambda p: p["id"] == ack["id"])
    assert (await mod.call("ban", {"channel": "shared", "user_id": ann_user["id"]}))["ok"]
    assert (await ann.call("message", {"channel": "shared", "text": "x"}))["error"] == "banned"
    assert (await late.call("message", {"channel": "shared", "text": "ok"}))["ok"]
    refused = await late.call("message", {"channel": "shared", "text": "again"})
    assert refused["error"] == "slow_mode"
    await bob.wait_for("message", lambda m: m["text"] == "ok")

    # A newcomer on either worker gets the same history, without the deleted message.
    for url, address in ((first.url, "10.0.0.6"), (second.url, "10.0.0.7")):
        newcomer = await connect(url, address)
        joined = await newcomer.call("join", {"channel": "shared"})
        assert [m["text"] for m in joined["history"]] == ["from the second", "ok"]
    assert first.alive and second.alive
