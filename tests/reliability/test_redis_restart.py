"""Redis killed -9 under two `onair serve` processes: chat goes on per process, then heals."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import pytest
import redis

from server.settings import Settings
from tests.chat.conftest import Chatter
from tests.conftest import (
    RedisProcess,
    ServeProcess,
    create_channel,
    create_moderator,
    free_port,
    get_json,
    get_text,
    wait_until,
)

Connect = Callable[..., Awaitable[Chatter]]
pytestmark = pytest.mark.slow


async def stored_ids(database_url: str) -> set[str]:
    conn = await asyncpg.connect(database_url)
    try:
        return {r["id"] for r in await conn.fetch("SELECT id FROM chat_messages")}
    finally:
        await conn.close()


async def test_redis_killed_and_restarted_under_two_servers(
    settings: Settings,
    private_redis: RedisProcess,
    serve_process: ServeProcess,
    connect: Connect,
) -> None:
    base = settings.with_changes(redis_url=private_redis.url, chat_viewers_seconds=0.2)
    east = await serve_process(base)
    west = await serve_process(base.with_changes(server_port=free_port()))
    await create_channel(east.url, "r")
    token = await create_moderator(east.url, "r")
    acked: set[str] = set()

    async def say(who: Chatter, text: str) -> None:
        ack = await who.call("message", {"channel": "r", "text": text})
        assert ack["ok"], ack
        acked.add(ack["id"])

    ann = await connect(east.url, "10.1.0.1")
    amy = await connect(east.url, "10.1.0.2")
    bob = await connect(west.url, "10.1.0.3")
    eve = await connect(west.url, "10.1.0.4")
    mod = await connect(west.url, "10.1.0.5", token=token)
    for who, name in ((ann, "Ann"), (amy, "Amy"), (bob, "Bob"), (eve, "Eve"), (mod, None)):
        joined = await who.call("join", {"channel": "r", **({"name": name} if name else {})})
        assert joined["ok"], joined
    eve_id = (await eve.call("join", {"channel": "r", "name": "Eve"}))["user"]["id"]
    await say(ann, "before")
    await bob.wait_for("message", lambda m: m["text"] == "before")
    assert (await mod.call("ban", {"channel": "r", "user_id": eve_id}))["ok"]
    assert (await eve.call("message", {"channel": "r", "text": "x"}))["error"] == "banned"

    slug_dir = base.media_root / "live" / "r" / "360p"
    slug_dir.mkdir(parents=True)
    (slug_dir.parent / "master.m3u8").write_text(
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n360p/index.m3u8\n"
    )
    (slug_dir / "index.m3u8").write_text("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\ns.m4s\n")

    private_redis.kill()
    # Players keep getting playlists: viewer counting in Redis is not on their path.
    for served in (east, west):
        status, _ = await get_text(f"{served.url}/hls/r/360p/index.m3u8")
        assert status == 200
    # Each process keeps its own clients talking, with its bans still in force.
    await say(ann, "east during outage")
    await amy.wait_for("message", lambda m: m["text"] == "east during outage")
    await say(bob, "west during outage")
    await mod.wait_for("message", lambda m: m["text"] == "west during outage")
    assert (await eve.call("message", {"channel": "r", "text": "x"}))["error"] == "banned"
    late = await connect(east.url, "10.1.0.6")
    joined = await late.call("join", {"channel": "r", "name": "Late"})
    assert joined["ok"], joined
    assert "before" in [m["text"] for m in joined["history"]]
    _, health = await get_json(f"{east.url}/healthz")
    assert health["checks"]["chat_redis"].startswith("degraded")
    _, metrics = await get_text(f"{east.url}/metrics")
    assert "onair_chat_redis_degraded 1.0" in metrics

    private_redis.start()  # empty: bans, names, history flags all gone from Redis
    attempt = 0

    async def crosses_hosts() -> bool:
        nonlocal attempt
        attempt += 1
        text = f"after {attempt}"
        await say(amy, text)
        return text in bob.texts("r")

    # Rooms span both hosts again once each process has resubscribed.
    await wait_until(crosses_hosts, 60, "east's messages to reach west again", interval=1.2)
    reply = f"reply {attempt}"
    await say(bob, reply)
    await ann.wait_for("message", lambda m: m["text"] == reply, timeout=10)
    # Both processes notice the emptied Redis and write the bans back from PostgreSQL.

    async def both_back() -> bool:
        return all("chat redis back" in s.log() for s in (east, west))

    await wait_until(both_back, 20, "both servers to restore chat state into Redis")
    _, health = await get_json(f"{east.url}/healthz")
    assert health["checks"]["chat_redis"] == "ok"
    _, metrics = await get_text(f"{east.url}/metrics")
    assert "onair_chat_redis_degraded 0.0" in metrics
    with redis.Redis.from_url(private_redis.url, decode_responses=True) as conn:
        assert f"u:{eve_id}" in conn.hgetall("onair:chat:{r}:bans")
    assert (await eve.call("message", {"channel": "r", "text": "x"}))["error"] == "banned"
    evil = await connect(east.url, "10.1.0.4")
    assert (await evil.call("join", {"channel": "r", "name": "Evil"}))["error"] == "banned"
    # History for a newcomer comes back from PostgreSQL, outage messages included.
    newcomer = await connect(west.url, "10.1.0.7")
    history = [m["text"] for m in (await newcomer.call("join", {"channel": "r"}))["history"]]
    for text in ("before", "east during outage", "west during outage"):
        assert text in history
    # Nothing acknowledged was lost.

    async def all_stored() -> bool:
        return acked <= await stored_ids(base.database_url)

    await wait_until(all_stored, 10, "every acknowledged message in PostgreSQL")
    assert east.alive and west.alive
    for served in (east, west):
        log = served.log()
        assert "chat redis unreachable" in log
        assert "Traceback" not in log
