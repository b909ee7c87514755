"""The pages: channel list and watch page, rendered from templates/, with security headers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from server.channels.api import channel_json
from server.channels.store import CHANNELS
from server.live.directory import LIVE
from server.pages.assets import ASSETS, STATIC_DIR, Assets
from server.pages.assets import routes as asset_routes
from server.web.auth import path_slug
from server.web.errors import NotFound

routes = web.RouteTableDef()

TEMPLATE_DIR = Path(__file__).parent / "templates"
SAFE_HOST = re.compile(r"^[A-Za-z0-9.-]+(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$")


class Pages:
    """Templates and the static files they name, owned by one app."""

    def __init__(self, assets: Assets) -> None:
        self.assets = assets
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.templates.globals["asset"] = self.assets.url

    def render(self, template: str, status: int = 200, **values: Any) -> web.Response:
        """An HTML page; pages change with live state, so they are never cached."""
        body = self.templates.get_template(template).render(**values)
        return web.Response(
            text=body,
            status=status,
            content_type="text/html",
            headers={"Cache-Control": "no-cache"},
        )


PAGES: web.AppKey[Pages] = web.AppKey("pages", Pages)


# A page that may be framed stores who may frame it here (embeds.py); every other page: no one.
FRAME_ANCESTORS: web.RequestKey[str] = web.RequestKey("frame_ancestors", str)


def content_security_policy(request: web.Request, frame_ancestors: str) -> str:
    """Same-origin everything; blob: for hls.js (MSE and its worker); ws(s) for Socket.IO."""
    host = request.host
    sockets = f" ws://{host} wss://{host}" if SAFE_HOST.match(host) else ""
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data: blob:",
            "media-src 'self' blob:",
            "worker-src 'self' blob:",
            # 'self' covers same-origin websockets in CSP 3; older Safari needs them named.
            f"connect-src 'self' blob:{sockets}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            f"frame-ancestors {frame_ancestors}",
        ]
    )


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: nosniff everywhere; CSP and friends on every HTML page."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    if not headers.get("Content-Type", "").startswith("text/html"):
        return
    frame_ancestors = request.get(FRAME_ANCESTORS, "'none'")
    headers.setdefault("Content-Security-Policy", content_security_policy(request, frame_ancestors))
    if frame_ancestors == "'none'":
        headers.setdefault("X-Frame-Options", "DENY")  # for browsers without frame-ancestors
    headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault(
        "Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
    )


@routes.get("/")
async def index(request: web.Request) -> web.Response:
    """Every channel, live ones first, busiest first among them."""
    found = await request.app[CHANNELS].list()
    live = await request.app[LIVE].started()
    listed = [channel_json(request, c, live.get(c.slug)) for c in found if not c.disabled]
    listed.sort(key=lambda c: (not c["live"], -c["viewers"]))
    return request.app[PAGES].render("index.html", channels=listed)


@routes.get("/watch/{slug}")
async def watch(request: web.Request) -> web.Response:
    """The watch page: player, quality menu, live state, viewer count, chat, past broadcasts."""
    pages = request.app[PAGES]
    slug = request.match_info["slug"]
    try:
        channel = await request.app[CHANNELS].get(path_slug(request))
    except NotFound:
        return pages.render("not_found.html", status=404, slug=slug[:60])
    started = await request.app[LIVE].started_at(channel.slug)
    return pages.render("watch.html", channel=channel_json(request, channel, started))


def setup(app: web.Application) -> None:
    """Add the pages, the static files and the security headers to the app."""
    assets = app[ASSETS] = Assets(STATIC_DIR)
    app[PAGES] = Pages(assets)
    app.add_routes(routes)
    app.add_routes(asset_routes)
    app.on_response_prepare.append(security_headers)
