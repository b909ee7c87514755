"""A real Onair app on a real port, in a thread of its own, for synchronous fuzzers."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import threading
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import pytest
import schemathesis
from aiohttp import web

from server.app import create_app
from server.ops.pgcluster import PgCluster
from server.settings import Settings
from tests.conftest import ADMIN_TOKEN, free_port, open_tempdir

T = TypeVar("T")

# tus PATCH bodies are raw bytes under their own media type: send them as octet-stream is sent.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class FuzzServer:
    """Where the app listens, its settings, and the secret planted beside its media volume."""

    url: str
    settings: Settings
    canary: bytes
    admin: dict[str, str]


class LoopThread:
    """An event loop in a daemon thread: schemathesis and requests block, the app must not."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-app", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = START_TIMEOUT) -> T:
        """Run `coro` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        """Stop the loop and the thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def fuzz_server(pg_cluster: PgCluster) -> Iterator[FuzzServer]:
    """One app per fuzz module: its own database, media volume and a canary file next to it."""
    root = open_tempdir("onair-fuzz-")
    media = root / "media"
    media.mkdir()
    canary = ("canary-" + secrets.token_hex(16)).encode()
    # Every place a traversal out of MEDIA_DIR (or out of live/, recordings/) could land.
    for spot in (root / "canary.txt", media / "canary.txt", root / "master.m3u8"):
        spot.write_bytes(canary)
    name = "fuzz_" + uuid.uuid4().hex[:12]
    settings = Settings(
        data_dir=root / "data",
        media_dir=media,
        http_port=free_port(),
        server_port=free_port(),
        rtmp_port=free_port(),
        database_url=pg_cluster.url(name),
        admin_token=ADMIN_TOKEN,
        hook_secret="fuzz-hook-secret-" + secrets.token_hex(8),
        secret_key="fuzz-secret-key-" + secrets.token_hex(8),
        min_free_bytes=0,
    )
    thread = LoopThread()

    async def start() -> tuple[web.AppRunner, str]:
        admin = await asyncpg.connect(pg_cluster.url("postgres"))
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        runner = web.AppRunner(create_app(settings), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        return runner, f"http://{host}:{port}"

    async def stop(runner: web.AppRunner) -> None:
        await runner.cleanup()
        admin = await asyncpg.connect(pg_cluster.url("postgres"))
        try:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    try:
        runner, url = thread.run(start())
        try:
            yield FuzzServer(url, settings, canary, {"Authorization": f"Bearer {ADMIN_TOKEN}"})
        finally:
            thread.run(stop(runner))
    finally:
        thread.close()
        shutil.rmtree(root, ignore_errors=True)
