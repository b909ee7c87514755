"""GET /healthz: database, nginx and free space on the media volume; chat's Redis, reported."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from server.chat.room import CHAT
from server.clients import HTTP
from server.db import DB
from server.settings import SETTINGS

CHECK_TIMEOUT = 2.0


async def check_database(app: web.Application) -> str | None:
    """None when a query round-trips, else why not."""
    try:
        await app[DB].fetchval("SELECT 1", timeout=CHECK_TIMEOUT)
    except (OSError, TimeoutError, Exception) as err:
        return f"database: {type(err).__name__}"
    return None


async def check_nginx(app: web.Application) -> str | None:
    """None when nginx answers its loopback health location."""
    settings = app[SETTINGS]
    url = f"http://127.0.0.1:{settings.http_port}/nginx-health"
    try:
        timeout = aiohttp.ClientTimeout(total=CHECK_TIMEOUT)
        async with app[HTTP].get(url, timeout=timeout) as response:
            if response.status != 200:
                return f"nginx: HTTP {response.status}"
    except (aiohttp.ClientError, TimeoutError) as err:
        return f"nginx: unreachable on port {settings.http_port} ({type(err).__name__})"
    return None


async def check_disk(app: web.Application) -> str | None:
    """None while the media volume has more than min_free_bytes free."""
    settings = app[SETTINGS]
    try:
        free = (await asyncio.to_thread(shutil.disk_usage, settings.media_root)).free
    except OSError as err:
        return f"disk: {settings.media_root} {err.strerror}"
    if free < settings.min_free_bytes:
        return f"disk: {free} bytes free on {settings.media_root}, below {settings.min_free_bytes}"
    return None


def chat_redis(app: web.Application) -> str | None:
    """With Redis configured: "ok", or why chat runs per process only; None without Redis."""
    if not app[SETTINGS].redis_url or CHAT not in app:
        return None
    state = app[CHAT].state
    if getattr(state, "degraded", False):
        return "degraded: redis unreachable, chat serves this process only"
    return "ok"


CHECKS: dict[str, Callable[[web.Application], Awaitable[str | None]]] = {
    "database": check_database,
    "nginx": check_nginx,
    "disk": check_disk,
}


async def healthz(request: web.Request) -> web.Response:
    """200 `{status: ok, checks}` or 503 naming each check that failed."""
    names = list(CHECKS)
    results = await asyncio.gather(*(CHECKS[n](request.app) for n in names))
    checks = {n: (r or "ok") for n, r in zip(names, results, strict=True)}
    failed = [r for r in results if r]
    degraded = chat_redis(request.app)
    if degraded is not None:
        # Reported, not failed: every process would go 503 at once while chat still works.
        checks["chat_redis"] = degraded
    status = "ok" if not failed else "failing: " + "; ".join(failed)
    return web.json_response({"status": status, "checks": checks}, status=503 if failed else 200)
