"""Every file under static/, held in memory and served under a content-hashed name."""

from __future__ import annotations

import hashlib
import logging
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

log = logging.getLogger("onair.pages")
routes = web.RouteTableDef()

STATIC_DIR = Path(__file__).parent / "static"
# Files the pages name; the vendor ones are copied from node_modules by `npm ci` (package.json).
REQUIRED_ASSETS = (
    "onair.css",
    "player.js",
    "chat.js",
    "watch.js",
    "embed.js",
    "embed_code.js",
    "replay.js",
    "index.js",
    "admin_common.js",
    "admin.js",
    "admin_channel.js",
    "admin_live.js",
    "admin_destinations.js",
    "vendor/hls.light.min.js",
    "vendor/socket.io.min.js",
    "vendor/tus.min.js",
)
# A hashed name changes with its content, so a browser may keep each file for a year.
IMMUTABLE = "public, max-age=31536000, immutable"


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


ASSETS: web.AppKey[Assets] = web.AppKey("assets", Assets)


@routes.get("/static/{name:.+}")
async def static_file(request: web.Request) -> web.Response:
    """A static file by its content-hashed name; anything else is 404."""
    asset = request.app[ASSETS].files.get(request.match_info["name"])
    if asset is None:
        raise web.HTTPNotFound()
    return web.Response(
        body=asset.body,
        headers={"Content-Type": asset.content_type, "Cache-Control": IMMUTABLE},
    )
