"""Playlists through the server, and viewer sessions: alive while a player keeps fetching."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from aiohttp import web
from multidict import CIMultiDict

from server.channels import valid_slug
from server.keys import LIVE, REDIS, SETTINGS, VIEWERS
from server.metrics import PLAYLIST_REQUESTS, VIEWERS_GAUGE
from server.net import client_address

log = logging.getLogger("onair.viewers")
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
SWEEP_INTERVAL = 1.0
# Bound once: labels() on every request costs a lookup and a lock.
PLAYLISTS_SERVED = PLAYLIST_REQUESTS.labels("served")
PLAYLISTS_MISSING = PLAYLIST_REQUESTS.labels("missing")
VIEWERS_PREFIX = "onair:viewers:"


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


@dataclass
class ViewerSessions:
    """Last playlist fetch per (channel, session key), in this process; the playlist cache."""

    ttl: float
    playlists: PlaylistCache
    hasher: hashlib.blake2b  # keyed_hasher(secret_key)
    seen: dict[str, dict[str, float]] = field(default_factory=dict)

    def touch(self, slug: str, session: str, now: float) -> None:
        """A player of `slug` fetched a playlist."""
        sessions = self.seen.get(slug)
        if sessions is None:  # not setdefault: that builds an empty dict on every call
            sessions = self.seen[slug] = {}
        sessions[session] = now

    def sweep(self, now: float) -> dict[str, int]:
        """Forget sessions older than the TTL; returns live sessions per channel."""
        counts: dict[str, int] = {}
        for slug in list(self.seen):
            sessions = self.seen[slug]
            for key in [k for k, t in sessions.items() if now - t > self.ttl]:
                del sessions[key]
            if sessions:
                counts[slug] = len(sessions)
            else:
                del self.seen[slug]
        return counts


def keyed_hasher(secret: str) -> hashlib.blake2b:
    """A blake2b keyed with the server's secret; each session key hashes a copy of it."""
    return hashlib.blake2b(key=secret.encode()[:64], digest_size=12)


def session_key(request: web.Request, hasher: hashlib.blake2b) -> str:
    """Who is watching, without keeping who: a keyed hash of address and user agent."""
    headers = request.headers
    address = client_address(request.remote, headers.get("X-Forwarded-For", ""))
    hasher = hasher.copy()  # copying skips hashing the key block again
    hasher.update(f"{address}\n{headers.get('User-Agent', '')}".encode())
    return hasher.hexdigest()


def read_playlist(request: web.Request, *parts: str) -> web.Response:
    """The playlist file under MEDIA_DIR/live, counted as a viewer fetch; 404 when absent."""
    slug = request.match_info["slug"]
    if not valid_slug(slug):
        raise web.HTTPNotFound()
    sessions = request.app[VIEWERS]
    # slug and parts are checked against their patterns: a plain join cannot leave the root.
    path = "/".join((sessions.playlists.root, slug, *parts))
    try:
        # Small file, page cache: a stat (or a plain read) costs less than a thread hop.
        body = sessions.playlists.read(path)
    except (FileNotFoundError, NotADirectoryError):
        PLAYLISTS_MISSING.inc()
        raise web.HTTPNotFound() from None
    PLAYLISTS_SERVED.inc()
    sessions.touch(slug, session_key(request, sessions.hasher), time.monotonic())
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


async def shared_counts(
    redis: aioredis.Redis, sessions: ViewerSessions, ttl: float
) -> dict[str, int]:
    """Push this process's sessions to Redis and read every host's count back."""
    now = time.time()
    async with redis.pipeline(transaction=False) as pipe:
        for slug, keys in sessions.seen.items():
            pipe.zadd(f"{VIEWERS_PREFIX}{slug}", dict.fromkeys(keys, now))
            pipe.expire(f"{VIEWERS_PREFIX}{slug}", int(ttl * 3))
        await pipe.execute()
    names = sorted({name async for name in redis.scan_iter(match=VIEWERS_PREFIX + "*", count=500)})
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.zremrangebyscore(name, "-inf", now - ttl)
            pipe.zcard(name)
        results = await pipe.execute()
    counts = {
        name.decode().removeprefix(VIEWERS_PREFIX): int(count)
        for name, count in zip(names, results[1::2], strict=True)
    }
    return {slug: n for slug, n in counts.items() if n}


async def viewer_sessions(app: web.Application) -> AsyncIterator[None]:
    """Keep per-channel viewer counts fresh (shared through Redis when it is configured)."""
    settings = app[SETTINGS]
    playlists = PlaylistCache(str(settings.media_root / "live"))
    hasher = keyed_hasher(settings.secret_key)
    sessions = app[VIEWERS] = ViewerSessions(settings.viewer_session_seconds, playlists, hasher)

    async def sweep_forever() -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            local = sessions.sweep(time.monotonic())
            counts = local
            redis = app[REDIS]
            if redis is not None:
                try:
                    counts = await shared_counts(redis, sessions, sessions.ttl)
                except (aioredis.RedisError, OSError) as err:
                    log.warning("viewer counts from redis failed error=%s", type(err).__name__)
            for slug in set(app[LIVE].viewer_counts) | set(counts):
                VIEWERS_GAUGE.labels(slug).set(counts.get(slug, 0))
            app[LIVE].viewer_counts = counts

    task = asyncio.create_task(sweep_forever())
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
