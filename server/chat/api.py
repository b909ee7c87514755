"""REST for chat: message history pages (public), bots' messages, moderator and bot tokens and
bans (admin or the channel's streamer)."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from server.channels import tokens
from server.channels.store import CHANNELS
from server.chat import store as chat_store
from server.chat.limits import MESSAGE_ID_RE, clean_name, ip_hash
from server.chat.room import CHAT
from server.db import DB
from server.settings import SETTINGS
from server.web.auth import bearer_token, path_slug, require_channel
from server.web.errors import ApiError, Forbidden, NotFound, Unauthorized, read_json_object
from server.web.net import request_address

routes = web.RouteTableDef()

PAGE_DEFAULT = 50
PAGE_MAX = 200


def _limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return PAGE_DEFAULT
    # isdigit() alone takes "²" and other digits int() refuses: ASCII only.
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= PAGE_MAX:
        raise ApiError(f"limit must be a whole number from 1 to {PAGE_MAX}")
    return int(raw)


def _message_id(request: web.Request, name: str) -> str | None:
    raw = request.query.get(name) or None
    if raw is not None and not MESSAGE_ID_RE.fullmatch(raw):
        raise ApiError(f"{name} must be a message id")
    return raw


def _time(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name) or None
    if raw is None:
        return None
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError(f"{name} must be an ISO 8601 time, e.g. 2026-12-07T20:00:00Z") from None
    if when.tzinfo is None:
        raise ApiError(f"{name} must name its time zone (Z or +09:00)")
    return when


@routes.get("/api/channels/{slug}/messages")
async def list_messages(request: web.Request) -> web.Response:
    """Stored messages, oldest first: the latest, or `before=<id>` paging back; `after=<id>`
    or `since=<time>` paging forward (a replay); `until=<time>` bounds either."""
    slug = path_slug(request)
    db = request.app[DB]
    await request.app[CHANNELS].get(slug)
    before, after = _message_id(request, "before"), _message_id(request, "after")
    if before is not None and after is not None:
        raise ApiError("give before or after, not both")
    found = await chat_store.messages(
        db,
        slug,
        _limit(request.query.get("limit")),
        before=before,
        after=after,
        since=_time(request, "since"),
        until=_time(request, "until"),
    )
    return web.json_response(found)


# A bot's refused message: the socket ack's error, as an HTTP status and words.
_BOT_ERRORS: dict[str, tuple[int, str]] = {
    "empty": (400, "text must not be empty"),
    "too_long": (400, "text is too long (500 characters at most)"),
    "rate_limited": (429, "this bot is sending messages too fast"),
}


@routes.post("/api/channels/{slug}/messages")
async def post_message(request: web.Request) -> web.Response:
    """A bot (`Authorization: Bearer <its token>`) says `{text}` in its channel's chat."""
    slug = path_slug(request)
    secret = bearer_token(request).decode("utf-8", "replace")
    bot = await tokens.find(request.app[DB], secret, "bot") if 0 < len(secret) <= 200 else None
    if bot is None:
        raise Unauthorized("a bot token of this channel is required")
    if bot.channel != slug:
        raise Forbidden("a bot posts only in its own channel")
    body = await read_json_object(request)
    address = ip_hash(request.app[SETTINGS].secret_key, request_address(request))
    ack = await request.app[CHAT].bots.post(bot, body.get("text"), address)
    if not ack["ok"]:
        status, words = _BOT_ERRORS.get(ack.get("error", ""), (400, str(ack.get("error"))))
        raise ApiError(words, status)
    return web.json_response({"id": ack.get("id"), "channel": slug, "bot": bot.name}, status=201)


async def _chat_token(request: web.Request, role: str, default_name: str) -> web.Response:
    """Admin or the channel's streamer: a token whose name is its holder's chat name."""
    slug = path_slug(request)
    require_channel(request, slug)
    body = await read_json_object(request)
    db = request.app[DB]
    await request.app[CHANNELS].get(slug)
    name = clean_name(body.get("name", default_name))
    if name is None:
        raise ApiError("name must be 1-24 letters, digits, spaces, dots, dashes or underscores")
    made, token = await tokens.create(db, slug, role, name)
    body_out = {"id": made.id, "channel": slug, "name": made.name, "token": token}
    return web.json_response(body_out, status=201)


@routes.post("/api/channels/{slug}/moderators")
async def create_moderator(request: web.Request) -> web.Response:
    """Admin or the channel's streamer: a moderator token for the channel, shown this once."""
    return await _chat_token(request, "moderator", "moderator")


@routes.post("/api/channels/{slug}/bots")
async def create_bot(request: web.Request) -> web.Response:
    """Admin or the channel's streamer: a bot token for the channel, shown this once; it is
    revoked like every token (DELETE /api/channels/<slug>/tokens/<id>)."""
    return await _chat_token(request, "bot", "bot")


@routes.get("/api/channels/{slug}/moderators")
async def list_moderators(request: web.Request) -> web.Response:
    """Admin or the channel's streamer: its moderators (never their tokens)."""
    slug = path_slug(request)
    require_channel(request, slug)
    db = request.app[DB]
    await request.app[CHANNELS].get(slug)  # an unknown channel is a 404, as on every sibling
    found = await tokens.of_channel(db, slug, "moderator")
    return web.json_response(
        [{"id": m.id, "name": m.name, "created_at": m.created_at.isoformat()} for m in found]
    )


@routes.delete("/api/channels/{slug}/moderators/{moderator_id}")
async def revoke_moderator(request: web.Request) -> web.Response:
    """Admin or the channel's streamer: revoke a moderator token; its holder loses moderator
    powers at the next action."""
    slug = path_slug(request)
    require_channel(request, slug)
    raw = request.match_info["moderator_id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise NotFound(f"no moderator {raw[:20]}")
    if not await tokens.revoke(request.app[DB], slug, int(raw), "moderator"):
        raise NotFound(f"no moderator {raw}")
    return web.Response(status=204)


@routes.get("/api/channels/{slug}/bans")
async def list_bans(request: web.Request) -> web.Response:
    """Admin or the channel's streamer: its bans in force, newest first (never the address
    hashes)."""
    slug = path_slug(request)
    require_channel(request, slug)
    await request.app[CHANNELS].get(slug)
    found = await chat_store.list_bans(request.app[DB], slug)
    return web.json_response(
        [
            {
                "id": b.id,
                "user_id": b.user_id,
                "name": b.name,
                "created_at": b.created_at.isoformat(),
                "until": b.until.isoformat() if b.until else None,
            }
            for b in found
        ]
    )


@routes.delete("/api/channels/{slug}/bans/{ban_id}")
async def unban(request: web.Request) -> web.Response:
    """Admin or the channel's streamer: lift a ban; the user may chat again at once (other
    bans on them stay)."""
    slug = path_slug(request)
    require_channel(request, slug)
    raw = request.match_info["ban_id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise NotFound(f"no ban {raw[:20]}")
    if not await request.app[CHAT].moderation.unban(slug, int(raw)):
        raise NotFound(f"no ban {raw}")
    return web.Response(status=204)
