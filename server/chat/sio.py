"""The python-socketio server chat runs on: the Redis manager when configured, forged
lifecycle events refused, and every websocket tracked and checked."""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

import engineio.packet
import socketio
from aiohttp import web

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
            else None
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
        self.websockets: weakref.WeakSet[Any] = weakref.WeakSet()
        self._track_websockets()

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: Any, data: Any) -> None:
        if isinstance(data, list) and data and data[0] in self.reserved_events:
            log.info("chat refused a client event named %r", data[0])
            return
        await super()._handle_event(eio_sid, namespace, id, data)

    def _track_websockets(self) -> None:
        """Give this server (only) a websocket class that remembers its instances.

        It also ends the connection on a frame that is not an Engine.IO packet: engine.io
        would raise out of its handler (a traceback per frame) and leave the session,
        its writer task and the connected-clients gauge behind until the ping timeout.
        """
        drivers = dict(self.eio._async)
        base, tracked = drivers["websocket"], self.websockets

        class TrackedWebSocket(base):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                tracked.add(self)

            async def wait(self) -> Any:
                frame = await super().wait()
                try:
                    engineio.packet.Packet(encoded_packet=frame)
                except Exception:
                    log.info("chat websocket closed: frame is not an Engine.IO packet")
                    return None  # engine.io's "closed by the client": a clean disconnect
                return frame

        drivers["websocket"] = TrackedWebSocket
        self.eio._async = drivers

    async def close_websockets(self) -> None:
        """Close every websocket: engine.io leaves its handlers reading until the peer's
        close frame arrives, which aiohttp would wait out for its whole shutdown timeout."""
        for websocket in list(self.websockets):
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
