"""REST API: a channel's simulcast destinations (admin or that channel's streamer).

GET/POST /api/channels/<slug>/destinations, PATCH/DELETE /api/destinations/<id>. Keys come in
whole and go out masked; the relays on the channel's media host follow within seconds.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server.channels.store import channel_in_path
from server.db import DB
from server.settings import SETTINGS
from server.simulcast import store
from server.simulcast.relays import RELAYS
from server.simulcast.store import Destination, Server
from server.web.auth import path_slug, require_channel
from server.web.errors import ApiError, NotFound, read_json_object
from server.web.net import is_private_host

routes = web.RouteTableDef()


async def check_reachable(server: Server, allow_private: bool) -> None:
    """400 for a server on a private, loopback or link-local address, unless allowed: the relay
    runs on the media host, and a streamer must not aim it at that host's neighbours."""
    if not allow_private and await is_private_host(server.host, server.port):
        raise ApiError(
            f"server {server.host} is a private or loopback address: relays go to platforms on "
            "the internet (an operator can allow private ones with ONAIR_RELAY_ALLOW_PRIVATE)"
        )


async def _destination_in_path(request: web.Request) -> Destination:
    raw = request.match_info["destination_id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise NotFound(f"no destination {raw[:20]}")
    found = await store.get(request.app[DB], int(raw))
    require_channel(request, found.channel)
    return found


async def _checked(request: web.Request, body: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    """The fields sent, each checked; a missing one is an error unless `partial`."""
    checks = {
        "name": store.check_name,
        "server": lambda v: store.parse_server(v).url,
        "key": store.check_key,
        "enabled": store.check_enabled,
    }
    unknown = sorted(set(body) - set(checks))
    if unknown:
        raise ApiError(f"unknown fields: {', '.join(unknown)[:200]}")
    out: dict[str, Any] = {}
    for name, check in checks.items():
        if name in body:
            out[name] = check(body[name])
        elif name == "enabled" and not partial:
            out[name] = True
        elif not partial:
            raise ApiError(f"{name} is required")
    if partial and not out:
        raise ApiError("send name, server, key and/or enabled")
    if "server" in out:
        settings = request.app[SETTINGS]
        await check_reachable(store.parse_server(out["server"]), settings.relay_allow_private)
    return out


@routes.get("/api/channels/{slug}/destinations")
async def list_destinations(request: web.Request) -> web.Response:
    """Admin or the channel's streamer: its destinations, keys masked, with the relays' state."""
    require_channel(request, path_slug(request))
    slug = await channel_in_path(request)
    found = await store.list_for(request.app[DB], slug)
    return web.json_response([d.json() for d in found])


@routes.post("/api/channels/{slug}/destinations")
async def create_destination(request: web.Request) -> web.Response:
    """Admin or the channel's streamer: add {name, server, key, enabled}; relayed at once when
    enabled and the channel is live."""
    require_channel(request, path_slug(request))
    slug = await channel_in_path(request)
    fields = await _checked(request, await read_json_object(request), partial=False)
    made = await store.create(request.app[DB], request.app[SETTINGS].secret_key, slug, **fields)
    request.app[RELAYS].nudge()
    return web.json_response(made.json(), status=201)


@routes.patch("/api/destinations/{destination_id}")
async def update_destination(request: web.Request) -> web.Response:
    """Admin or the channel's streamer: change any of name, server, key, enabled; only this
    destination's relay starts, stops or restarts."""
    current = await _destination_in_path(request)
    fields = await _checked(request, await read_json_object(request), partial=True)
    changed = await store.update(request.app[DB], request.app[SETTINGS].secret_key, current, fields)
    request.app[RELAYS].nudge()
    return web.json_response(changed.json())


@routes.delete("/api/destinations/{destination_id}")
async def delete_destination(request: web.Request) -> web.Response:
    """Admin or the channel's streamer: remove a destination; its relay stops."""
    found = await _destination_in_path(request)
    await store.delete(request.app[DB], found.id)
    request.app[RELAYS].nudge()
    return web.Response(status=204)
