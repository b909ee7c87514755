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


def redis_options() -> dict[str, Any]:
    """Fail fast when Redis is down: redis-py's default retries would hold every event for ~7 s."""
    return {"retry": Retry(NoBackoff(), 0), "socket_connect_timeout": 2.0}


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
    client = aioredis.from_url(url, **redis_options())
    app[REDIS] = client
    yield
    await client.aclose()
