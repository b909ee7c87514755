"""The channels table: channels and their stream keys, created, listed, rotated, deleted and
matched on publish. All of its SQL is here."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from aiohttp import web

from server.db import DB
from server.web.auth import path_slug
from server.web.errors import ApiError, Conflict, NotFound
from transcoder.layout import SLUG_PATTERN, valid_slug

MAX_TITLE = 200
# How long the channel list is reused (see ChannelStore).
LISTING_SECONDS = 1.0


@dataclass(frozen=True)
class Channel:
    """A channel as stored; the key itself is never kept."""

    slug: str
    title: str
    disabled: bool
    created_at: datetime


def new_stream_key() -> str:
    """192 random bits, URL- and RTMP-safe."""
    return secrets.token_urlsafe(24)


def hash_key(key: str) -> bytes:
    """Keys carry 192 random bits, so one SHA-256 is enough; no slow KDF is needed."""
    return hashlib.sha256(key.encode()).digest()


def check_slug(slug: object) -> str:
    """The slug, or a 400 naming the pattern."""
    if not isinstance(slug, str) or not valid_slug(slug):
        raise ApiError(f"slug must match {SLUG_PATTERN}")
    return slug


def check_title(title: object) -> str:
    """A title is 1 to 200 characters of text, without control characters."""
    if (
        not isinstance(title, str)
        or not title.strip()
        or len(title) > MAX_TITLE
        # NUL and lone surrogates (JSON can spell "\ud800") are not text PostgreSQL can store.
        or any(unicodedata.category(ch) in ("Cc", "Cs") for ch in title)
    ):
        raise ApiError(
            f"title must be non-empty text of at most {MAX_TITLE} characters, "
            "without control characters"
        )
    return title.strip()


def _channel(row: asyncpg.Record) -> Channel:
    return Channel(row["slug"], row["title"], row["disabled"], row["created_at"])


class ChannelStore:
    """Channels in one pool, with the channel list reused for up to LISTING_SECONDS.

    The list (GET /api/channels, the index page) is read ~2x faster from memory. Writes
    through this store drop it at once; a write by another process or host (the CLI, a
    second server) shows within LISTING_SECONDS.
    """

    def __init__(self, db: asyncpg.Pool | asyncpg.Connection) -> None:
        self.db = db
        self._listing: tuple[Channel, ...] = ()
        self._expires = 0.0
        # Bumped by every write: a list read before a write must not be kept after it.
        self._generation = 0

    def _changed(self) -> None:
        self._generation += 1
        self._expires = 0.0

    async def create(self, slug: str, title: str) -> tuple[Channel, str]:
        """Insert a channel; returns it and its stream key, which is shown this once."""
        key = new_stream_key()
        try:
            row = await self.db.fetchrow(
                "INSERT INTO channels (slug, title, key_hash) VALUES ($1, $2, $3) RETURNING *",
                slug,
                title,
                hash_key(key),
            )
        except asyncpg.UniqueViolationError as err:
            raise Conflict(f"channel {slug} already exists") from err
        self._changed()
        return _channel(row), key

    async def list(self) -> list[Channel]:
        """Every channel, oldest first."""
        if time.monotonic() < self._expires:
            return list(self._listing)
        generation = self._generation
        # The columns a Channel has, not *: the key hash is never needed here.
        rows = await self.db.fetch(
            "SELECT slug, title, disabled, created_at FROM channels ORDER BY created_at, slug"
        )
        found = [_channel(r) for r in rows]
        if self._generation == generation:
            self._listing = tuple(found)
            self._expires = time.monotonic() + LISTING_SECONDS
        return found

    async def get(self, slug: str) -> Channel:
        """One channel or NotFound."""
        row = await self.db.fetchrow("SELECT * FROM channels WHERE slug = $1", slug)
        if row is None:
            raise NotFound(f"no channel {slug}")
        return _channel(row)

    async def exists(self, slug: str, timeout: float | None = None) -> bool:
        """True when the channel exists (chat asks before a join)."""
        found = await self.db.fetchval(
            "SELECT 1 FROM channels WHERE slug = $1", slug, timeout=timeout
        )
        return bool(found)

    async def rotate_key(self, slug: str) -> str:
        """Give the channel a new key; the old one stops matching at once."""
        key = new_stream_key()
        done = await self.db.execute(
            "UPDATE channels SET key_hash = $2 WHERE slug = $1", slug, hash_key(key)
        )
        if done == "UPDATE 0":
            raise NotFound(f"no channel {slug}")
        return key

    async def set_title(self, slug: str, title: str) -> None:
        """Rename a channel (the slug stays)."""
        done = await self.db.execute("UPDATE channels SET title = $2 WHERE slug = $1", slug, title)
        self._changed()
        if done == "UPDATE 0":
            raise NotFound(f"no channel {slug}")

    async def set_disabled(self, slug: str, disabled: bool) -> None:
        """Disable (or enable) publishing on a channel; a live publisher is dropped by the
        next update hook (server/live/hooks.py)."""
        done = await self.db.execute(
            "UPDATE channels SET disabled = $2 WHERE slug = $1", slug, disabled
        )
        self._changed()
        if done == "UPDATE 0":
            raise NotFound(f"no channel {slug}")

    async def delete(self, slug: str) -> None:
        """Remove a channel and everything that hangs off it."""
        done = await self.db.execute("DELETE FROM channels WHERE slug = $1", slug)
        self._changed()
        if done == "DELETE 0":
            raise NotFound(f"no channel {slug}")

    async def for_key(self, key: str) -> Channel | None:
        """The channel whose key this is, or None; the stored hash is compared in constant time."""
        digest = hash_key(key)
        row = await self.db.fetchrow("SELECT * FROM channels WHERE key_hash = $1", digest)
        if row is None or not hmac.compare_digest(bytes(row["key_hash"]), digest):
            return None
        return _channel(row)


CHANNELS: web.AppKey[ChannelStore] = web.AppKey("channels", ChannelStore)


async def channel_store(app: web.Application) -> AsyncIterator[None]:
    """The app's ChannelStore, on the app's pool (after db.postgres)."""
    app[CHANNELS] = ChannelStore(app[DB])
    yield


async def channel_in_path(request: web.Request) -> str:
    """The slug in the request's path, of a channel that exists (404 otherwise)."""
    slug = path_slug(request)
    await request.app[CHANNELS].get(slug)
    return slug
