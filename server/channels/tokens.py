"""Per-channel tokens, one model for every role: a moderator's chat tools, an uploader's tus
uploads, a streamer's dashboard login, a bot's chat messages through the API. Each token acts
in its own channel only; it is shown once when made and stored as a SHA-256 hash (192 random
bits need no slow KDF). All of channel_tokens' SQL is here."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

import asyncpg

ROLES = ("moderator", "uploader", "streamer", "bot")
MAX_NAME = 64


@dataclass(frozen=True)
class ChannelToken:
    """A token's holder as stored: its channel, role and label (never the token)."""

    id: int
    channel: str
    role: str
    name: str
    created_at: datetime


def hash_token(token: str) -> bytes:
    """The stored form of a token (undecodable header bytes kept as surrogates hash too)."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def _token(row: asyncpg.Record) -> ChannelToken:
    return ChannelToken(row["id"], row["channel"], row["role"], row["name"], row["created_at"])


async def create(
    db: asyncpg.Pool, channel: str, role: str, name: str, *, only_one: bool = False
) -> tuple[ChannelToken, str]:
    """A new token; returned with its secret this once. only_one: the channel's other tokens
    of this role stop working (the upload-token endpoint has always meant one per channel)."""
    secret = secrets.token_urlsafe(24)
    async with db.acquire() as conn, conn.transaction():
        if only_one:
            await conn.execute(
                "DELETE FROM channel_tokens WHERE channel = $1 AND role = $2", channel, role
            )
        row = await conn.fetchrow(
            "INSERT INTO channel_tokens (channel, role, name, token_hash)"
            " VALUES ($1, $2, $3, $4) RETURNING *",
            channel,
            role,
            name,
            hash_token(secret),
        )
    return _token(row), secret


async def of_channel(db: asyncpg.Pool, channel: str, role: str | None = None) -> list[ChannelToken]:
    """A channel's tokens (of one role, or all), oldest first."""
    rows = await db.fetch(
        "SELECT * FROM channel_tokens WHERE channel = $1 AND ($2::text IS NULL OR role = $2)"
        " ORDER BY id",
        channel,
        role,
    )
    return [_token(r) for r in rows]


async def revoke(db: asyncpg.Pool, channel: str, token_id: int, role: str | None = None) -> bool:
    """Delete one of the channel's tokens; False when it has none with that id (and role)."""
    done = await db.execute(
        "DELETE FROM channel_tokens WHERE channel = $1 AND id = $2"
        " AND ($3::text IS NULL OR role = $3)",
        channel,
        token_id,
        role,
    )
    return bool(done != "DELETE 0")


async def get(db: asyncpg.Pool, channel: str, token_id: int) -> ChannelToken | None:
    """One of the channel's tokens by id, or None."""
    row = await db.fetchrow(
        "SELECT * FROM channel_tokens WHERE channel = $1 AND id = $2", channel, token_id
    )
    return _token(row) if row is not None else None


async def find(db: asyncpg.Pool, secret: str, role: str) -> ChannelToken | None:
    """The token with this secret and role, or None (unknown, revoked, another role)."""
    row = await db.fetchrow(
        "SELECT * FROM channel_tokens WHERE token_hash = $1 AND role = $2",
        hash_token(secret),
        role,
    )
    return _token(row) if row is not None else None


async def exists(db: asyncpg.Pool, token_id: int, timeout: float | None = None) -> bool:
    """True while the token has not been revoked."""
    found = await db.fetchval(
        "SELECT 1 FROM channel_tokens WHERE id = $1", token_id, timeout=timeout
    )
    return bool(found)
