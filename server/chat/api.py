"""REST for chat: message history pages (public), moderator tokens and bans (admin)."""

from __future__ import annotations

from aiohttp import web

from server.channels import tokens
from server.channels.store import CHANNELS
from server.chat import store as chat_store
from server.chat.limits import MESSAGE_ID_RE, clean_name
from server.chat.room import CHAT
from server.db import DB
from server.web.auth import path_slug, require_channel
from server.web.errors import ApiError, NotFound, read_json_object

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


@routes.get("/api/channels/{slug}/messages")
async def list_messages(request: web.Request) -> web.Response:
    """Stored messages, oldest first; `before=<id>` pages back from a message."""
    slug = path_slug(request)
    db = request.app[DB]
    await request.app[CHANNELS].get(slug)
    before = request.query.get("before") or None
    if before is not None and not MESSAGE_ID_RE.fullmatch(before):
        raise ApiError("before must be a message id")
    found = await chat_store.messages(db, slug, _limit(request.query.get("limit")), before)
    return web.json_response(found)


@routes.post("/api/channels/{slug}/moderators")
async def create_moderator(request: web.Request) -> web.Response:
    """Admin or the channel's streamer: a moderator token for the channel, shown this once."""
    slug = path_slug(request)
    require_channel(request, slug)
    body = await read_json_object(request)
    db = request.app[DB]
    await request.app[CHANNELS].get(slug)
    raw = body.get("name", "moderator")
    name = clean_name(raw)
    if name is None:
        raise ApiError("name must be 1-24 letters, digits, spaces, dots, dashes or underscores")
    moderator, token = await tokens.create(db, slug, "moderator", name)
    body_out = {"id": moderator.id, "channel": slug, "name": moderator.name, "token": token}
    return web.json_response(body_out, status=201)


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
