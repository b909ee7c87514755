"""Fixtures that start real processes (PostgreSQL, the app) on free ports and poll until ready."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import pytest
import redis
from aiohttp import web
from aiohttp.test_utils import TestClient

from server import nginx
from server.app import create_app
from server.pgcluster import PgCluster
from server.settings import Settings
from server.stack import server_environ

ADMIN_TOKEN = "test-admin-token-" + secrets.token_hex(8)


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def open_tempdir(prefix: str) -> Path:
    """A temp folder the unprivileged users (postgres, www-data) can enter when we are root.

    pytest's own tmp_path lives under a 0700 folder, closed to them.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


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
    """One redis-server for the run: no persistence, loopback only, polled until PING answers."""
    port = free_port()
    folder = open_tempdir("onair-redis-")
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    try:
        while True:
            try:
                with redis.Redis.from_url(url) as probe:
                    if probe.ping():
                        break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The shared redis-server, emptied for this test."""
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
async def client(settings: Settings, aiohttp_client) -> TestClient:  # type: ignore[no-untyped-def]
    """The real app (migrations, pool) behind aiohttp's test client.

    `settings` comes first so the database outlives the app on the way down.
    """
    return await aiohttp_client(create_app(settings))


@pytest.fixture
def admin() -> dict[str, str]:
    """Headers that carry the admin token."""
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def onair_env(database_url: str) -> dict[str, str]:
    """Environment for running the `onair` command against the test database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONAIR_")}
    env["ONAIR_DATABASE_URL"] = database_url
    return env


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], timeout: float, what: str, interval: float = 0.2
) -> None:
    """Poll `predicate` until it holds; fail naming `what` after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


async def answers_200(url: str) -> bool:
    """True when `url` answers 200; False while nothing listens yet."""
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


@dataclass
class LiveStack:
    """A real server on a real port behind a real nginx-rtmp, for media tests."""

    app: web.Application
    settings: Settings
    nginx_prefix: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.settings.http_port}"

    def rtmp(self, name: str) -> str:
        return f"rtmp://127.0.0.1:{self.settings.rtmp_port}/live/{name}"


@asynccontextmanager
async def running_nginx(settings: Settings) -> AsyncIterator[Path]:
    """nginx rendered from nginx/ in front of settings.server_port; yields its prefix."""
    layout = nginx.NginxLayout(open_tempdir("onair-nginx-"))
    values = nginx.config_values(settings, layout.prefix)
    nginx.write_config(layout, values)
    nginx.test_config(layout)
    process = await nginx.start_nginx(layout)

    async def nginx_up() -> bool:
        assert process.returncode is None, nginx.error_log_tail(layout)
        return await answers_200(f"http://127.0.0.1:{settings.http_port}/nginx-health")

    try:
        await wait_until(nginx_up, 20, "nginx to answer")
        yield layout.prefix
    finally:
        await nginx.stop_nginx(process)
        shutil.rmtree(layout.prefix, ignore_errors=True)


@pytest.fixture
async def live_stack(settings: Settings, aiohttp_server) -> AsyncIterator[LiveStack]:  # type: ignore[no-untyped-def]
    """create_app on settings.server_port with nginx in front of it."""
    app = create_app(settings)
    server = await aiohttp_server(app, port=settings.server_port)
    async with running_nginx(settings) as prefix:
        yield LiveStack(app, settings, prefix)
        # The app first, so its FFmpeg pulls end: nginx-rtmp's graceful quit waits for them.
        await server.close()


class Publisher:
    """FFmpeg pushing a test pattern over RTMP the way OBS does (H.264 + AAC in FLV)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def stop(self) -> None:
        """Stop publishing (SIGINT lets FFmpeg close the RTMP session cleanly)."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


@pytest.fixture
async def publish() -> AsyncIterator[Callable[..., Awaitable[Publisher]]]:
    """Start publishers; every one still running is stopped at the end of the test."""
    started: list[Publisher] = []

    async def start(url: str, size: str = "640x360", fps: int = 30) -> Publisher:
        process = await asyncio.create_subprocess_exec(
            "ffmpeg",
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size={size}:rate={fps}",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-g",
            str(fps * 2),
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "64k",
            "-f",
            "flv",
            url,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        publisher = Publisher(process)
        started.append(publisher)
        return publisher

    yield start
    for publisher in started:
        await publisher.stop()


def ffmpeg_pids(marker: Path) -> list[int]:
    """Live (non-zombie) FFmpeg processes whose arguments mention `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if argv[0].endswith(b"ffmpeg") and state != "Z" and str(marker).encode() in b" ".join(argv):
            found.append(int(entry.name))
    return found


async def start_server(settings: Settings) -> asyncio.subprocess.Process:
    """`onair serve` as systemd runs it, polled until it answers."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "serve",
        env=server_environ(settings),
        stdin=asyncio.subprocess.DEVNULL,
    )  # fmt: skip

    async def answering() -> bool:
        assert process.returncode is None, "onair serve exited while starting"
        return await answers_200(f"http://127.0.0.1:{settings.server_port}/metrics")

    await wait_until(answering, 60, "onair serve to answer")
    return process


@pytest.fixture
async def servers() -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """`onair serve` processes a test started; those still running are stopped at the end."""
    started: list[asyncio.subprocess.Process] = []
    yield started
    for process in started:
        if process.returncode is None:
            process.terminate()
            await process.wait()
