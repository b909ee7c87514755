"""Room broadcasts encoded once and written as one websocket frame to every idle recipient.

python-socketio sends a broadcast by creating a task per recipient, each of which queues
the packet for that connection's writer task, which encodes it and hands it to aiohttp
(which compresses it, per connection, when the client offered permessage-deflate). Here a
broadcast without an ack is encoded once into one unmasked, uncompressed text frame (RFC
6455 section 5.2; RFC 7692 lets a compressing endpoint send an uncompressed message), and
that same bytes object is written to each recipient's transport, in the emitting call.

A recipient takes the frame directly only when nothing of its own is on the way: its
websocket is upgraded and open, its writer task is waiting on an empty queue (so a packet
it queued earlier cannot be overtaken), and its transport is not backed up. Anyone else
(HTTP long-polling, an upgrade in progress, a slow reader) gets the packet through
engine.io's queue as before, one after another in this call, with no task each.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

import socketio
from engineio import packet as eio_packet
from engineio.async_drivers.aiohttp import WebSocket
from socketio import packet as sio_packet

from server.chat.metrics import CHAT_DELIVERIES

log = logging.getLogger("onair.chat")
DIRECT, QUEUED = CHAT_DELIVERIES.labels("direct"), CHAT_DELIVERIES.labels("queued")

# Past this much unsent data a connection's packets go through its writer, which waits
# for the transport to drain (aiohttp's backpressure) instead of growing its buffer here.
WRITE_BUFFER_LIMIT = 64 * 1024


def text_frame(text: str) -> bytes:
    """One final, unmasked websocket text frame carrying text (a server's frame)."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + payload


class WriterQueue(asyncio.Queue[Any]):
    """An engine.io connection's outgoing queue that knows when its writer is idle.

    The writer takes a packet off the queue and only then sends it; `idle` is true only
    while the writer waits in get() on an empty queue, so no packet is held between.
    """

    waiting = False

    async def get(self) -> Any:
        self.waiting = True
        try:
            return await super().get()
        finally:
            self.waiting = False

    @property
    def idle(self) -> bool:
        return self.waiting and self.empty()


class ChatWebSocket(WebSocket):  # type: ignore[misc]
    """engine.io's aiohttp websocket, kept where the fan-out can write to it directly.

    It also ends the connection on a frame that is not an Engine.IO packet: engine.io
    would raise out of its handler (a traceback per frame) and leave the session, its
    writer task and the connected-clients gauge behind until the ping timeout.
    """

    def __init__(self, handler: Any, server: Any) -> None:
        super().__init__(handler, server)
        self.socket = handler.__self__  # the engine.io socket whose handler this runs
        self.transport: asyncio.Transport | None = None

    async def __call__(self, environ: dict[str, Any]) -> Any:
        self.transport = environ["aiohttp.request"].transport
        return await super().__call__(environ)

    async def wait(self) -> Any:
        frame = await super().wait()
        try:
            eio_packet.Packet(encoded_packet=frame)
        except Exception:
            log.info("chat websocket closed: frame is not an Engine.IO packet")
            return None  # engine.io's "closed by the client": a clean disconnect
        return frame

    def write_now(self, frame: bytes) -> bool:
        """Write frame to the peer now if nothing of this connection's is on its way."""
        socket, transport = self.socket, self.transport
        if (
            transport is None
            or self._sock is None
            or self._sock.closed
            or transport.is_closing()
            or transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT
            or socket.closed
            or not socket.upgraded
            or socket.upgrading
            or not isinstance(socket.queue, WriterQueue)
            or not socket.queue.idle
        ):
            return False
        transport.write(frame)
        return True


class Fanout:
    """The websockets of one Socket.IO server, by engine.io session id."""

    def __init__(self) -> None:
        self.websockets: weakref.WeakValueDictionary[str, ChatWebSocket] = (
            weakref.WeakValueDictionary()
        )

    def install(self, eio: Any) -> None:
        """Give this engine.io server (only) our websocket class and writer queues."""
        websockets = self.websockets

        class TrackedWebSocket(ChatWebSocket):
            def __init__(self, handler: Any, server: Any) -> None:
                super().__init__(handler, server)
                websockets[self.socket.sid] = self

        eio._async = {**eio._async, "websocket": TrackedWebSocket}
        eio.create_queue = WriterQueue

    def open(self) -> list[ChatWebSocket]:
        return list(self.websockets.values())

    def write_now(self, eio_sid: str, frame: bytes) -> bool:
        websocket = self.websockets.get(eio_sid)
        return websocket is not None and websocket.write_now(frame)


class FanoutManager(socketio.AsyncManager):  # type: ignore[misc]
    """A client manager whose local broadcasts go through the fan-out; acks and binary
    payloads take python-socketio's own path. The Redis manager inherits it too."""

    fanout: Fanout

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: str | None = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: str | None = None,
        **kwargs: Any,
    ) -> None:
        room = to or room
        if callback is not None or namespace not in self.rooms:
            await super().emit(
                event, data, namespace, room=room, skip_sid=skip_sid, callback=callback
            )
            return
        args = list(data) if isinstance(data, tuple) else [] if data is None else [data]
        encoded = self.server.packet_class(
            sio_packet.EVENT, namespace=namespace, data=[event, *args]
        ).encode()
        if isinstance(encoded, list):  # binary attachments: several packets each
            await super().emit(event, data, namespace, room=room, skip_sid=skip_sid)
            return
        message = eio_packet.Packet(eio_packet.MESSAGE, encoded)
        frame = text_frame(message.encode())
        skip = set(skip_sid) if isinstance(skip_sid, list) else {skip_sid}
        written, queued = 0, []
        for sid, eio_sid in self.get_participants(namespace, room):
            if sid in skip:
                continue
            if self.fanout.write_now(eio_sid, frame):
                written += 1
            else:
                queued.append(eio_sid)
        DIRECT.inc(written)
        QUEUED.inc(len(queued))
        for eio_sid in queued:  # after the loop: awaiting inside it could change the room
            await self.server.eio.send_packet(eio_sid, message)
