"""Fixtures for uploads: a small real clip, a channel with an upload token, a cutting proxy."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from server.settings import Settings
from tests.conftest import ADMIN, create_channel, open_tempdir


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Fast background encodes, a reserve that fits a test machine, no off-peak window."""
    return settings.with_changes(
        compress_preset="ultrafast",
        recording_reserve_bytes=10_000_000,
        compression_window="",
    )


@pytest.fixture(scope="session")
def clip() -> Iterator[Path]:
    """2 s of 854x480 H.264 + AAC in MP4 (moov at the end, as phones write it)."""
    folder = open_tempdir("onair-clip-")
    path = folder / "clip.mp4"
    subprocess.run(
        [
            "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "testsrc2=size=854x480:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-t", "2", "-c:v", "libx264", "-preset", "veryfast", "-g", "300",
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k", str(path),
        ],
        check=True,
    )  # fmt: skip
    yield path
    path.unlink(missing_ok=True)
    folder.rmdir()


@dataclass
class Channel:
    """A channel made through the API, with its upload token."""

    slug: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def uploading_channel(base: str, slug: str) -> Channel:
    """A channel made through the API, and its upload token (POST …/upload-token)."""
    await create_channel(base, slug)
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/api/channels/{slug}/upload-token", headers=ADMIN) as response,
    ):
        assert response.status == 201, await response.text()
        token = (await response.json())["token"]
    return Channel(slug, token)


class CuttingProxy:
    """A TCP proxy that drops every connection once `cut_after` request bytes went through."""

    def __init__(self, upstream_port: int, cut_after: int | None = None) -> None:
        self.upstream_port = upstream_port
        self.cut_after = cut_after
        self.forwarded = 0
        self.cuts = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: bool
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(16384):
                if upstream and self.cut_after is not None:
                    room = self.cut_after - self.forwarded
                    if len(data) >= room:
                        writer.write(data[: max(0, room)])
                        await writer.drain()
                        self.forwarded += max(0, room)
                        self.cut_after = None  # cut once; later connections pass
                        self.cuts += 1
                        raise ConnectionResetError("cut by the test")
                    self.forwarded += len(data)
                writer.write(data)
                await writer.drain()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        up = asyncio.create_task(self._pipe(client_r, server_w, True))
        down = asyncio.create_task(self._pipe(server_r, client_w, False))
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        for task in (up, down):
            task.cancel()
        await asyncio.gather(up, down, return_exceptions=True)
        for w in (client_w, server_w):
            w.transport.abort()  # a reset, not a polite close: the connection is cut

    async def __aenter__(self) -> CuttingProxy:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self.server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()
