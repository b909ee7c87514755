"""REST API: channels (public reads, admin writes) under /api."""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web

from server import channels
from server.channels import Channel
from server.errors import NotFound, Unauthorized, read_json_object
from server.keys import DB, LIVE, SETTINGS

routes = web.RouteTableDef()


def require_admin(request: web.Request) -> None:
    """401 unless `Authorization: Bearer <ONAIR_ADMIN_TOKEN>`; compared in constant time."""
    token = request.app[SETTINGS].admin_token
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    # aiohttp keeps undecodable header bytes as surrogates; surrogateescape gives them back.
    given_bytes = given.strip().encode("utf-8", "surrogateescape")
    if (
        not token
        or scheme.lower() != "bearer"
        or not hmac.compare_digest(given_bytes, token.encode())
    ):
        raise Unauthorized("admin token required")


def channel_json(request: web.Request, channel: Channel) -> dict[str, Any]:
    """A channel as the API shows it, with its live state."""
    live = request.app[LIVE]
    started = live.started_at(channel.slug)
    return {
        "slug": channel.slug,
        "title": channel.title,
        "live": started is not None,
        "viewers": live.viewers(channel.slug),
        "started_at": started.isoformat() if started else None,
        "disabled": channel.disabled,
    }


def path_slug(request: web.Request) -> str:
    """The slug in the path; anything off-pattern is 404, never a path or a query."""
    slug = request.match_info["slug"]
    if not channels.valid_slug(slug):
        raise NotFound(f"no channel {slug[:60]}")
    return slug


@routes.get("/api/channels")
async def list_channels(request: web.Request) -> web.Response:
    """Every channel, live ones first."""
    found = await channels.list_channels(request.app[DB])
    body = [channel_json(request, c) for c in found]
    body.sort(key=lambda c: not c["live"])
    return web.json_response(body)


@routes.get("/api/channels/{slug}")
async def get_channel(request: web.Request) -> web.Response:
    """One channel."""
    channel = await channels.get_channel(request.app[DB], path_slug(request))
    return web.json_response(channel_json(request, channel))


@routes.post("/api/channels")
async def create_channel(request: web.Request) -> web.Response:
    """Admin: create a channel; the answer carries its stream key, shown this once."""
    require_admin(request)
    body = await read_json_object(request)
    slug = channels.check_slug(body.get("slug"))
    title = channels.check_title(body.get("title", slug))
    channel, key = await channels.create_channel(request.app[DB], slug, title)
    return web.json_response({"slug": channel.slug, "stream_key": key}, status=201)


@routes.post("/api/channels/{slug}/rotate-key")
async def rotate_key(request: web.Request) -> web.Response:
    """Admin: a new stream key; the old one stops working (a live publisher is dropped)."""
    require_admin(request)
    slug = path_slug(request)
    key = await channels.rotate_key(request.app[DB], slug)
    return web.json_response({"slug": slug, "stream_key": key})


@routes.delete("/api/channels/{slug}")
async def delete_channel(request: web.Request) -> web.Response:
    """Admin: delete a channel."""
    require_admin(request)
    await channels.delete_channel(request.app[DB], path_slug(request))
    return web.Response(status=204)
