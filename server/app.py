"""create_app(settings): cleanup contexts in dependency order, middlewares, routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from server import api, db, health, metrics
from server.errors import error_middleware
from server.events import EventBus
from server.keys import EVENTS, HTTP, LIVE, SETTINGS
from server.live import LiveRegistry
from server.settings import Settings

# JSON bodies here are small; a large one is a mistake or an attack.
CLIENT_MAX_SIZE = 64 * 1024


async def http_client(app: web.Application) -> AsyncIterator[None]:
    """One outgoing HTTP session (health checks, nginx stats) for the life of the app."""
    async with aiohttp.ClientSession() as session:
        app[HTTP] = session
        yield


async def media_dirs(app: web.Application) -> AsyncIterator[None]:
    """Make sure the media volume's folders exist before anything writes there."""
    root = app[SETTINGS].media_root
    for sub in ("live", "recordings"):
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
    app.cleanup_ctx.extend([http_client, media_dirs, db.postgres])
    app.add_routes(api.routes)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/metrics", metrics.metrics)
    return app
