"""GET /thumb/<slug>.jpg: a still of a live channel, cut from its newest segment by FFmpeg."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from server.live.directory import LIVE
from server.settings import SETTINGS
from server.web.auth import path_slug
from transcoder.ffmpeg.process import run_captured
from transcoder.layout import MediaLayout
from transcoder.live.playlist import newest_media, read_variants

log = logging.getLogger("onair.pages")
routes = web.RouteTableDef()

THUMB_SECONDS = 10.0  # a thumbnail is at most this old; FFmpeg runs at most this often per channel
THUMB_TIMEOUT = 10.0
THUMB_HEIGHT = 180


@dataclass
class Thumbnails:
    """A still from each live channel's latest segment, made by FFmpeg at most every few seconds."""

    layout: MediaLayout
    ffmpeg: str
    cache: dict[str, tuple[float, bytes]] = field(default_factory=dict)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def latest(self, slug: str) -> tuple[Path, Path] | None:
        """init.mp4 and the newest segment of the channel's cheapest rendition."""
        folder = self.layout.live_channel(slug)
        try:
            variants = read_variants((folder / "master.m3u8").read_text())
        except OSError:
            return None
        if not variants:
            return None
        rendition = folder / min(variants, key=lambda v: v.bandwidth).rendition
        try:
            names = newest_media((rendition / "index.m3u8").read_text())
        except OSError:
            return None
        if names is None:
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
        args = [
            self.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error",
            "-f", "mp4",  # init + one fragment piped in: a complete fragmented MP4
            "-i", "pipe:0",
            "-frames:v", "1",
            "-vf", f"scale=-2:{THUMB_HEIGHT}",  # list thumbnails are small; keep the aspect ratio
            "-q:v", "5",
            "-f", "image2pipe", "-c:v", "mjpeg",
            "pipe:1",
        ]  # fmt: skip
        try:
            rc, out, err = await run_captured(args, timeout=THUMB_TIMEOUT, stdin=source)
        except TimeoutError:
            log.warning("thumbnail timed out channel=%s", slug)
            return None
        if rc != 0 or not out:
            log.warning("thumbnail failed channel=%s error=%s", slug, err.decode()[-200:].strip())
            return None
        return out


THUMBNAILS: web.AppKey[Thumbnails] = web.AppKey("thumbnails", Thumbnails)


@routes.get("/thumb/{slug}.jpg")
async def thumbnail(request: web.Request) -> web.Response:
    """A still of a live channel (from its latest segment); 404 while offline or not ready."""
    slug = path_slug(request)
    if await request.app[LIVE].started_at(slug) is None:
        raise web.HTTPNotFound()
    image = await request.app[THUMBNAILS].get(slug)
    if image is None:
        raise web.HTTPNotFound()
    return web.Response(
        body=image,
        headers={
            "Content-Type": "image/jpeg",
            "Cache-Control": f"public, max-age={THUMB_SECONDS:.0f}",
        },
    )


async def thumbnails(app: web.Application) -> AsyncIterator[None]:
    """The thumbnail cache for the life of the app."""
    settings = app[SETTINGS]
    app[THUMBNAILS] = Thumbnails(MediaLayout(settings.media_root), settings.ffmpeg)
    yield
