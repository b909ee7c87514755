"""The python-socketio server chat runs on: the Redis manager when configured, forged
lifecycle events refused, broadcasts through the fan-out (fanout.py)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import socketio
from aiohttp import web

from server.chat.fanout import Fanout, FanoutManager
from server.chat.redis_manager import ChatRedisManager
from server.clients import redis_options
from server.settings import Settings

log = logging.getLogger("onair.chat")

# Engine.IO packets carry one chat event; 16 KiB is ample for 500 characters.
MAX_PACKET = 16 * 1024


class ChatServer(socketio.AsyncServer):  # type: ignore[misc]
    """AsyncServer that refuses client events named like its own lifecycle events.

    python-socketio dispatches a client's `42["connect", {...}]` to the connect handler
    with the client's JSON as `environ`: a forged address (out of an address ban and the
    per-address rate limit) and a fresh session. `disconnect` likewise drops a live one.
    """

    def __init__(self, settings: Settings) -> None:
        manager = (
            ChatRedisManager(
                settings.redis_url, channel="onair-chat", redis_options=redis_options()
            )
            if settings.redis_url
            else FanoutManager()
        )
        origins = settings.cors_origins
        super().__init__(
            async_mode="aiohttp",
            client_manager=manager,
            # None: same origin only (engine.io honours X-Forwarded-Proto/Host from nginx).
            cors_allowed_origins=("*" if "*" in origins else list(origins)) if origins else None,
            max_http_buffer_size=MAX_PACKET,
            logger=False,
            engineio_logger=False,
        )
        self.fanout = Fanout()
        self.fanout.install(self.eio)
        self.manager.fanout = self.fanout

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: Any, data: Any) -> None:
        if isinstance(data, list) and data and data[0] in self.reserved_events:
            log.info("chat refused a client event named %r", data[0])
            return
        await super()._handle_event(eio_sid, namespace, id, data)

    async def close_websockets(self) -> None:
        """Close every websocket: engine.io leaves its handlers reading until the peer's
        close frame arrives, which aiohttp would wait out for its whole shutdown timeout."""
        for websocket in self.fanout.open():
            await websocket.close()

    async def stop(self) -> None:
        """Stop Socket.IO and its Redis listener and connections."""
        await self.shutdown()
        manager = self.manager
        listener = getattr(manager, "thread", None)
        if listener is not None:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
        if getattr(manager, "pubsub", None) is not None:
            await manager.pubsub.aclose()
        if getattr(manager, "redis", None) is not None:
            await manager.redis.aclose()


SIO: web.AppKey[ChatServer] = web.AppKey("sio", ChatServer)
