"""Socket.IO chat: one room per channel slug, the events and acks of DESIGN.md "Chat"."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import engineio.packet
import socketio
from aiohttp import web

from server import chat_moderation, chat_store
from server.chat_fallback import ChatRedisManager, FallbackState, StoredBan, redis_options
from server.chat_limits import (
    HISTORY_SIZE,
    MAX_TEXT,
    MessageIds,
    TokenBucket,
    channel_of,
    clean_name,
    clean_text,
    environ_address,
    guest_id,
    guest_name,
    ip_hash,
    iso_ms,
    refuse,
)
from server.chat_payloads import (
    Ack,
    JoinAck,
    MessagePayload,
    StreamPayload,
    UserPayload,
    ViewersPayload,
)
from server.chat_state import ChatState, MemoryState
from server.chat_store import MessageWriter, Moderator, ban_keys, utc_from_ms
from server.events import StreamEvent
from server.keys import CHAT, DB, EVENTS, LIVE, SETTINGS
from server.metrics import CHAT_ACCEPTED, CHAT_CONNECTED, CHAT_FANOUT
from server.settings import Settings

log = logging.getLogger("onair.chat")

# Engine.IO packets carry one chat event; 16 KiB is ample for 500 characters.
MAX_PACKET = 16 * 1024
# A known channel is re-checked in PostgreSQL at most this often (joins never hit it otherwise).
CHANNEL_CACHE_SECONDS = 30.0
# A join waits at most this long on PostgreSQL before it is answered `unavailable`.
DB_TIMEOUT = 2.0


@dataclass
class Member:
    """A connection's presence in one room."""

    user: UserPayload
    moderator_id: int | None


@dataclass
class Session:
    """One Socket.IO connection: where it comes from (hashed), what it may do, where it is."""

    address_hash: str
    moderator: Moderator | None
    bucket: TokenBucket
    joined: dict[str, Member] = field(default_factory=dict)


class ChatServer(socketio.AsyncServer):  # type: ignore[misc]
    """AsyncServer that refuses client events named like its own lifecycle events.

    python-socketio dispatches a client's `42["connect", {...}]` to the connect handler
    with the client's JSON as `environ`: a forged address (out of an address ban and the
    per-address rate limit) and a fresh session. `disconnect` likewise drops a live one.
    """

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: Any, data: Any) -> None:
        if isinstance(data, list) and data and data[0] in self.reserved_events:
            log.info("chat refused a client event named %r", data[0])
            return
        await super()._handle_event(eio_sid, namespace, id, data)


