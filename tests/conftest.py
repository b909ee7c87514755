"""Fixtures that start real processes (PostgreSQL, Redis, the app, nginx, FFmpeg) on free
ports and poll until they are ready, and the helpers every suite shares.

A server under test runs one of two ways: in this process (`serve`, `client`, `live_stack`:
aiohttp's TestServer around create_app, so a test can look at the app) or as its own process
(`serve_process`: `onair serve` as systemd runs it, with its log in a file). The process
helpers (ports, folders, /proc, Redis, nginx) are bench/harness.py's, shared with the benches.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bench.harness import (
    RedisProcess,
    answers,
    descendants,
    ffmpeg_pids,
    free_port,
    open_tempdir,
    running_nginx,
    start_serve,
    stop_process,
    wait_until,
)
from server.app import create_app
from server.channels.store import ChannelStore
from server.db import migrate
from server.ops.pgcluster import PgCluster
from server.settings import Settings

__all__ = [
    "RedisProcess",
    "answers",
    "descendants",
    "ffmpeg_pids",
    "free_port",
    "open_tempdir",
    "running_nginx",
    "stop_process",
    "wait_until",
]

ADMIN_TOKEN = "test-admin-token-" + secrets.token_hex(8)
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


# -- PostgreSQL, Redis, settings -------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One private PostgreSQL for the whole run, on its own event loop."""
    root = open_tempdir("onair-pg-")
    cluster = PgCluster(root / "cluster")
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(cluster.start())
        yield cluster
    finally:
        loop.run_until_complete(cluster.stop())
        loop.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def database_url(pg_cluster: PgCluster) -> AsyncIterator[str]:
    """A fresh, empty database per test, dropped afterwards."""
    name = "t_" + uuid.uuid4().hex[:12]
    admin = await asyncpg.connect(pg_cluster.url("postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield pg_cluster.url(name)
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """One redis-server for the run (a test that kills Redis starts its own)."""
    server = RedisProcess()
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The shared redis-server, emptied for this test."""
    import redis

    with redis.Redis.from_url(redis_server) as conn:
        conn.flushall()
    return redis_server


@pytest.fixture
def media_dir() -> Iterator[Path]:
    """A media volume folder readable by nginx's workers."""
    path = open_tempdir("onair-media-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def settings(database_url: str, media_dir: Path) -> Settings:
    """Settings for an app under test: real database, private folders, known secrets."""
    return Settings(
        data_dir=media_dir.parent / (media_dir.name + "-data"),
        media_dir=media_dir,
        http_host="127.0.0.1",
        http_port=free_port(),
        server_port=free_port(),
        rtmp_port=free_port(),
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        hook_secret="test-hook-secret-" + secrets.token_hex(8),
        secret_key="test-secret-key-" + secrets.token_hex(8),
        min_free_bytes=0,
    )


@pytest.fixture
def admin() -> dict[str, str]:
    """Headers that carry the admin token."""
    return dict(ADMIN)


@pytest.fixture
def onair_env(database_url: str) -> dict[str, str]:
    """Environment for running the `onair` command against the test database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONAIR_")}
    env["ONAIR_DATABASE_URL"] = database_url
    return env


# -- the server in this process ----------------------------------------------------------------


@pytest.fixture
async def client(settings: Settings, aiohttp_client) -> TestClient:  # type: ignore[no-untyped-def]
    """The real app (migrations, pool) behind aiohttp's test client, for request-level tests.

    `settings` comes first so the database outlives the app on the way down.
    """
    return await aiohttp_client(create_app(settings))


@dataclass
class Running:
    """An app served in this process on a real loopback port."""

    app: web.Application
    server: TestServer
    url: str

    async def stop(self) -> None:
        """Graceful stop: what `onair serve` does on SIGTERM."""
        await self.server.close()


Serve = Callable[..., Awaitable[Running]]


@pytest.fixture
async def serve(aiohttp_server) -> AsyncIterator[Serve]:  # type: ignore[no-untyped-def]
    """Start the real app on a port (a free one unless given); all are stopped at the end."""

    async def start(settings: Settings, port: int | None = None) -> Running:
        app = create_app(settings)
        server = await aiohttp_server(app, port=port or free_port(), shutdown_timeout=5)
        return Running(app, server, f"http://127.0.0.1:{server.port}")

    yield start


@dataclass
class LiveStack:
    """A real server on settings.server_port behind a real nginx-rtmp, for media tests."""

    app: web.Application
    settings: Settings
    nginx_prefix: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.settings.http_port}"

    def rtmp(self, name: str) -> str:
        return f"rtmp://127.0.0.1:{self.settings.rtmp_port}/live/{name}"


@pytest.fixture
async def live_stack(settings: Settings, serve: Serve) -> AsyncIterator[LiveStack]:
    """The app on settings.server_port with nginx in front of it."""
    running = await serve(settings, port=settings.server_port)
    async with running_nginx(settings) as prefix:
        yield LiveStack(running.app, settings, prefix)
        # The app first, so its FFmpeg pulls end: nginx-rtmp's graceful quit waits for them.
        await running.stop()


# -- the server as its own process -------------------------------------------------------------


@dataclass
class Served:
    """One `onair serve` child: its settings, its process and its captured log file."""

    settings: Settings
    process: asyncio.subprocess.Process
    log_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.server_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def alive(self) -> bool:
        return self.process.returncode is None


ServeProcess = Callable[..., Awaitable[Served]]


@pytest.fixture
async def serve_process(tmp_path: Path) -> AsyncIterator[ServeProcess]:
    """Start `onair serve` children (logs to a file, optional RLIMIT_NOFILE); all stopped after."""
    started: list[Served] = []

    async def start(
        settings: Settings, *, nofile: int | None = None, log_level: str = "INFO"
    ) -> Served:
        log_path = tmp_path / f"serve-{settings.server_port}.log"
        with log_path.open("ab") as log_file:
            try:
                process = await start_serve(
                    settings, log=log_file, env={"ONAIR_LOG_LEVEL": log_level}, nofile=nofile
                )
            except AssertionError as err:
                raise AssertionError(f"{err}: {log_path.read_text()[-2000:]}") from err
        served = Served(settings, process, log_path)
        started.append(served)
        return served

    yield start
    for served in started:
        await stop_process(served.process, signal.SIGTERM, grace=20)


# -- channels and HTTP, as a client would ------------------------------------------------------


async def create_channel(base_url: str, slug: str) -> str:
    """A channel through the admin API; returns its stream key."""
    body = {"slug": slug, "title": slug.title()}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base_url}/api/channels", json=body, headers=ADMIN) as response,
    ):
        assert response.status == 201, await response.text()
        return str((await response.json())["stream_key"])


async def create_moderator(base_url: str, slug: str) -> str:
    """A moderator token for `slug` through the admin API."""
    url = f"{base_url}/api/channels/{slug}/moderators"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json={"name": "Mod"}, headers=ADMIN) as response,
    ):
        assert response.status == 201, await response.text()
        return str((await response.json())["token"])


async def channel_in_database(database_url: str, slug: str) -> str:
    """Migrate and create a channel before any server runs; returns its stream key."""
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn)
        _, key = await ChannelStore(conn).create(slug, slug)
        return key
    finally:
        await conn.close()


async def get_json(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """Status and JSON body (None when the body is not JSON)."""
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        try:
            return response.status, await response.json(content_type=None)
        except ValueError:
            return response.status, None


async def json_of(url: str) -> Any:
    """The JSON body of an answer that must be 200."""
    status, body = await get_json(url)
    assert status == 200, (status, body)
    return body


async def get_text(url: str) -> tuple[int, str]:
    """Status and body text."""
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


# -- a publisher, as OBS -----------------------------------------------------------------------


class Publisher:
    """FFmpeg pushing a test pattern over RTMP the way OBS does (H.264 + AAC in FLV)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def stop(self) -> None:
        """Stop publishing (SIGINT lets FFmpeg close the RTMP session cleanly)."""
        await stop_process(self.process, signal.SIGINT)


@pytest.fixture
async def publish() -> AsyncIterator[Callable[..., Awaitable[Publisher]]]:
    """Start publishers; every one still running is stopped at the end of the test."""
    started: list[Publisher] = []

    async def start(url: str, size: str = "640x360", fps: int = 30) -> Publisher:
        process = await asyncio.create_subprocess_exec(
            "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
            "-re", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}",
            "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
            "-g", str(fps * 2), "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "64k",
            "-f", "flv", url,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        publisher = Publisher(process)
        started.append(publisher)
        return publisher

    yield start
    for publisher in started:
        await publisher.stop()
