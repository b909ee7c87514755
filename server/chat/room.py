"""Socket.IO chat: one room per channel slug, the events and acks of DESIGN.md "Chat".

Chat answers connect, join, message and leave; moderation.py answers the moderator events
with the same sessions, state and writer.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import socketio
from aiohttp import web

from server.channels import tokens
from server.channels.store import CHANNELS, ChannelStore
from server.chat import store
from server.chat.bots import Bots
from server.chat.fallback import FallbackState
from server.chat.limits import (
    DB_TIMEOUT,
    HISTORY_SIZE,
    MessageIds,
    TokenBucket,
    channel_of,
    clean_name,
    environ_address,
    guest_id,
    guest_name,
    ip_hash,
    iso_ms,
    message_text,
    refuse,
    within_rate,
)
from server.chat.metrics import CHAT_ACCEPTED, CHAT_CONNECTED, CHAT_FANOUT
from server.chat.moderation import Moderation
from server.chat.payloads import (
    Ack,
    JoinAck,
    MessagePayload,
    StreamPayload,
    UserPayload,
    ViewersPayload,
)
from server.chat.sessions import Member, Session
from server.chat.sio import SIO, ChatServer
from server.chat.state import ChatState, MemoryState
from server.chat.store import MessageWriter, ban_keys, utc_from_ms
from server.db import DB
from server.events import EVENTS, StreamEvent
from server.live.directory import LIVE, LiveDirectory
from server.live.viewers import VIEWERS, ViewerSessions
from server.settings import SETTINGS, Settings
from server.tasks import cancel_and_wait

log = logging.getLogger("onair.chat")

# A known channel is re-checked in PostgreSQL at most this often (joins never hit it otherwise).
CHANNEL_CACHE_SECONDS = 30.0


class Chat:
    """Chat's live pieces for one app: sessions, rate limits, the state, the writer."""

    def __init__(
        self,
        sio: ChatServer,
        settings: Settings,
        db: asyncpg.Pool,
        channels: ChannelStore,
        live: LiveDirectory,
        viewers: ViewerSessions,
        state: ChatState,
        writer: MessageWriter,
    ) -> None:
        self.sio = sio
        self.settings = settings
        self.db = db
        self.channels = channels
        self.live = live
        self.viewers = viewers
        self.state = state
        self.writer = writer
        self.host_id = uuid.uuid4().hex[:12]
        self.sessions: dict[str, Session] = {}
        self.ip_buckets: dict[str, TokenBucket] = {}  # messages per address hash
        self.ip_join_buckets: dict[str, TokenBucket] = {}  # joins per address hash
        self.ids = MessageIds()
        self.known_channels: dict[str, float] = {}
        self.viewer_counts: dict[str, int] = {}
        self.history_locks: dict[str, asyncio.Lock] = {}
        for event, handler in (
            ("connect", self.on_connect),
            ("disconnect", self.on_disconnect),
            ("join", self.on_join),
            ("message", self.on_message),
            ("leave", self.on_leave),
        ):
            sio.on(event, handler)
        self.moderation = Moderation(sio, settings, db, self.sessions, state, writer)
        self.moderation.register()
        self.bots = Bots(settings, self.publish)

    async def disconnect_all(self) -> None:
        """Close every local connection so aiohttp need not wait on websockets."""
        for sid in list(self.sessions):
            await self.sio.disconnect(sid, ignore_queue=True)
        await self.sio.close_websockets()

    async def stop(self) -> None:
        """Stop Socket.IO and its Redis listener, then write what is queued."""
        await self.sio.stop()
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
            count = max(in_chat, self.viewers.count(channel))
            if self.viewer_counts.get(channel) != count:
                self.viewer_counts[channel] = count
                payload: ViewersPayload = {"channel": channel, "count": count}
                # Every host computes the same total, so each tells only its own clients.
                await self.sio.emit("viewers", payload, room=channel, ignore_queue=True)
        for channel in set(self.viewer_counts) - set(rooms):
            del self.viewer_counts[channel]
        now = time.monotonic()
        self.ip_buckets = {k: b for k, b in self.ip_buckets.items() if not b.full(now)}
        self.ip_join_buckets = {k: b for k, b in self.ip_join_buckets.items() if not b.full(now)}

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
        found = await self.channels.exists(slug, timeout=DB_TIMEOUT)
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
                    stored = await store.messages(self.db, channel, HISTORY_SIZE)
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
        await self.state.forget_address(channel, member.user["id"])

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        """Hash the client's address; a moderator token in `auth` must be valid."""
        token = auth.get("token") if isinstance(auth, dict) else None
        moderator = None
        if token is not None:
            if isinstance(token, str) and 0 < len(token) <= 200:
                moderator = await tokens.find(self.db, token, "moderator")
            if moderator is None:
                raise socketio.exceptions.ConnectionRefusedError("invalid_token")
        address = environ_address(environ)
        settings = self.settings
        self.sessions[sid] = Session(
            address_hash=ip_hash(settings.secret_key, address),
            moderator=moderator,
            bucket=TokenBucket(settings.chat_rate_messages, settings.chat_rate_seconds),
            join_bucket=TokenBucket(settings.chat_rate_joins, settings.chat_rate_seconds),
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
        settings = self.settings
        if not within_rate(
            session.join_bucket,
            self.ip_join_buckets,
            session.address_hash,
            TokenBucket(settings.chat_rate_ip_joins, settings.chat_rate_seconds),
        ):
            return refuse("rate_limited")
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
        if moderator is not None and (
            moderator.channel != channel
            or not await self.moderation.still_moderator(session, moderator.id)
        ):
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
        viewers = max(
            self.viewers.count(channel),
            self.viewer_counts.get(channel, 0),
            self._local_members(channel),
        )
        log.info("chat join channel=%s user=%s role=%s", channel, user["id"], user["role"])
        return {
            "ok": True,
            "user": user,
            "history": history,
            "viewers": viewers,
            "live": await self.live.started_at(channel) is not None,
            "slow_mode": await self.state.slow_mode(channel),
        }

    async def on_message(self, sid: str, data: Any) -> Ack:
        """`message {channel, text}`: checks in order of cost, then store, fan out and ack."""
        session, channel = self.sessions.get(sid), channel_of(data)
        member = session.joined.get(channel) if session and channel else None
        if session is None or channel is None or member is None:
            return refuse("not_joined")
        text, wrong = message_text(data.get("text"))
        if wrong is not None:
            return refuse(wrong)
        settings = self.settings
        if not within_rate(
            session.bucket,
            self.ip_buckets,
            session.address_hash,
            TokenBucket(settings.chat_rate_ip_messages, settings.chat_rate_seconds),
        ):
            return refuse("rate_limited")
        if member.moderator_id is not None and not await self.moderation.still_moderator(
            session, member.moderator_id
        ):
            member = session.joined[channel]
        moderator = member.moderator_id is not None
        keys = [] if moderator else ban_keys(member.user["id"], session.address_hash)
        return await self.publish(
            channel, member.user, text, session.address_hash, keys, slow_exempt=moderator
        )

    async def publish(
        self,
        channel: str,
        user: UserPayload,
        text: str,
        address_hash: str,
        keys: list[str],
        *,
        slow_exempt: bool,
    ) -> Ack:
        """A checked message (clean text, within its sender's rate) into the room: bans on
        `keys` and slow mode, then stored, fanned out on every host and acked."""
        message_id, ms = self.ids.next()
        message: MessagePayload = {
            "id": message_id,
            "channel": channel,
            "user": user,
            "text": text,
            "ts": iso_ms(ms),
        }
        error = await self.state.accept(message, keys, slow_exempt=slow_exempt)
        if error is not None:
            return refuse(error)
        self.writer.add(message, address_hash, utc_from_ms(ms))
        CHAT_ACCEPTED.inc()
        started = time.perf_counter()
        await self.sio.emit("message", message, room=channel)
        CHAT_FANOUT.observe(time.perf_counter() - started)
        log.debug("chat message channel=%s user=%s id=%s", channel, user["id"], message_id)
        return {"ok": True, "id": message_id}

    async def on_leave(self, sid: str, data: Any) -> Ack:
        """`leave {channel}`."""
        session, channel = self.sessions.get(sid), channel_of(data)
        if session is None or channel is None or channel not in session.joined:
            return {"ok": False, "error": "not_joined"}
        await self._leave(sid, session, channel)
        return {"ok": True}


CHAT: web.AppKey[Chat] = web.AppKey("chat", Chat)


def attach(app: web.Application) -> None:
    """Create the Socket.IO server on the app (routes must exist before it starts)."""
    sio = app[SIO] = ChatServer(app[SETTINGS])
    sio.attach(app)

    async def disconnect_all(app: web.Application) -> None:
        if CHAT in app:
            await app[CHAT].disconnect_all()

    app.on_shutdown.append(disconnect_all)


async def chat_context(app: web.Application) -> AsyncIterator[None]:
    """Chat for the life of the app; after db.postgres, so it flushes before the pool closes."""
    settings, db = app[SETTINGS], app[DB]
    state: ChatState
    if settings.redis_url:
        state = FallbackState(settings.redis_url, lambda: store.stored_bans(db))
        await state.check()  # writes the stored bans into Redis if it lacks them
    else:
        state = MemoryState()
        for channel, keys, until in await store.stored_bans(db):
            await state.ban(channel, keys, until)
    writer = MessageWriter(db)
    chat = app[CHAT] = Chat(
        app[SIO], settings, db, app[CHANNELS], app[LIVE], app[VIEWERS], state, writer
    )
    tasks = [asyncio.create_task(writer.run()), asyncio.create_task(chat.tick_forever())]
    unsubscribe = app[EVENTS].subscribe(chat.on_stream)
    try:
        yield
    finally:
        unsubscribe()
        await cancel_and_wait(tasks)
        await chat.stop()
