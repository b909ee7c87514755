"""One address cannot starve nginx: slow readers leave the hooks and other viewers served, and
per-address request rates on every path that reaches the server or PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import re
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from server.settings import Settings
from tests.conftest import (
    ServeProcess,
    create_channel,
    get_json,
    get_text,
    running_nginx,
    wait_until,
)
from tests.reliability.conftest import push_file

pytestmark = [pytest.mark.media, pytest.mark.slow]

# The old worker held 4,096 connections; a few more slow readers from one address filled it.
SLOW_READERS = 4_200
# nginx-rtmp re-checks the key every notify_update_timeout (10 s): two checks must pass.
HOLD_SECONDS = 25.0


def raise_nofile(wanted: int) -> None:
    """Let this process hold `wanted` sockets (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= wanted, "RLIMIT_NOFILE too low"


class SlowReaders:
    """TCP connections from one address, each asking for a large file and never reading it
    (a slow read): nginx holds each until send_timeout. Sockets that send nothing, half a
    header or a header promising a body never sent cost it little: when it runs short it
    closes those to reuse their slots ("worker_connections are not enough, reusing
    connections"). Every socket nginx refuses or closes is reopened, as an attacker would."""

    def __init__(self, source: str, port: int, count: int, path: str) -> None:
        self.source, self.port, self.count = source, port, count
        self.request = f"GET {path} HTTP/1.1\r\nHost: onair\r\n\r\n".encode()
        self.sockets: list[socket.socket] = []
        self.sent: list[bool] = []
        self.refused = 0  # answered 429 by the per-address connection limit

    def open_one(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # A tiny window: nginx cannot hand the whole file to the kernel and be done with it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        sock.bind((self.source, 0))
        sock.connect_ex(("127.0.0.1", self.port))  # EINPROGRESS: the kernel finishes it
        return sock

    def fill(self) -> None:
        """Open sockets until `count` are held."""
        while len(self.sockets) < self.count:
            self.sockets.append(self.open_one())
            self.sent.append(False)

    def refill(self) -> None:
        """Send the request where the connection is up; reopen what nginx refused or closed."""
        for i, sock in enumerate(self.sockets):
            if not self.sent[i]:
                try:
                    sock.send(self.request)
                    self.sent[i] = True
                except (BlockingIOError, InterruptedError):
                    pass  # still in nginx's listen backlog
                except OSError:
                    self.reopen(i)
                continue
            try:
                head = sock.recv(16, socket.MSG_PEEK)  # peek: the file is never read
            except BlockingIOError:
                continue  # no answer yet: held
            except OSError:
                head = b""  # reset
            if head.startswith(b"HTTP/1.1 200"):
                continue  # being served, slowly: held
            if head.startswith(b"HTTP/1.1 429"):
                self.refused += 1
            self.reopen(i)

    def reopen(self, i: int) -> None:
        self.sockets[i].close()
        self.sockets[i] = self.open_one()
        self.sent[i] = False

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()


@contextlib.contextmanager
def slow_readers(source: str, port: int, count: int, path: str) -> Iterator[SlowReaders]:
    """Hold `count` slow reads of `path` from `source` for the life of the block."""
    held = SlowReaders(source, port, count, path)
    try:
        held.fill()
        yield held
    finally:
        held.close()


async def healthz(base: str) -> int | str:
    """/healthz through nginx from 127.0.0.1: the status, or what went wrong."""
    try:
        timeout = aiohttp.ClientTimeout(total=5)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(f"{base}/healthz") as response,
        ):
            return response.status
    except (aiohttp.ClientError, TimeoutError) as err:
        return type(err).__name__


async def test_slow_readers_from_one_address_starve_neither_hooks_nor_others(
    settings: Settings, serve_process: ServeProcess, tiny_flv: Path
) -> None:
    raise_nofile(SLOW_READERS + 1_000)
    async with running_nginx(settings):
        server = await serve_process(settings)
        public = f"http://127.0.0.1:{settings.http_port}"
        key = await create_channel(server.url, "crowded")
        publisher = await push_file(tiny_flv, f"rtmp://127.0.0.1:{settings.rtmp_port}/live/{key}")

        async def live() -> bool:
            return bool((await get_json(f"{server.url}/api/channels/crowded"))[1]["live"])

        await wait_until(live, 30, "the channel to go live")
        _, page = await get_text(f"{server.url}/watch/crowded")
        script = re.search(r'/static/[^"]*hls[^"]*\.js', page)  # ~380 kB
        assert script, page[:500]
        answers: list[int | str] = []
        offline_at: float | None = None
        with slow_readers("127.0.0.2", settings.http_port, SLOW_READERS, script[0]) as held:
            started = time.monotonic()
            while time.monotonic() - started < HOLD_SECONDS:
                held.refill()
                answers.append(await healthz(public))
                if offline_at is None and (publisher.returncode is not None or not await live()):
                    offline_at = time.monotonic() - started
                await asyncio.sleep(1)
            held.refill()
            sent, refused = sum(held.sent), held.refused
        assert offline_at is None, (
            f"the publisher was dropped {offline_at:.0f} s into {SLOW_READERS} slow readers "
            f"(healthz answers: {answers})"
        )
        assert publisher.returncode is None
        assert answers and all(a == 200 for a in answers), answers
        # The attack was real: the requests were sent, and the per-address connection limit
        # turned away what one address asked for beyond it.
        assert sent > SLOW_READERS // 2, sent
        assert refused > 0


# Every path that reaches the server outside /api/, with a tight limit for the test (the
# defaults are in docs/RELIABILITY.md): (method, path, the template's rate knob).
FLOODED = [
    ("GET", "/watch/flood", "page"),
    ("GET", "/vod/flood/0123456789abcdef/index.mp4", "vod"),
    ("GET", "/healthz", "healthz"),
    ("HEAD", "/api/uploads/0123456789abcdef0123456789abcdef", "upload"),
    ("PATCH", "/api/uploads/0123456789abcdef0123456789abcdef", "upload"),
    ("DELETE", "/api/uploads/0123456789abcdef0123456789abcdef", "upload"),
    ("GET", "/socket.io/?EIO=4&transport=polling", "socketio"),
    ("GET", "/hls/flood/master.m3u8", "playlist"),
    ("GET", "/hls/flood/360p/index.m3u8", "playlist"),
]
TIGHT = {f"{kind}_{knob}": 2 for _, _, kind in FLOODED for knob in ("rate", "burst")}


async def statuses(base: str, method: str, path: str, source: str, count: int) -> list[int]:
    """`count` requests at once from `source`; their statuses."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0), limit=0)
    headers = {"Tus-Resumable": "1.0.0", "Upload-Offset": "0"}
    if method == "PATCH":
        headers["Content-Type"] = "application/offset+octet-stream"

    async def one(session: aiohttp.ClientSession) -> int:
        async with session.request(method, base + path, headers=headers) as response:
            await response.read()
            return response.status

    async with aiohttp.ClientSession(connector=connector) as session:
        return list(await asyncio.gather(*(one(session) for _ in range(count))))


async def test_a_flood_from_one_address_gets_429_while_another_is_served(
    settings: Settings, serve_process: ServeProcess
) -> None:
    live = settings.media_root / "live" / "flood"
    (live / "360p").mkdir(parents=True)
    (live / "master.m3u8").write_text("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n360p/index.m3u8\n")
    (live / "360p" / "index.m3u8").write_text("#EXTM3U\n#EXT-X-TARGETDURATION:2\n")
    async with running_nginx(settings, TIGHT):
        server = await serve_process(settings)
        await create_channel(server.url, "flood")
        public = f"http://127.0.0.1:{settings.http_port}"
        for method, path, _ in FLOODED:
            flood = await statuses(public, method, path, "127.0.0.2", 20)
            assert 429 in flood, (method, path, flood)
            # The same request from another address, and what the server itself answers.
            (other,) = await statuses(public, method, path, "127.0.0.1", 1)
            (direct,) = await statuses(server.url, method, path, "127.0.0.1", 1)
            assert other == direct != 429, (method, path, other, direct)
            if path.startswith(("/watch/", "/hls/", "/healthz", "/socket.io/")):
                assert other == 200, (method, path, other)  # served means served
