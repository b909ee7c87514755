"""Viewer sessions: a player is watching while it keeps fetching playlists; counts per channel,
shared through Redis when it is configured."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from aiohttp import web

from server.clients import REDIS
from server.live.metrics import VIEWERS_GAUGE
from server.settings import SETTINGS
from server.tasks import cancel_and_wait
from server.web.net import address_key, client_address

log = logging.getLogger("onair.viewers")
SWEEP_INTERVAL = 1.0
VIEWERS_PREFIX = "onair:viewers:"


# A session counts once it has fetched this many media playlists (players refresh one every
# segment): a request that only looks, or a client inventing one User-Agent per request, is
# served like any other and never counted.
COUNTED_AFTER = 2


@dataclass
class Tracked:
    """One player session: when it last fetched, how many media playlists, from where."""

    last: float
    fetches: int
    address: str


@dataclass
class ViewerSessions:
    """Last playlist fetch per (channel, session key) in this process, and the counts.

    An address counts for at most `per_address` sessions of a channel: past that its players
    are still served (thousands may share one carrier-grade NAT), only not counted.
    """

    ttl: float
    hasher: hashlib.blake2b  # keyed_hasher(secret_key)
    per_address: int = 20
    seen: dict[str, dict[str, Tracked]] = field(default_factory=dict)
    # Sessions tracked per (channel, address key), for the bound.
    addresses: dict[str, dict[str, int]] = field(default_factory=dict)
    # Viewers per channel, every host's when Redis is configured; refreshed each sweep.
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, slug: str) -> int:
        """Players watching the channel now."""
        return self.counts.get(slug, 0)

    def touch(self, slug: str, session: str, address: str, now: float, media: bool) -> None:
        """A player of `slug` fetched a playlist (`media`: a rendition's, not the master)."""
        sessions = self.seen.get(slug)
        if sessions is None:  # not setdefault: that builds an empty dict on every call
            sessions = self.seen[slug] = {}
            self.addresses[slug] = {}
        tracked = sessions.get(session)
        if tracked is not None:
            tracked.last = now
            tracked.fetches += media
            return
        per_address = self.addresses[slug]
        held = per_address.get(address, 0)
        if held >= self.per_address:
            return  # served, not counted
        per_address[address] = held + 1
        sessions[session] = Tracked(now, int(media), address)

    def counted(self, slug: str) -> list[str]:
        """The keys of the channel's sessions that count as viewers."""
        return [k for k, t in self.seen.get(slug, {}).items() if t.fetches >= COUNTED_AFTER]

    def sweep(self, now: float) -> dict[str, int]:
        """Forget sessions older than the TTL; returns counted sessions per channel."""
        counts: dict[str, int] = {}
        for slug in list(self.seen):
            sessions, per_address = self.seen[slug], self.addresses[slug]
            for key in [k for k, t in sessions.items() if now - t.last > self.ttl]:
                address = sessions.pop(key).address
                per_address[address] -= 1
                if not per_address[address]:
                    del per_address[address]
            if sessions:
                if counted := sum(t.fetches >= COUNTED_AFTER for t in sessions.values()):
                    counts[slug] = counted
            else:
                del self.seen[slug], self.addresses[slug]
        return counts


VIEWERS: web.AppKey[ViewerSessions] = web.AppKey("viewers", ViewerSessions)


def keyed_hasher(secret: str) -> hashlib.blake2b:
    """A blake2b keyed with the server's secret; each session key hashes a copy of it."""
    return hashlib.blake2b(key=secret.encode()[:64], digest_size=12)


def session_key(request: web.Request, hasher: hashlib.blake2b) -> tuple[str, str]:
    """Who is watching, without keeping who: the address key (an IPv6 address by its /64)
    and a keyed hash of address and user agent."""
    headers = request.headers
    address = client_address(request.remote, headers.get("X-Forwarded-For", ""))
    hasher = hasher.copy()  # copying skips hashing the key block again
    hasher.update(f"{address}\n{headers.get('User-Agent', '')}".encode())
    return address_key(address), hasher.hexdigest()


async def shared_counts(
    redis: aioredis.Redis, sessions: ViewerSessions, ttl: float
) -> dict[str, int]:
    """Push this process's sessions to Redis and read every host's count back."""
    now = time.time()
    async with redis.pipeline(transaction=False) as pipe:
        for slug in sessions.seen:
            if keys := sessions.counted(slug):
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
    hasher = keyed_hasher(settings.secret_key)
    sessions = app[VIEWERS] = ViewerSessions(
        settings.viewer_session_seconds, hasher, settings.viewer_sessions_per_address
    )

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
            for slug in set(sessions.counts) | set(counts):
                VIEWERS_GAUGE.labels(slug).set(counts.get(slug, 0))
            sessions.counts = counts

    task = asyncio.create_task(sweep_forever())
    yield
    await cancel_and_wait([task])
