"""create_app(settings): cleanup contexts in dependency order, middlewares, routes.

Each context builds one service from the ones before it and hands it its peers; shutdown
runs them in reverse, so chat flushes and recordings finalize while the pool is open, and
every FFmpeg is stopped before the server exits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from server import clients, db, owner
from server.admin import pages as admin_pages
from server.admin import sessions as admin_sessions
from server.background import slot
from server.channels import api as channels_api
from server.channels import store as channels_store
from server.chat import api as chat_api
from server.chat import room as chat
from server.events import EVENTS, EventBus
from server.live import directory, hooks, panel, playlists, status, streams, thumbnails, viewers
from server.pages import embeds, replay
from server.pages import render as pages
from server.recordings import api as recordings_api
from server.recordings import service as recordings
from server.settings import SETTINGS, Settings
from server.simulcast import api as simulcast_api
from server.simulcast import relays
from server.uploads import api as uploads_api
from server.uploads import service as uploads
from server.uploads import tus
from server.web import health, metrics, openapi
from server.web.errors import error_middleware
from server.webhooks import api as webhooks_api
from server.webhooks import deliverer as webhooks
from server.webhooks import listener as webhook_events
from transcoder.layout import MediaLayout

# JSON bodies here are small; a large one is a mistake or an attack.
CLIENT_MAX_SIZE = 64 * 1024


async def media_dirs(app: web.Application) -> AsyncIterator[None]:
    """Make sure the media volume's folders exist before anything writes there."""
    for folder in MediaLayout(app[SETTINGS].media_root).served():
        folder.mkdir(parents=True, exist_ok=True)
    yield


def create_app(settings: Settings) -> web.Application:
    """The one aiohttp application; shutdown runs the contexts in reverse order."""
    app = web.Application(
        middlewares=[
            metrics.metrics_middleware,
            error_middleware,
            admin_sessions.session_middleware,  # a dashboard session counts as its principal
        ],
        client_max_size=CLIENT_MAX_SIZE,
    )
    app[SETTINGS] = settings
    app[EVENTS] = EventBus()
    app.on_shutdown.append(owner.stop_asking)
    app.cleanup_ctx.extend(
        [
            clients.http_client,
            media_dirs,
            clients.redis_client,
            db.postgres,
            owner.ownership,  # before every duty: the host's owner lock outlives their stops
            channels_store.channel_store,
            admin_sessions.admin_sessions,
            streams.live_streams,  # publishers, live sessions and every channel's ladder
            playlists.playlist_cache,
            viewers.viewer_sessions,
            status.live_status,  # what this host's live channels are doing, for the dashboard
            directory.live_directory,  # which channels are live here or on another host
            relays.relays,  # simulcast: each live channel's destinations, one FFmpeg each
            thumbnails.thumbnails,
            chat.chat_context,  # after the pool: chat flushes before it closes
            slot.encoder_slot,  # before recordings and uploads, which hand it their jobs
            recordings.recordings,
            uploads.uploads,
            webhooks.webhook_deliveries,  # its own pool: a hanging receiver holds none of the app's
            webhook_events.stream_events,  # last on the bus: chat and recordings hear first
        ]
    )
    for routes in (
        channels_api.routes,
        hooks.routes,
        panel.routes,
        playlists.routes,
        thumbnails.routes,
        chat_api.routes,
        recordings_api.routes,
        tus.routes,
        uploads_api.routes,
        simulcast_api.routes,
        webhooks_api.routes,
    ):
        app.add_routes(routes)
    pages.setup(app)  # /, /watch/<slug>, /static/; security headers on pages
    app.add_routes(embeds.routes)  # /embed/<slug>, /embed/<slug>/chat: pages made for an iframe
    app.add_routes(replay.routes)  # /watch/<slug>/recordings/<id>: a past broadcast with its chat
    admin_pages.setup(app)  # /admin
    chat.attach(app)
    app.router.add_get("/api/openapi.json", openapi.openapi)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/metrics", metrics.metrics)
    return app
