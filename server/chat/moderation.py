"""Moderator events: delete, ban, slow_mode. Each re-checks that the token still stands, and
each writes only in the channel the power was checked on."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from server.channels import tokens
from server.chat import store
from server.chat.limits import DB_TIMEOUT, MESSAGE_ID_RE, channel_of, guest_id, refuse
from server.chat.payloads import Ack, SlowModePayload, UserPayload
from server.chat.sessions import Member, Session
from server.chat.sio import ChatServer
from server.chat.state import ChatState
from server.chat.store import MessageWriter, ban_keys
from server.settings import Settings

log = logging.getLogger("onair.chat")

MAX_SLOW_MODE = 3600
MAX_BAN_SECONDS = 10 * 365 * 24 * 3600


class Moderation:
    """The moderator events of one chat: the sessions, state and writer it shares."""

    def __init__(
        self,
        sio: ChatServer,
        settings: Settings,
        db: asyncpg.Pool,
        sessions: dict[str, Session],
        state: ChatState,
        writer: MessageWriter,
    ) -> None:
        self.sio = sio
        self.settings = settings
        self.db = db
        self.sessions = sessions
        self.state = state
        self.writer = writer

    def register(self) -> None:
        """Answer `delete`, `ban` and `slow_mode` on the Socket.IO server."""
        self.sio.on("delete", self.on_delete)
        self.sio.on("ban", self.on_ban)
        self.sio.on("slow_mode", self.on_slow_mode)

    async def still_moderator(self, session: Session, moderator_id: int) -> bool:
        """False once the token is revoked: the session then speaks as a viewer in every room
        (no badge, no exemption from bans and slow mode), under the guest id its name has."""
        try:
            if await tokens.exists(self.db, moderator_id, timeout=DB_TIMEOUT):
                return True
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
            # A revocation is written to PostgreSQL: while it is away, none can be new.
            log.warning("chat moderator check unavailable error=%s", type(err).__name__)
            return True
        session.moderator = None
        for channel, member in session.joined.items():
            if member.moderator_id == moderator_id:
                name = member.user["name"]
                user_id = guest_id(self.settings.secret_key, session.address_hash, name)
                user: UserPayload = {"id": user_id, "name": name, "role": "viewer"}
                session.joined[channel] = Member(user, None)
                await self.state.remember_address(channel, user_id, session.address_hash)
        log.info("chat moderator revoked, now a viewer moderator=%s", moderator_id)
        return False

    async def moderating(self, sid: str, data: Any) -> tuple[str, Member] | Ack:
        """The channel and member when sid is a (still valid) moderator there."""
        session, channel = self.sessions.get(sid), channel_of(data)
        member = session.joined.get(channel) if session and channel else None
        if channel is None or member is None:
            return refuse("not_joined")
        if member.moderator_id is None or not await tokens.exists(self.db, member.moderator_id):
            return refuse("forbidden")
        return channel, member

    async def on_delete(self, sid: str, data: Any) -> Ack:
        """Moderator `delete {channel, id}`: gone from history, storage and every screen."""
        found = await self.moderating(sid, data)
        if not isinstance(found, tuple):
            return found
        channel, member = found
        message_id = data.get("id")
        if not isinstance(message_id, str) or not MESSAGE_ID_RE.fullmatch(message_id):
            return {"ok": False, "error": "bad_request"}
        await self.state.delete(channel, message_id)
        self.writer.delete(channel, message_id)
        await self.sio.emit("deleted", {"channel": channel, "id": message_id}, room=channel)
        log.info(
            "chat delete channel=%s id=%s moderator=%s", channel, message_id, member.user["id"]
        )
        return {"ok": True}

    async def on_ban(self, sid: str, data: Any) -> Ack:
        """Moderator `ban {channel, user_id, seconds?}`: the user id and its address hash."""
        found = await self.moderating(sid, data)
        if not isinstance(found, tuple):
            return found
        channel, member = found
        user_id, seconds = data.get("user_id"), data.get("seconds")
        if not isinstance(user_id, str) or not 0 < len(user_id) <= 64 or user_id.startswith("m-"):
            return {"ok": False, "error": "bad_request"}
        if seconds is not None and (
            not isinstance(seconds, int)
            or isinstance(seconds, bool)
            or not 0 < seconds <= MAX_BAN_SECONDS
        ):
            return {"ok": False, "error": "bad_request"}
        address = await self.state.address_of(channel, user_id)
        if address is None:
            address = await store.last_ip_hash(self.db, channel, user_id)
        ban = await store.add_ban(self.db, channel, user_id, address, seconds, member.moderator_id)
        until = ban.until.timestamp() if ban.until else None
        await self.state.ban(channel, ban_keys(user_id, address), until)
        log.info(
            "chat ban channel=%s user=%s seconds=%s moderator=%s",
            channel, user_id, seconds, member.user["id"],
        )  # fmt: skip
        return {"ok": True}

    async def unban(self, channel: str, ban_id: int) -> bool:
        """Lift one ban (the admin API's Unban); other bans on the same user or address stay
        in force. False when the channel has no such ban."""
        ban = await store.remove_ban(self.db, channel, ban_id)
        if ban is None:
            return False
        keys = ban_keys(ban.user_id, ban.ip_hash)
        await self.state.unban(channel, keys)
        for other in await store.active_bans(self.db, channel):
            shared = set(ban_keys(other.user_id, other.ip_hash)) & set(keys)
            if shared:
                until = other.until.timestamp() if other.until else None
                await self.state.ban(channel, sorted(shared), until)
        log.info("chat unban channel=%s ban=%d", channel, ban_id)
        return True

    async def on_slow_mode(self, sid: str, data: Any) -> Ack:
        """Moderator `slow_mode {channel, seconds}` (0 turns it off)."""
        found = await self.moderating(sid, data)
        if not isinstance(found, tuple):
            return found
        channel, member = found
        seconds = data.get("seconds")
        if not isinstance(seconds, int) or isinstance(seconds, bool):
            return {"ok": False, "error": "bad_request"}
        if not 0 <= seconds <= MAX_SLOW_MODE:
            return {"ok": False, "error": "bad_request"}
        await self.state.set_slow_mode(channel, seconds)
        payload: SlowModePayload = {"channel": channel, "seconds": seconds}
        await self.sio.emit("slow_mode", payload, room=channel)
        log.info(
            "chat slow_mode channel=%s seconds=%d moderator=%s", channel, seconds, member.user["id"]
        )
        return {"ok": True}
