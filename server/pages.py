"""The pages: channel list, watch page, content-hashed static files, live thumbnails."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import mimetypes
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from server import api, channels
from server.errors import NotFound
from server.keys import DB, LIVE, PAGES, SETTINGS
from server.settings import Settings

log = logging.getLogger("onair.pages")
routes = web.RouteTableDef()

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
TEMPLATE_DIR = HERE / "templates"
# Files the pages name; the vendor ones are copied from node_modules by `npm ci` (package.json).
REQUIRED_ASSETS = (
    "onair.css",
    "watch.js",
    "index.js",
    "vendor/hls.light.min.js",
    "vendor/socket.io.min.js",
)
# A hashed name changes with its content, so a browser may keep each file for a year.
IMMUTABLE = "public, max-age=31536000, immutable"
THUMB_SECONDS = 10.0  # a thumbnail is at most this old; FFmpeg runs at most this often per channel
THUMB_TIMEOUT = 10.0
THUMB_HEIGHT = 180
PLAYLIST_URI = re.compile(r"^[a-z0-9]{1,16}/index\.m3u8$")
MEDIA_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,80}\.(?:m4s|mp4)$")
BANDWIDTH = re.compile(r"BANDWIDTH=(\d+)")
SAFE_HOST = re.compile(r"^[A-Za-z0-9.-]+(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$")


@dataclass(frozen=True)
class Asset:
    """One static file, held in memory under its content-hashed name."""

    body: bytes
    content_type: str


class Assets:
    """Every file under static/, each served as `name.<hash>.ext` so it can be cached forever."""

    def __init__(self, root: Path) -> None:
        self.urls: dict[str, str] = {}
        self.files: dict[str, Asset] = {}
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            relative = path.relative_to(root).as_posix()
            if path.name.startswith("."):
                continue
            body = path.read_bytes()
            digest = hashlib.sha256(body).hexdigest()[:12]
            stem, dot, suffix = relative.rpartition(".")
            hashed = (
                f"{stem}.{digest}.{suffix}" if dot and "/" not in suffix else f"{relative}.{digest}"
            )
            content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            if content_type.startswith("text/") or content_type.endswith("javascript"):
                content_type += "; charset=utf-8"
            self.urls[relative] = f"/static/{hashed}"
            self.files[hashed] = Asset(body, content_type)
        missing = [name for name in REQUIRED_ASSETS if name not in self.urls]
        if missing:
            log.error("static files missing names=%s (run `npm ci`)", ",".join(missing))

    def url(self, name: str) -> str:
        """The versioned URL of a static file; a missing one still renders (and 404s)."""
        return self.urls.get(name, f"/static/missing/{name}")


@dataclass
class Thumbnails:
    """A still from each live channel's latest segment, made by FFmpeg at most every few seconds."""

    media_root: Path
    ffmpeg: str
    cache: dict[str, tuple[float, bytes]] = field(default_factory=dict)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def latest(self, slug: str) -> tuple[Path, Path] | None:
        """init.mp4 and the newest segment of the channel's cheapest rendition."""
        folder = self.media_root / "live" / slug
        try:
            master = (folder / "master.m3u8").read_text()
        except OSError:
            return None
        choices: list[tuple[int, str]] = []
        lines = master.splitlines()
        for line, uri in itertools.pairwise(lines):
            found = BANDWIDTH.search(line)
            if line.startswith("#EXT-X-STREAM-INF:") and found and PLAYLIST_URI.match(uri):
                choices.append((int(found.group(1)), uri))
        if not choices:
            return None
        uri = min(choices)[1]
        rendition = folder / uri.split("/")[0]
        try:
            playlist = (rendition / "index.m3u8").read_text()
        except OSError:
            return None
        init = re.search(r'#EXT-X-MAP:URI="(?:\.\./[a-z0-9]{1,16}/)?([^"/]+)"', playlist)
        segments = [ln for ln in playlist.splitlines() if ln and not ln.startswith("#")]
        if init is None or not segments:
            return None
        names = (init.group(1), segments[-1])
        if not all(MEDIA_NAME.match(name) for name in names):
            return None
        return rendition / names[0], rendition / names[1]

    async def get(self, slug: str) -> bytes | None:
        """A JPEG of the channel now (cached a few seconds), or None when there is nothing yet."""
        cached = self.cache.get(slug)
        if cached and time.monotonic() - cached[0] < THUMB_SECONDS:
            return cached[1]
        # One FFmpeg per channel at a time, however many list pages ask at once.
        async with self.locks.setdefault(slug, asyncio.Lock()):
            cached = self.cache.get(slug)
            if cached and time.monotonic() - cached[0] < THUMB_SECONDS:
                return cached[1]
            image = await self._render(slug)
            if image is None:
                return cached[1] if cached else None
            self.cache[slug] = (time.monotonic(), image)
            return image

    async def _render(self, slug: str) -> bytes | None:
        files = self.latest(slug)
        if files is None:
            return None
        try:
            source = files[0].read_bytes() + files[1].read_bytes()
        except OSError:  # the segment left the live window between the read and now
            return None
        process = await asyncio.create_subprocess_exec(
            self.ffmpeg,
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "mp4",  # init + one fragment piped in: a complete fragmented MP4
            "-i",
            "pipe:0",
            "-frames:v",
            "1",
            "-vf",
            f"scale=-2:{THUMB_HEIGHT}",  # list thumbnails are small; keep the aspect ratio
            "-q:v",
            "5",
            "-f",
            "image2pipe",
            "-c:v",
            "mjpeg",
            "pipe:1",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(source), THUMB_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()
            log.warning("thumbnail timed out channel=%s", slug)
            return None
        if process.returncode != 0 or not out:
            log.warning("thumbnail failed channel=%s error=%s", slug, err.decode()[-200:].strip())
            return None
        return out


class Pages:
    """Templates, static files and thumbnails, owned by one app."""

    def __init__(self, settings: Settings) -> None:
        self.assets = Assets(STATIC_DIR)
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.templates.globals["asset"] = self.assets.url
        self.thumbnails = Thumbnails(settings.media_root, settings.ffmpeg)

    def render(self, template: str, status: int = 200, **values: Any) -> web.Response:
        """An HTML page; pages change with live state, so they are never cached."""
        body = self.templates.get_template(template).render(**values)
        return web.Response(
            text=body,
            status=status,
            content_type="text/html",
            headers={"Cache-Control": "no-cache"},
        )


def content_security_policy(request: web.Request) -> str:
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
            "frame-ancestors 'none'",
        ]
    )


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: nosniff everywhere; CSP and friends on every HTML page."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    if not headers.get("Content-Type", "").startswith("text/html"):
        return
    headers.setdefault("Content-Security-Policy", content_security_policy(request))
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault(
        "Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
    )


