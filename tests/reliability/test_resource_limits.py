"""Resource limits: a low RLIMIT_NOFILE, and many players and chatters at once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from server.settings import Settings
from tests.chat.conftest import Chatter
from tests.conftest import ServeProcess, create_channel, get_json, wait_until
from tests.reliability.conftest import open_fds

Connect = Callable[..., Awaitable[Chatter]]
pytestmark = pytest.mark.slow

NOFILE = 200


async def hold_connections(port: int, count: int) -> list[asyncio.StreamWriter]:
    """Open `count` idle TCP connections (each one a descriptor in the server once accepted)."""
    writers = []
    for _ in range(count):
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writers.append(writer)
    return writers


async def try_get(url: str) -> int | str:
    """The status, or the kind of failure a client would see."""
    try:
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
            await response.read()
            return response.status
    except (aiohttp.ClientError, TimeoutError) as err:
        return type(err).__name__


async def test_low_descriptor_limit_sheds_connections_and_recovers(
    settings: Settings, serve_process: ServeProcess
) -> None:
    server = await serve_process(settings, nofile=NOFILE)
    await create_channel(server.url, "fd")
    idle_fds = open_fds(server.process.pid)
    assert idle_fds < NOFILE // 2, idle_fds
    # Twice the limit in idle connections: the server runs out of descriptors.
    held = await hold_connections(settings.server_port, 2 * NOFILE)

    async def saturated() -> bool:
        return open_fds(server.process.pid) >= NOFILE - 5

    await wait_until(saturated, 20, "the server to reach its descriptor limit")
    during = await asyncio.gather(*(try_get(f"{server.url}/api/channels") for _ in range(20)))
    assert server.alive
    assert all(r in (200, 503) or isinstance(r, str) for r in during), during
    for writer in held:
        writer.close()

    async def recovered() -> bool:
        status, body = await get_json(f"{server.url}/api/channels")
        return status == 200 and [c["slug"] for c in body] == ["fd"]

    await wait_until(recovered, 30, "the API to answer again")
    statuses = await asyncio.gather(*(try_get(f"{server.url}/api/channels/fd") for _ in range(50)))
    assert statuses == [200] * 50
    assert server.alive
    log = server.log()
    assert not [ln for ln in log.splitlines() if "logger=onair" in ln and "Traceback" in ln]


# CI's scaled figure; bench/soak.py runs the full 1,000 players and 500 chatters.
PLAYERS = 200
CHATTERS = 50
LOAD_SECONDS = 10.0
MASTER = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\n360p/index.m3u8\n"
MEDIA = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg_1.m4s\n"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_players_and_chatters_at_once_get_no_errors_in_bounded_memory(
    settings: Settings, serve_process: ServeProcess, connect: Connect
) -> None:
    settings = settings.with_changes(viewer_session_seconds=2.0, chat_rate_ip_messages=10_000)
    server = await serve_process(settings, log_level="WARNING")
    await create_channel(server.url, "busy")
    folder = settings.media_root / "live" / "busy" / "360p"
    folder.mkdir(parents=True)
    (folder.parent / "master.m3u8").write_text(MASTER)
    (folder / "index.m3u8").write_text(MEDIA)
    chatters = [await connect(server.url, f"10.5.0.{i % 250}") for i in range(CHATTERS)]
    for i, chatter in enumerate(chatters):
        assert (await chatter.call("join", {"channel": "busy", "name": f"c{i}"}))["ok"]
    rss_before = rss_kib(server.process.pid)
    failures: list[object] = []
    fetches = acks = 0
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + LOAD_SECONDS

    async def player(session: aiohttp.ClientSession, n: int) -> None:
        nonlocal fetches
        headers = {"User-Agent": f"player-{n}", "X-Forwarded-For": f"10.6.{n // 250}.{n % 250}"}
        path = "master.m3u8"
        while loop.time() < stop_at:
            async with session.get(f"{server.url}/hls/busy/{path}", headers=headers) as response:
                await response.read()
                if response.status != 200:
                    failures.append(("player", response.status))
            fetches += 1
            path = "360p/index.m3u8"
            await asyncio.sleep(1.0)  # a player refreshes a live playlist about once a segment

    async def talker(chatter: Chatter, n: int) -> None:
        nonlocal acks
        while loop.time() < stop_at:
            ack = await chatter.call("message", {"channel": "busy", "text": f"hi from {n}"})
            if not ack.get("ok"):
                failures.append(("chat", ack))
            acks += 1
            await asyncio.sleep(2.0)

    connector = aiohttp.TCPConnector(limit=PLAYERS)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(
            *(player(session, n) for n in range(PLAYERS)),
            *(talker(c, n) for n, c in enumerate(chatters)),
        )
    assert failures == []
    assert fetches >= PLAYERS * (LOAD_SECONDS - 2) and acks >= CHATTERS * 3, (fetches, acks)
    # Every chatter saw the others' messages (the room fans out to all 50).
    assert min(len(c.texts("busy")) for c in chatters) >= acks * 0.9
    grown_mib = (rss_kib(server.process.pid) - rss_before) / 1024
    assert grown_mib < 64, f"RSS grew {grown_mib:.0f} MiB under load"

    async def sessions_expired() -> bool:
        _, body = await get_json(f"{server.url}/api/channels/busy")
        return int(body["viewers"]) <= CHATTERS  # only the chat members are left

    await wait_until(sessions_expired, 20, "the players' viewer sessions to expire")
    assert server.alive