class Chat:
    """The Socket.IO server and chat's live pieces, owned by one aiohttp app."""

    def __init__(self, app: web.Application, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        manager = (
            ChatRedisManager(
                settings.redis_url, channel="onair-chat", redis_options=redis_options()
            )
            if settings.redis_url
            else None
        )
        origins = settings.cors_origins
        self.sio = ChatServer(
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
        self.sio.attach(app)
        for event, handler in (
            ("connect", self.on_connect),
            ("disconnect", self.on_disconnect),
            ("join", self.on_join),
            ("message", self.on_message),
            ("leave", self.on_leave),
        ):
            self.sio.on(event, handler)
        for event, moderator_handler in (
            ("delete", chat_moderation.on_delete),
            ("ban", chat_moderation.on_ban),
            ("slow_mode", chat_moderation.on_slow_mode),
        ):
            self.sio.on(event, functools.partial(moderator_handler, self))
        self.host_id = uuid.uuid4().hex[:12]
        self.sessions: dict[str, Session] = {}
        self.ip_buckets: dict[str, TokenBucket] = {}
        self.ids = MessageIds()
        self.known_channels: dict[str, float] = {}
        self.viewer_counts: dict[str, int] = {}
        self.history_locks: dict[str, asyncio.Lock] = {}
        self.state: ChatState = MemoryState()
        self.writer: MessageWriter | None = None

    def _track_websockets(self) -> None:
        """Give this server (only) a websocket class that remembers its instances.

        It also ends the connection on a frame that is not an Engine.IO packet: engine.io
        would raise out of its handler (a traceback per frame) and leave the session,
        its writer task and the connected-clients gauge behind until the ping timeout.
        """
        drivers = dict(self.sio.eio._async)
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
        self.sio.eio._async = drivers

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Connect the shared state, load bans, start the writer and the viewer ticker."""
        if not self.settings.secret_key:
            log.warning("chat secret_key is empty: address hashes are guessable")
        db = self.app[DB]
        if self.settings.redis_url:
            self.state = FallbackState(self.settings.redis_url, self._stored_bans)
            await self.state.check()  # writes the stored bans into Redis if it lacks them
        else:
            for channel, keys, until in await self._stored_bans():
                await self.state.ban(channel, keys, until)
        self.writer = MessageWriter(db)

    async def _stored_bans(self) -> list[StoredBan]:
        """Every ban in force, from PostgreSQL, as the live state stores it."""
        return [
            (b.channel, ban_keys(b.user_id, b.ip_hash), b.until.timestamp() if b.until else None)
            for b in await chat_store.active_bans(self.app[DB])
        ]

    async def shutdown(self, app: web.Application) -> None:
        """on_shutdown: close every local connection so aiohttp need not wait on websockets."""
        for sid in list(self.sessions):
            await self.sio.disconnect(sid, ignore_queue=True)
        # engine.io leaves its websocket handlers reading until the peer's close frame
        # arrives, which aiohttp would wait out for its whole shutdown timeout.
        for websocket in list(self.websockets):
            await websocket.close()

    async def stop(self) -> None:
        """Stop Socket.IO and its Redis listener, then write what is queued."""
        await self.sio.shutdown()
        manager = self.sio.manager
        listener = getattr(manager, "thread", None)
        if listener is not None:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
        if getattr(manager, "pubsub", None) is not None:
            await manager.pubsub.aclose()
        if getattr(manager, "redis", None) is not None:
            await manager.redis.aclose()
        if self.writer is not None:
            await self.writer.close()
        await self.state.close()

    async def on_stream(self, event: StreamEvent) -> None:
        """EventBus listener: tell the channel's room it went live or offline."""
        payload: StreamPayload = {"channel": event.channel, "live": event.live}
        await self.sio.emit("stream", payload, room=event.channel)

    async def tick(self) -> None:
        """Keep names claimed and push `viewers` to local clients when a room's count changed."""
        await self.state.check()
        rooms: dict[str, dict[str, str]] = {}
        for sid, session in self.sessions.items():
            for channel, member in session.joined.items():
                rooms.setdefault(channel, {})[member.user["name"]] = self._owner(sid)
        for channel, names in rooms.items():
            in_chat = await self.state.refresh_names(channel, names)
            count = max(in_chat, self.app[LIVE].viewers(channel))
            if self.viewer_counts.get(channel) != count:
                self.viewer_counts[channel] = count
                payload: ViewersPayload = {"channel": channel, "count": count}
                # Every host computes the same total, so each tells only its own clients.
                await self.sio.emit("viewers", payload, room=channel, ignore_queue=True)
        for channel in set(self.viewer_counts) - set(rooms):
            del self.viewer_counts[channel]
        now = time.monotonic()
        self.ip_buckets = {k: b for k, b in self.ip_buckets.items() if not b.full(now)}

    async def tick_forever(self) -> None:
        """tick() every chat_viewers_seconds; a failure is logged and the loop goes on."""
        while True:
            await asyncio.sleep(self.settings.chat_viewers_seconds)
            try:
                await self.tick()
            except Exception:
                log.exception("chat tick failed")

    # -- helpers ----------------------------------------------------------------------

    def _owner(self, sid: str) -> str:
        return f"{self.host_id}:{sid}"

    async def _channel_exists(self, slug: str) -> bool:
        if self.known_channels.get(slug, 0.0) > time.monotonic():
            return True
        found = await self.app[DB].fetchval(
            "SELECT 1 FROM channels WHERE slug = $1", slug, timeout=DB_TIMEOUT
        )
        if found:
            self.known_channels[slug] = time.monotonic() + CHANNEL_CACHE_SECONDS
        return bool(found)

    async def _history(self, channel: str) -> list[MessagePayload]:
        recent = await self.state.history(channel)
        if recent is not None:
            return recent
        # First join since this state was empty: one read, then memory/Redis serves it.
        async with self.history_locks.setdefault(channel, asyncio.Lock()):
            recent = await self.state.history(channel)
            if recent is None:
                try:
                    stored = await chat_store.messages(self.app[DB], channel, HISTORY_SIZE)
                except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    # PostgreSQL is away: join without history rather than not at all;
                    # the next join loads it.
                    log.warning("chat history unavailable channel=%s", channel)
                    return []
                await self.state.seed(channel, stored)
                recent = await self.state.history(channel) or []
        return recent

    async def _claim_name(self, channel: str, wanted: str | None, owner: str) -> str | None:
        """The name now held in the room: the one asked for, else a free guest name."""
        if wanted:
            return wanted if await self.state.claim_name(channel, wanted, owner) else None
        for _ in range(5):
            name = guest_name()
            if await self.state.claim_name(channel, name, owner):
                return name
        return None

    def _local_members(self, channel: str) -> int:
        return sum(channel in s.joined for s in self.sessions.values())

    async def _leave(self, sid: str, session: Session, channel: str) -> None:
        member = session.joined.pop(channel)
        await self.sio.leave_room(sid, channel)
        await self.state.release_name(channel, member.user["name"], self._owner(sid))

    # -- Socket.IO handlers -------------------------------------------------------------

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        """Hash the client's address; a moderator token in `auth` must be valid."""
        token = auth.get("token") if isinstance(auth, dict) else None
        moderator = None
        if token is not None:
            if isinstance(token, str) and 0 < len(token) <= 200:
                moderator = await chat_store.moderator_for_token(self.app[DB], token)
            if moderator is None:
                raise socketio.exceptions.ConnectionRefusedError("invalid_token")
        address = environ_address(environ)
        settings = self.settings
        self.sessions[sid] = Session(
            address_hash=ip_hash(settings.secret_key, address),
            moderator=moderator,
            bucket=TokenBucket(settings.chat_rate_messages, settings.chat_rate_seconds),
        )
        CHAT_CONNECTED.inc()

    async def on_disconnect(self, sid: str, *_reason: Any) -> None:
        """Give back the names the connection held."""
        session = self.sessions.get(sid)
        if session is None:
            return
        for channel in list(session.joined):
            try:
                await self._leave(sid, session, channel)
            except Exception:
                log.exception("chat leave on disconnect failed channel=%s", channel)
        del self.sessions[sid]
        CHAT_CONNECTED.dec()

    async def on_join(self, sid: str, data: Any) -> JoinAck | Ack:
        """`join {channel, name?}`: enter the room, get a user, recent history and counts."""
        session, channel = self.sessions.get(sid), channel_of(data)
        if session is None or channel is None:
            return refuse("bad_request")
        try:
            exists = await self._channel_exists(channel)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
            # A channel not seen lately cannot be checked while PostgreSQL is away: say so
            # now rather than leave the client waiting for an ack that never comes.
            log.warning("chat join unavailable channel=%s error=%s", channel, type(err).__name__)
            return refuse("unavailable")
        if not exists:
            return refuse("no_channel")
        if channel in session.joined:
            await self._leave(sid, session, channel)
        moderator = session.moderator
        if moderator is not None and moderator.channel != channel:
            moderator = None
        wanted = data.get("name")
        given = clean_name(wanted) if wanted not in (None, "") else None
        if wanted not in (None, "") and given is None:
            return {"ok": False, "error": "invalid_name"}
        owner = self._owner(sid)
        wanted_name = given or (moderator.name if moderator is not None else None)
        name = await self._claim_name(channel, wanted_name, owner)
        if name is None:
            return {"ok": False, "error": "name_taken"}
        if moderator is not None:
            user: UserPayload = {"id": f"m-{moderator.id}", "name": name, "role": "moderator"}
        else:
            user_id = guest_id(self.settings.secret_key, session.address_hash, name)
            user = {"id": user_id, "name": name, "role": "viewer"}
            if await self.state.is_banned(channel, ban_keys(user_id, session.address_hash)):
                await self.state.release_name(channel, name, owner)
                return {"ok": False, "error": "banned"}
        await self.state.remember_address(channel, user["id"], session.address_hash)
        await self.sio.enter_room(sid, channel)
        session.joined[channel] = Member(user, moderator.id if moderator else None)
        history = await self._history(channel)
        live = self.app[LIVE]
        viewers = max(
            live.viewers(channel),
            self.viewer_counts.get(channel, 0),
            self._local_members(channel),
        )
        log.info("chat join channel=%s user=%s role=%s", channel, user["id"], user["role"])
        return {
            "ok": True,
            "user": user,
            "history": history,
            "viewers": viewers,
            "live": live.started_at(channel) is not None,
            "slow_mode": await self.state.slow_mode(channel),
        }

    async def on_message(self, sid: str, data: Any) -> Ack:
        """`message {channel, text}`: checks in order of cost, then store, fan out and ack."""
        session, channel = self.sessions.get(sid), channel_of(data)
        member = session.joined.get(channel) if session and channel else None
        if session is None or channel is None or member is None:
            return refuse("not_joined")
        raw = data.get("text")
        text = clean_text(raw) if isinstance(raw, str) else ""
        if not text:
            return refuse("empty")
        if len(text) > MAX_TEXT:
            return refuse("too_long")
        now = time.monotonic()
        settings = self.settings
        by_address = self.ip_buckets.setdefault(
            session.address_hash,
            TokenBucket(settings.chat_rate_ip_messages, settings.chat_rate_seconds),
        )
        if not (session.bucket.has_token(now) and by_address.has_token(now)):
            return refuse("rate_limited")
        session.bucket.take()
        by_address.take()
        message_id, ms = self.ids.next()
        message: MessagePayload = {
            "id": message_id,
            "channel": channel,
            "user": member.user,
            "text": text,
            "ts": iso_ms(ms),
        }
        moderator = member.moderator_id is not None
        keys = [] if moderator else ban_keys(member.user["id"], session.address_hash)
        error = await self.state.accept(message, keys, slow_exempt=moderator)
        if error is not None:
            return refuse(error)
        assert self.writer is not None
        self.writer.add(message, session.address_hash, utc_from_ms(ms))
        CHAT_ACCEPTED.inc()
        started = time.perf_counter()
        await self.sio.emit("message", message, room=channel)
        CHAT_FANOUT.observe(time.perf_counter() - started)
        log.debug("chat message channel=%s user=%s id=%s", channel, member.user["id"], message_id)
        return {"ok": True, "id": message_id}

    async def on_leave(self, sid: str, data: Any) -> Ack:
        """`leave {channel}`."""
        session, channel = self.sessions.get(sid), channel_of(data)
        if session is None or channel is None or channel not in session.joined:
            return {"ok": False, "error": "not_joined"}
        await self._leave(sid, session, channel)
        return {"ok": True}


def attach(app: web.Application) -> None:
    """Create the Socket.IO server on the app (routes must exist before it starts)."""
    chat = Chat(app, app[SETTINGS])
    app[CHAT] = chat
    app.on_shutdown.append(chat.shutdown)


async def chat_context(app: web.Application) -> AsyncIterator[None]:
    """Chat for the life of the app; after db.postgres, so it flushes before the pool closes."""
    chat = app[CHAT]
    await chat.start()
    assert chat.writer is not None
    tasks = [asyncio.create_task(chat.writer.run()), asyncio.create_task(chat.tick_forever())]
    unsubscribe = app[EVENTS].subscribe(chat.on_stream)
    try:
        yield
    finally:
        unsubscribe()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await chat.stop()
