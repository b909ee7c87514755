"""create_app(settings): cleanup contexts in dependency order, middlewares, routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

from server import (
    api,
    chat,
    chat_api,
    db,
    health,
    ingest,
    ladders,
    metrics,
    openapi,
    pages,
    recordings,
    uploads,
    viewers,
)
from server.chat_fallback import redis_options
from server.errors import error_middleware
from server.events import EventBus
from server.keys import EVENTS, HTTP, LIVE, REDIS, SETTINGS
from server.live import LiveRegistry
from server.settings import Settings

# JSON bodies here are small; a large one is a mistake or an attack.
CLIENT_MAX_SIZE = 64 * 1024


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


async def media_dirs(app: web.Application) -> AsyncIterator[None]:
    """Make sure the media volume's folders exist before anything writes there."""
    root = app[SETTINGS].media_root
    for sub in ("live", "recordings", "uploads", "videos"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    yield


def create_app(settings: Settings) -> web.Application:
    """The one aiohttp application; shutdown runs the contexts in reverse order."""
    app = web.Application(
        middlewares=[metrics.metrics_middleware, error_middleware],
        client_max_size=CLIENT_MAX_SIZE,
    )
    app[SETTINGS] = settings
    app[LIVE] = LiveRegistry()
    app[EVENTS] = EventBus()
    app.cleanup_ctx.extend(
        [
            http_client,
            media_dirs,
            redis_client,
            db.postgres,
            chat.chat_context,  # after the pool: chat flushes before it closes
            ingest.ingest,
            ladders.ladders,
            # After the ladders (it reads their speed) and before nothing that needs it: on the
            # way down recorders stop and finalize first, while the pool is still open.
            recordings.recordings,
            uploads.uploads,  # after recordings: the VOD queue waits while compression runs
            viewers.viewer_sessions,
        ]
    )
    app.add_routes(api.routes)
    app.add_routes(ingest.routes)
    app.add_routes(viewers.routes)
    app.add_routes(chat_api.routes)
    app.add_routes(recordings.routes)
    app.add_routes(uploads.routes)
    pages.setup(app)  # /, /watch/<slug>, /static/, /thumb/; security headers on pages
    chat.attach(app)
    app.router.add_get("/api/openapi.json", openapi.openapi)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/metrics", metrics.metrics)
    return app
