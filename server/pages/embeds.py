"""Pages made for another site's iframe: the player (`?chat=1` adds the chat) and the chat alone.

Only these pages may be framed, and only by ONAIR_EMBED_ORIGINS (CSP frame-ancestors); every
other page keeps frame-ancestors 'none'. The watch page shows the <iframe> snippet to copy.
"""

from __future__ import annotations

from aiohttp import web

from server.channels.api import channel_json
from server.channels.store import CHANNELS
from server.live.directory import LIVE
from server.pages.render import FRAME_ANCESTORS, PAGES
from server.settings import SETTINGS
from server.web.auth import path_slug
from server.web.errors import NotFound

routes = web.RouteTableDef()


async def _embed(request: web.Request, template: str, *, chat: bool) -> web.Response:
    pages = request.app[PAGES]
    request[FRAME_ANCESTORS] = " ".join(request.app[SETTINGS].embed_origins)
    try:
        channel = await request.app[CHANNELS].get(path_slug(request))
    except NotFound:
        slug = request.match_info["slug"][:60]
        return pages.render("embed_missing.html", status=404, slug=slug)
    started = await request.app[LIVE].started_at(channel.slug)
    return pages.render(template, channel=channel_json(request, channel, started), chat=chat)


@routes.get("/embed/{slug}")
async def embed_player(request: web.Request) -> web.Response:
    """The player, muted until the viewer unmutes it; `?chat=1` puts the chat beside it."""
    return await _embed(request, "embed.html", chat=request.query.get("chat") == "1")


@routes.get("/embed/{slug}/chat")
async def embed_chat(request: web.Request) -> web.Response:
    """The channel's chat alone."""
    return await _embed(request, "embed_chat.html", chat=True)
