"""Moderator events: delete, ban, slow_mode; each checks the token is still valid."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from server import chat_store
from server.chat_limits import MESSAGE_ID_RE, channel_of, refuse
from server.chat_payloads import Ack, SlowModePayload
from server.chat_store import ban_keys
from server.keys import DB

if TYPE_CHECKING:
    from server.chat import Chat, Member

log = logging.getLogger("onair.chat")

MAX_SLOW_MODE = 3600
MAX_BAN_SECONDS = 10 * 365 * 24 * 3600


async def moderating(chat: Chat, sid: str, data: Any) -> tuple[str, Member] | Ack:
    """The channel and member when sid is a (still valid) moderator there."""
    session, channel = chat.sessions.get(sid), channel_of(data)
    member = session.joined.get(channel) if session and channel else None
    if channel is None or member is None:
        return refuse("not_joined")
    if member.moderator_id is None or not await chat_store.moderator_exists(
        chat.app[DB], member.moderator_id
    ):
        return refuse("forbidden")
    return channel, member


async def on_delete(chat: Chat, sid: str, data: Any) -> Ack:
    """Moderator `delete {channel, id}`: gone from history, storage and every screen."""
    found = await moderating(chat, sid, data)
    if not isinstance(found, tuple):
        return found
    channel, member = found
    message_id = data.get("id")
    if not isinstance(message_id, str) or not MESSAGE_ID_RE.fullmatch(message_id):
        return {"ok": False, "error": "bad_request"}
    await chat.state.delete(channel, message_id)
    assert chat.writer is not None
    chat.writer.delete(channel, message_id)
    await chat.sio.emit("deleted", {"channel": channel, "id": message_id}, room=channel)
    log.info("chat delete channel=%s id=%s moderator=%s", channel, message_id, member.user["id"])
    return {"ok": True}


async def on_ban(chat: Chat, sid: str, data: Any) -> Ack:
    """Moderator `ban {channel, user_id, seconds?}`: the user id and its address hash."""
    found = await moderating(chat, sid, data)
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
    db = chat.app[DB]
    address = await chat.state.address_of(channel, user_id)
    if address is None:
        address = await chat_store.last_ip_hash(db, channel, user_id)
    ban = await chat_store.add_ban(db, channel, user_id, address, seconds, member.moderator_id)
    until = ban.until.timestamp() if ban.until else None
    await chat.state.ban(channel, ban_keys(user_id, address), until)
    log.info(
        "chat ban channel=%s user=%s seconds=%s moderator=%s",
        channel,
        user_id,
        seconds,
        member.user["id"],
    )
    return {"ok": True}


async def on_slow_mode(chat: Chat, sid: str, data: Any) -> Ack:
    """Moderator `slow_mode {channel, seconds}` (0 turns it off)."""
    found = await moderating(chat, sid, data)
    if not isinstance(found, tuple):
        return found
    channel, member = found
    seconds = data.get("seconds")
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        return {"ok": False, "error": "bad_request"}
    if not 0 <= seconds <= MAX_SLOW_MODE:
        return {"ok": False, "error": "bad_request"}
    await chat.state.set_slow_mode(channel, seconds)
    payload: SlowModePayload = {"channel": channel, "seconds": seconds}
    await chat.sio.emit("slow_mode", payload, room=channel)
    log.info(
        "chat slow_mode channel=%s seconds=%d moderator=%s", channel, seconds, member.user["id"]
    )
    return {"ok": True}
