"""Playlists through the server: one stat per request, each fetch counted as a viewer."""

from __future__ import annotations

import os
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web
from multidict import CIMultiDict

from server.live.metrics import PLAYLIST_REQUESTS
from server.live.viewers import VIEWERS, session_key
from server.settings import SETTINGS
from transcoder.layout import MediaLayout, valid_slug

routes = web.RouteTableDef()

RENDITION = re.compile(r"^[a-z0-9]{1,16}$")
# A CIMultiDict already: each response copies it rather than building one from a dict.
PLAYLIST_HEADERS = CIMultiDict(
    {
        "Content-Type": "application/vnd.apple.mpegurl",
        # A live playlist changes every segment: never cache it anywhere.
        "Cache-Control": "no-cache, no-store",
        "Access-Control-Allow-Origin": "*",
    }
)
# Bound once: labels() on every request costs a lookup and a lock.
PLAYLISTS_SERVED = PLAYLIST_REQUESTS.labels("served")
PLAYLISTS_MISSING = PLAYLIST_REQUESTS.labels("missing")

# A file whose mtime is this close to the moment it was read may be rewritten in place within
# the same timestamp tick (the kernel stamps files from a clock that moves every few ms), with
# no visible change to (inode, mtime, size): such bytes are served but not cached.
RACY_NS = 100_000_000
MAX_CACHED = 4096


@dataclass
class PlaylistCache:
    """Playlist bytes by path, served while the file's (inode, mtime, size) is unchanged.

    One stat instead of open/read/close. The transcoder replaces playlists by rename (a new
    inode); an in-place rewrite changes mtime or size, and the racy rule above covers a
    rewrite within one timestamp tick, so a cached answer is never older than a fresh read.
    """

    root: str
    entries: dict[str, tuple[tuple[int, int, int], bytes]] = field(default_factory=dict)

    def read(self, path: str) -> bytes:
        """The file's bytes; FileNotFoundError/NotADirectoryError when it is not there."""
        st = os.stat(path)
        entry = self.entries.get(path)
        if entry is not None and entry[0] == (st.st_ino, st.st_mtime_ns, st.st_size):
            return entry[1]
        return self.fill(path)

    def fill(self, path: str) -> bytes:
        """Read the file and remember it under the identity of what was read."""
        started = time.time_ns()
        with open(path, "rb", buffering=0) as file:
            st = os.fstat(file.fileno())  # the inode read from, whatever the path names now
            body = file.readall()
        if st.st_mtime_ns < started - RACY_NS:
            if len(self.entries) >= MAX_CACHED:
                self.entries.clear()
            self.entries[path] = ((st.st_ino, st.st_mtime_ns, st.st_size), body)
        else:
            self.entries.pop(path, None)
        return body


PLAYLISTS: web.AppKey[PlaylistCache] = web.AppKey("playlists", PlaylistCache)


def read_playlist(request: web.Request, *parts: str) -> web.Response:
    """The playlist file under MEDIA_DIR/live, counted as a viewer fetch; 404 when absent."""
    slug = request.match_info["slug"]
    if not valid_slug(slug):
        raise web.HTTPNotFound()
    cache = request.app[PLAYLISTS]
    # slug and parts are checked against their patterns: a plain join cannot leave the root.
    path = "/".join((cache.root, slug, *parts))
    try:
        # Small file, page cache: a stat (or a plain read) costs less than a thread hop.
        body = cache.read(path)
    except (FileNotFoundError, NotADirectoryError):
        PLAYLISTS_MISSING.inc()
        raise web.HTTPNotFound() from None
    PLAYLISTS_SERVED.inc()
    sessions = request.app[VIEWERS]
    address, session = session_key(request, sessions.hasher)
    sessions.touch(slug, session, address, time.monotonic(), media=parts[-1] == "index.m3u8")
    return web.Response(body=body, headers=PLAYLIST_HEADERS)


# Registered first: players fetch a media playlist every segment and the master once, and
# aiohttp tries the routes under /hls in the order they were added.
@routes.get("/hls/{slug}/{rendition}/index.m3u8")
async def rendition_playlist(request: web.Request) -> web.Response:
    """One rendition's media playlist."""
    rendition = request.match_info["rendition"]
    if not RENDITION.fullmatch(rendition):
        raise web.HTTPNotFound()
    return read_playlist(request, rendition, "index.m3u8")


@routes.get("/hls/{slug}/master.m3u8")
async def master_playlist(request: web.Request) -> web.Response:
    """The channel's master playlist."""
    return read_playlist(request, "master.m3u8")


async def playlist_cache(app: web.Application) -> AsyncIterator[None]:
    """The playlist cache over MEDIA_DIR/live for the life of the app."""
    app[PLAYLISTS] = PlaylistCache(str(MediaLayout(app[SETTINGS].media_root).live))
    yield
