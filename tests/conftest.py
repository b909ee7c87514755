"""Fixtures that start real processes (PostgreSQL, the app) on free ports and poll until ready."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.pgcluster import PgCluster
from server.settings import Settings

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
        http_port=free_port(),
        server_port=free_port(),
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