@routes.get("/")
async def index(request: web.Request) -> web.Response:
    """Every channel, live ones first, busiest first among them."""
    found = await channels.list_channels(request.app[DB])
    listed = [api.channel_json(request, c) for c in found if not c.disabled]
    listed.sort(key=lambda c: (not c["live"], -c["viewers"]))
    return request.app[PAGES].render("index.html", channels=listed)


@routes.get("/watch/{slug}")
async def watch(request: web.Request) -> web.Response:
    """The watch page: player, quality menu, live state, viewer count, chat, past broadcasts."""
    pages = request.app[PAGES]
    slug = request.match_info["slug"]
    try:
        channel = await channels.get_channel(request.app[DB], api.path_slug(request))
    except NotFound:
        return pages.render("not_found.html", status=404, slug=slug[:60])
    return pages.render("watch.html", channel=api.channel_json(request, channel))


@routes.get("/static/{name:.+}")
async def static_file(request: web.Request) -> web.Response:
    """A static file by its content-hashed name; anything else is 404."""
    asset = request.app[PAGES].assets.files.get(request.match_info["name"])
    if asset is None:
        raise web.HTTPNotFound()
    return web.Response(
        body=asset.body,
        headers={"Content-Type": asset.content_type, "Cache-Control": IMMUTABLE},
    )


@routes.get("/thumb/{slug}.jpg")
async def thumbnail(request: web.Request) -> web.Response:
    """A still of a live channel (from its latest segment); 404 while offline or not ready."""
    slug = api.path_slug(request)
    if request.app[LIVE].started_at(slug) is None:
        raise web.HTTPNotFound()
    image = await request.app[PAGES].thumbnails.get(slug)
    if image is None:
        raise web.HTTPNotFound()
    return web.Response(
        body=image,
        headers={
            "Content-Type": "image/jpeg",
            "Cache-Control": f"public, max-age={THUMB_SECONDS:.0f}",
        },
    )


def setup(app: web.Application) -> None:
    """Add the page routes and the security headers to the app."""
    app[PAGES] = Pages(app[SETTINGS])
    app.add_routes(routes)
    app.on_response_prepare.append(security_headers)
