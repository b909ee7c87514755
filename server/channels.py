"""Channels and their stream keys: created, listed, rotated, deleted, matched on publish."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
import unicodedata
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from server.errors import ApiError, Conflict, NotFound
from server.settings import SLUG_PATTERN

SLUG_RE = re.compile(SLUG_PATTERN)
MAX_TITLE = 200
# How long a pool's channel list is reused. Writes through this module drop it at once;
# a write by another process or host (the CLI, a second server) shows within this time.
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


def valid_slug(slug: str) -> bool:
    """True when the slug matches DESIGN's pattern (and so is safe in a path)."""
    return SLUG_RE.fullmatch(slug) is not None


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


async def create_channel(db: asyncpg.Pool, slug: str, title: str) -> tuple[Channel, str]:
    """Insert a channel; returns it and its stream key, which is shown this once."""
    key = new_stream_key()
    try:
        row = await db.fetchrow(
            "INSERT INTO channels (slug, title, key_hash) VALUES ($1, $2, $3) RETURNING *",
            slug,
            title,
            hash_key(key),
        )
    except asyncpg.UniqueViolationError as err:
        raise Conflict(f"channel {slug} already exists") from err
    changed(db)
    return _channel(row), key


@dataclass
class Listing:
    """A pool's channel list, reused for LISTING_SECONDS (GET /api/channels, the index page)."""

    expires: float = 0.0
    channels: tuple[Channel, ...] = ()
    # Bumped by every write: a list read before a write must not be kept after it.
    generation: int = 0


# Listings of the pools the server opened (db.postgres adds and drops its pool). A side table
# because asyncpg's Pool has __slots__; other pools (the CLI's) are not cached.
LISTINGS: dict[asyncpg.Pool, Listing] = {}


def changed(db: asyncpg.Pool) -> None:
    """Channels were written through this pool: its next list comes from the database."""
    listing = LISTINGS.get(db)
    if listing is not None:
        listing.generation += 1
        listing.expires = 0.0


async def list_channels(db: asyncpg.Pool) -> list[Channel]:
    """Every channel, oldest first; reused for up to LISTING_SECONDS (~2x /api/channels)."""
    listing = LISTINGS.get(db)
    if listing is not None and time.monotonic() < listing.expires:
        return list(listing.channels)
    generation = listing.generation if listing is not None else 0
    # The columns a Channel has, not *: the key hash is never needed here.
    rows = await db.fetch(
        "SELECT slug, title, disabled, created_at FROM channels ORDER BY created_at, slug"
    )
    found = [_channel(r) for r in rows]
    if listing is not None and listing.generation == generation:
        listing.channels = tuple(found)
        listing.expires = time.monotonic() + LISTING_SECONDS
    return found


async def get_channel(db: asyncpg.Pool, slug: str) -> Channel:
    """One channel or NotFound."""
    row = await db.fetchrow("SELECT * FROM channels WHERE slug = $1", slug)
    if row is None:
        raise NotFound(f"no channel {slug}")
    return _channel(row)


async def rotate_key(db: asyncpg.Pool, slug: str) -> str:
    """Give the channel a new key; the old one stops matching at once."""
    key = new_stream_key()
    done = await db.execute(
        "UPDATE channels SET key_hash = $2 WHERE slug = $1", slug, hash_key(key)
    )
    if done == "UPDATE 0":
        raise NotFound(f"no channel {slug}")
    return key


async def set_disabled(db: asyncpg.Pool, slug: str, disabled: bool) -> None:
    """Disable (or enable) publishing on a channel."""
    done = await db.execute("UPDATE channels SET disabled = $2 WHERE slug = $1", slug, disabled)
    changed(db)
    if done == "UPDATE 0":
        raise NotFound(f"no channel {slug}")


async def delete_channel(db: asyncpg.Pool, slug: str) -> None:
    """Remove a channel and everything that hangs off it."""
    done = await db.execute("DELETE FROM channels WHERE slug = $1", slug)
    changed(db)
    if done == "DELETE 0":
        raise NotFound(f"no channel {slug}")


async def channel_for_key(db: asyncpg.Pool, key: str) -> Channel | None:
    """The channel whose key this is, or None; the stored hash is compared in constant time."""
    digest = hash_key(key)
    row = await db.fetchrow("SELECT * FROM channels WHERE key_hash = $1", digest)
    if row is None or not hmac.compare_digest(bytes(row["key_hash"]), digest):
        return None
    return _channel(row)
