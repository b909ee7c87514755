"""50,000 chat joins, each followed by its leave, through many connections and addresses
within the join limits: the server's memory and the Redis keys it keeps stay bounded; joins
past the limits are refused `rate_limited`."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from server.settings import Settings
from tests.conftest import ServeProcess, create_channel

pytestmark = pytest.mark.slow

CONNECTIONS = 500
ADDRESSES = 100  # five connections each
JOINS_EACH = 100  # 50,000 in all
# Within the defaults: 10 joins per connection and 100 per address in 5 s.
PACE_S = 0.55


class RawSocket:
    """A Socket.IO client spoken straight over one websocket (Engine.IO 4), cheap enough to
    run hundreds of in one test process: events with acks, pings answered."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count()
        self.acks: dict[int, asyncio.Future[Any]] = {}
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, session: aiohttp.ClientSession, url: str, address: str) -> RawSocket:
        ws = await session.ws_connect(
            f"{url}/socket.io/?EIO=4&transport=websocket", headers={"X-Forwarded-For": address}
        )
        assert (await ws.receive_str()).startswith("0")  # Engine.IO open
        await ws.send_str("40")
        assert (await ws.receive_str()).startswith("40")  # Socket.IO connect
        return cls(ws)

    async def _read(self) -> None:
        async for frame in self.ws:
            data = frame.data
            if data == "2":
                await self.ws.send_str("3")
            elif data.startswith("43"):
                bracket = data.index("[")
                future = self.acks.pop(int(data[2:bracket]), None)
                if future is not None and not future.done():
                    future.set_result(json.loads(data[bracket:])[0])

    async def call(self, event: str, payload: dict[str, Any]) -> Any:
        ack_id = next(self.ids)
        future = self.acks[ack_id] = asyncio.get_running_loop().create_future()
        await self.ws.send_str(f"42{ack_id}" + json.dumps([event, payload]))
        return await asyncio.wait_for(future, 30)

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def keys(redis: aioredis.Redis) -> int:
    """Every key in the test's Redis database (atomic, unlike a SCAN racing the joins)."""
    return int(await redis.dbsize())


async def test_fifty_thousand_joins_leave_memory_and_redis_bounded(
    settings: Settings, serve_process: ServeProcess, redis_url: str
) -> None:
    settings = settings.with_changes(redis_url=redis_url)
    server = await serve_process(settings, log_level="WARNING")
    await create_channel(server.url, "lobby")
    redis = aioredis.Redis.from_url(redis_url)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        sockets = [
            await RawSocket.open(session, server.url, f"10.9.0.{n % ADDRESSES}")
            for n in range(CONNECTIONS)
        ]
        # Warm up: one round of joins, so start-up allocations are not counted as growth.
        for n, sock in enumerate(sockets):
            assert (await sock.call("join", {"channel": "lobby", "name": f"w{n}"}))["ok"]
            assert (await sock.call("leave", {"channel": "lobby"}))["ok"]
        await asyncio.sleep(PACE_S * 10)  # the warm-up's tokens come back
        rss_before = rss_kib(server.process.pid)
        refused: list[Any] = []
        peak_keys = await keys(redis)

        async def cycle(n: int, sock: RawSocket) -> None:
            loop = asyncio.get_running_loop()
            for i in range(JOINS_EACH):
                started = loop.time()
                ack = await sock.call("join", {"channel": "lobby", "name": f"u{n}x{i}"})
                if not ack["ok"]:
                    refused.append(ack)
                    return
                await sock.call("leave", {"channel": "lobby"})
                await asyncio.sleep(max(0.0, started + PACE_S - loop.time()))

        async def watch_keys() -> None:
            nonlocal peak_keys
            while True:
                peak_keys = max(peak_keys, await keys(redis))
                await asyncio.sleep(1.0)

        watcher = asyncio.create_task(watch_keys())
        await asyncio.gather(*(cycle(n, s) for n, s in enumerate(sockets)))
        watcher.cancel()
        assert refused == []
        grown_mib = (rss_kib(server.process.pid) - rss_before) / 1024
        # A note per join that nobody prunes would be 50,000 keys in Redis, and as many
        # entries in the server.
        assert peak_keys <= CONNECTIONS + 50, (peak_keys, server.log()[-2000:])
        assert await keys(redis) <= 50, server.log()[-2000:]
        assert grown_mib < 32, f"RSS grew {grown_mib:.0f} MiB over 50,000 joins"

        # Past the limits: one connection joining as fast as it can, then a crowd from one
        # address, are refused before any work is done for them.
        fast = sockets[0]
        acks = [await fast.call("join", {"channel": "lobby", "name": f"f{i}"}) for i in range(20)]
        assert {"ok": False, "error": "rate_limited"} in acks
        crowd = [await RawSocket.open(session, server.url, "10.9.9.9") for _ in range(40)]
        acks = await asyncio.gather(
            *(
                sock.call("join", {"channel": "lobby", "name": f"c{n}x{i}"})
                for n, sock in enumerate(crowd)
                for i in range(5)
            )
        )
        assert sum(not a["ok"] for a in acks) >= 50, "200 joins from one address in an instant"
        for sock in sockets + crowd:
            await sock.close()
    await redis.aclose()
    assert server.alive
