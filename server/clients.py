"""The app's outgoing clients: one HTTP session and, when configured, one Redis client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from server.settings import SETTINGS

HTTP: web.AppKey[aiohttp.ClientSession] = web.AppKey("http", aiohttp.ClientSession)
REDIS: web.AppKey[aioredis.Redis | None] = web.AppKey("redis")


# Connections one client keeps to Redis; a command that finds all busy waits for one.
REDIS_CONNECTIONS = 64


def redis_options() -> dict[str, Any]:
    """Fail fast when Redis is down: redis-py's default retries would hold every event for ~7 s."""
    return {"retry": Retry(NoBackoff(), 0), "socket_connect_timeout": 2.0}


def new_redis(url: str, **options: Any) -> aioredis.Redis:
    """A client over a pool that waits for a free connection instead of failing: redis-py's
    default pool raises MaxConnectionsError at its 100th command in flight, which a busy chat
    (hundreds of joins at once) took for Redis being down. A connection is given back as soon
    as its command ends or fails, and a Redis that is down fails the connect (2 s)."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=REDIS_CONNECTIONS,
        timeout=None,
        **redis_options(),
        **options,
    )
    return aioredis.Redis(connection_pool=pool)


async def http_client(app: web.Application) -> AsyncIterator[None]:
    """One outgoing HTTP session (health checks, nginx stats) for the life of the app."""
    async with aiohttp.ClientSession() as session:
        app[HTTP] = session
        yield


async def redis_client(app: web.Application) -> AsyncIterator[None]:
    """A Redis client when ONAIR_REDIS_URL is set (viewer counts shared across hosts)."""
    url = app[SETTINGS].redis_url
    if url is None:
        app[REDIS] = None
        yield
        return
    # Viewer counts are a background loop: fail fast while Redis is away, retry next tick.
    client = new_redis(url)
    app[REDIS] = client
    yield
    await client.aclose()
