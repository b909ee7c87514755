"""The uploads and videos tables: ids, guarded state transitions, tokens, the API's JSON."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from typing import Any

import asyncpg

UPLOAD_ID_RE = re.compile(r"^[0-9a-f]{32}$")
VIDEO_ID_RE = re.compile(r"^[0-9a-f]{16,32}$")
UPLOAD_STATES = ("receiving", "done", "rejected", "expired", "terminated")
VIDEO_STATES = ("queued", "transcoding", "ready", "failed", "deleted")

_VIDEO_COLUMNS = frozenset(
    {"started_at", "ready_at", "deleted_at", "progress", "duration_s", "width", "height",
     "bytes", "renditions", "error"}
)  # fmt: skip
_UPLOAD_COLUMNS = frozenset({"received", "error", "video_id"})


def new_upload_id() -> str:
    """128 random bits: the upload URL is hard to guess even before the token is checked."""
    return secrets.token_hex(16)


def new_video_id() -> str:
    """Time-ordered hex (ms) plus randomness, like recording ids: folders sort by age."""
    return f"{time.time_ns() // 1_000_000:011x}{secrets.token_hex(4)}"


def new_token() -> str:
    """192 random bits, URL-safe, for an upload token."""
    return secrets.token_urlsafe(24)


def hash_token(token: str) -> bytes:
    """One SHA-256 is enough for 192 random bits (as for stream keys)."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


async def _transition(
    db: asyncpg.Pool | asyncpg.Connection,
    table: str,
    row_id: str,
    to: str,
    frm: tuple[str, ...],
    columns: dict[str, Any],
) -> bool:
    sets = ["state = $2"] + [f"{name} = ${i}" for i, name in enumerate(columns, start=4)]
    if table == "uploads":
        sets.append("updated_at = now()")
    found = await db.fetchval(
        f"UPDATE {table} SET {', '.join(sets)} WHERE id = $1 AND state = ANY($3::text[]) "
        "RETURNING id",
        row_id,
        to,
        list(frm),
        *columns.values(),
    )
    return found is not None


async def upload_transition(
    db: asyncpg.Pool | asyncpg.Connection, uid: str, to: str, **columns: Any
) -> bool:
    """receiving → `to`, setting columns; False if the upload had already left receiving."""
    assert to in UPLOAD_STATES and set(columns) <= _UPLOAD_COLUMNS
    return await _transition(db, "uploads", uid, to, ("receiving",), columns)


async def video_transition(
    db: asyncpg.Pool | asyncpg.Connection, vid: str, to: str, frm: tuple[str, ...], **columns: Any
) -> bool:
    """Move a video from one of `frm` to `to` (a compare-and-set, as for recordings)."""
    assert to in VIDEO_STATES and set(columns) <= _VIDEO_COLUMNS
    return await _transition(db, "videos", vid, to, frm, columns)


def video_urls(channel: str, vid: str) -> tuple[str, str]:
    """The master playlist and poster URLs of a video (served from MEDIA_DIR/videos)."""
    base = f"/videos/{channel}/{vid}/"
    return base + "master.m3u8", base + "poster.jpg"


def video_json(row: asyncpg.Record) -> dict[str, Any]:
    """A video as the API shows it; URLs only once it plays."""
    ready = row["state"] == "ready"
    hls, poster = video_urls(row["channel"], row["id"])
    return {
        "id": row["id"],
        "channel": row["channel"],
        "title": row["title"],
        "state": row["state"],
        "progress": round(float(row["progress"]), 3),
        "created_at": row["created_at"].isoformat(),
        "ready_at": row["ready_at"].isoformat() if row["ready_at"] else None,
        "duration_s": row["duration_s"],
        "width": row["width"],
        "height": row["height"],
        "bytes": row["bytes"],
        "renditions": list(row["renditions"]),
        "error": row["error"],
        "hls_url": hls if ready else None,
        "poster_url": poster if ready else None,
    }


def upload_json(row: asyncpg.Record) -> dict[str, Any]:
    """An upload as the API shows it (the tus URL while it can still receive bytes)."""
    return {
        "id": row["id"],
        "channel": row["channel"],
        "state": row["state"],
        "length": row["length"],
        "received": row["received"],
        "filename": row["filename"],
        "title": row["title"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
        "error": row["error"],
        "video_id": row["video_id"],
        "upload_url": f"/api/uploads/{row['id']}" if row["state"] == "receiving" else None,
    }
