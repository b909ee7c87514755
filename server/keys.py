"""Every web.AppKey in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    # Modules that import this one are named here only for the type checker.
    import aiohttp
    import asyncpg
    import redis.asyncio as aioredis

    from server.chat import Chat
    from server.events import EventBus
    from server.ingest import IngestState
    from server.ladders import Ladders
    from server.live import LiveRegistry
    from server.pages import Pages
    from server.recordings import Recordings
    from server.settings import Settings
    from server.uploads import Uploads
    from server.viewers import ViewerSessions

# Annotated rather than subscripted, so the names above are needed by the type checker only.
SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
DB: web.AppKey[asyncpg.Pool] = web.AppKey("db")
HTTP: web.AppKey[aiohttp.ClientSession] = web.AppKey("http")
REDIS: web.AppKey[aioredis.Redis | None] = web.AppKey("redis")
LIVE: web.AppKey[LiveRegistry] = web.AppKey("live")
EVENTS: web.AppKey[EventBus] = web.AppKey("events")
VIEWERS: web.AppKey[ViewerSessions] = web.AppKey("viewers")
INGEST: web.AppKey[IngestState] = web.AppKey("ingest")
TRANSCODERS: web.AppKey[Ladders] = web.AppKey("transcoders")
CHAT: web.AppKey[Chat] = web.AppKey("chat")
PAGES: web.AppKey[Pages] = web.AppKey("pages")
RECORDINGS: web.AppKey[Recordings] = web.AppKey("recordings")
UPLOADS: web.AppKey[Uploads] = web.AppKey("uploads")
