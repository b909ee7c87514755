"""REST API: channels (public reads, admin writes) and their per-channel tokens under /api."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Any

from aiohttp import web

from server.channels import tokens
from server.channels.store import CHANNELS, Channel, channel_in_path, check_slug, check_title
from server.channels.tokens import ChannelToken
from server.db import DB
from server.live.directory import LIVE
from server.live.viewers import VIEWERS
from server.web.auth import path_slug, require_admin, require_channel
from server.web.errors import ApiError, NotFound, read_json_object

routes = web.RouteTableDef()


def channel_json(
    request: web.Request, channel: Channel, started: datetime | None
) -> dict[str, Any]:
    """A channel as the API shows it, with its live state (`started`: its session's start)."""
    return {
        "slug": channel.slug,
        "title": channel.title,
        "live": started is not None,
        "viewers": request.app[VIEWERS].count(channel.slug),
        "started_at": started.isoformat() if started else None,
        "disabled": channel.disabled,
    }


@routes.get("/api/channels")
async def list_channels(request: web.Request) -> web.Response:
    """Every channel, live ones first."""
    found = await request.app[CHANNELS].list()
    live = await request.app[LIVE].started()
    body = [channel_json(request, c, live.get(c.slug)) for c in found]
    body.sort(key=lambda c: not c["live"])
    return web.json_response(body)


@routes.get("/api/channels/{slug}")
async def get_channel(request: web.Request) -> web.Response:
    """One channel."""
    channel = await request.app[CHANNELS].get(path_slug(request))
    started = await request.app[LIVE].started_at(channel.slug)
    return web.json_response(channel_json(request, channel, started))


@routes.post("/api/channels")
async def create_channel(request: web.Request) -> web.Response:
    """Admin: create a channel; the answer carries its stream key, shown this once."""
    require_admin(request)
    body = await read_json_object(request)
    slug = check_slug(body.get("slug"))
    title = check_title(body.get("title", slug))
    channel, key = await request.app[CHANNELS].create(slug, title)
    return web.json_response({"slug": channel.slug, "stream_key": key}, status=201)


@routes.patch("/api/channels/{slug}")
async def update_channel(request: web.Request) -> web.Response:
    """Admin or the channel's streamer: change the title; admin: disable (a live publisher is
    dropped within ~10 s) or enable publishing. Answers the channel as GET shows it."""
    slug = path_slug(request)
    require_channel(request, slug)
    body = await read_json_object(request)
    unknown = sorted(set(body) - {"title", "disabled"})
    if unknown:
        raise ApiError(f"unknown fields: {', '.join(unknown)} (send title and/or disabled)")
    if not body:
        raise ApiError("send title and/or disabled")
    disabled = body.get("disabled")
    if "disabled" in body and not isinstance(disabled, bool):
        raise ApiError("disabled must be true or false")
    if "disabled" in body:
        require_admin(request)  # the operator's decision, not the streamer's
    store = request.app[CHANNELS]
    await store.get(slug)
    if "title" in body:
        await store.set_title(slug, check_title(body["title"]))
    if isinstance(disabled, bool):
        await store.set_disabled(slug, disabled)
    started = await request.app[LIVE].started_at(slug)
    return web.json_response(channel_json(request, await store.get(slug), started))


@routes.post("/api/channels/{slug}/rotate-key")
async def rotate_key(request: web.Request) -> web.Response:
    """Admin or the channel's streamer: a new stream key; the old one stops working (a live
    publisher is dropped)."""
    slug = path_slug(request)
    require_channel(request, slug)
    key = await request.app[CHANNELS].rotate_key(slug)
    return web.json_response({"slug": slug, "stream_key": key})


@routes.delete("/api/channels/{slug}")
async def delete_channel(request: web.Request) -> web.Response:
    """Admin: delete a channel."""
    require_admin(request)
    await request.app[CHANNELS].delete(path_slug(request))
    return web.Response(status=204)


def token_json(token: ChannelToken) -> dict[str, Any]:
    """A per-channel token as the API lists it (never the secret)."""
    return {
        "id": token.id,
        "role": token.role,
        "name": token.name,
        "created_at": token.created_at.isoformat(),
    }


@routes.get("/api/channels/{slug}/tokens")
async def list_tokens(request: web.Request) -> web.Response:
    """Admin or the channel's streamer: its tokens of every role, oldest first."""
    require_channel(request, path_slug(request))
    slug = await channel_in_path(request)
    found = await tokens.of_channel(request.app[DB], slug)
    return web.json_response([token_json(t) for t in found])


@routes.post("/api/channels/{slug}/tokens")
async def create_token(request: web.Request) -> web.Response:
    """Admin: a token with a role in this channel (moderators have their own endpoint); the
    answer carries it, shown this once. Streamer logins are made by an admin only."""
    require_channel(request, path_slug(request))
    slug = await channel_in_path(request)
    body = await read_json_object(request)
    role, name = body.get("role"), body.get("name", "")
    if role in ("moderator", "bot"):
        # A moderator's or a bot's token name is its chat name, under chat's name rules.
        raise ApiError(f"make {role} tokens with POST /api/channels/<slug>/{role}s")
    if role not in tokens.ROLES:
        raise ApiError(f"role must be one of {', '.join(tokens.ROLES)}")
    if role == "streamer":
        require_admin(request)
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= tokens.MAX_NAME:
        raise ApiError(f"name must be 1-{tokens.MAX_NAME} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in name):
        raise ApiError("name must not hold control characters")
    made, secret = await tokens.create(request.app[DB], slug, str(role), name.strip())
    return web.json_response(token_json(made) | {"token": secret}, status=201)


@routes.delete("/api/channels/{slug}/tokens/{token_id}")
async def revoke_token(request: web.Request) -> web.Response:
    """Admin or the channel's streamer (not a streamer login): revoke a token; it stops
    working at its holder's next action, and a streamer login's sessions end."""
    slug = path_slug(request)
    require_channel(request, slug)
    raw = request.match_info["token_id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise NotFound(f"no token {raw[:20]}")
    found = await tokens.get(request.app[DB], slug, int(raw))
    if found is None:
        raise NotFound(f"no token {raw}")
    if found.role == "streamer":
        require_admin(request)
    if not await tokens.revoke(request.app[DB], slug, found.id):
        raise NotFound(f"no token {raw}")
    return web.Response(status=204)
