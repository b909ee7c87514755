"""The uploads and videos tables, all of their SQL: ids, guarded state transitions, the
queries of the tus handler, the VOD queue and housekeeping, the API's JSON (upload tokens are
channel tokens: server/channels/tokens.py)."""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

import asyncpg

from server.db import Db

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


async def _transition(
    db: Db,
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


async def upload_transition(db: Db, uid: str, to: str, **columns: Any) -> bool:
    """receiving → `to`, setting columns; False if the upload had already left receiving."""
    assert to in UPLOAD_STATES and set(columns) <= _UPLOAD_COLUMNS
    return await _transition(db, "uploads", uid, to, ("receiving",), columns)


async def video_transition(db: Db, vid: str, to: str, frm: tuple[str, ...], **columns: Any) -> bool:
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


# -- the SQL of uploads and videos ---------------------------------------------------------


async def get_upload(db: Db, uid: str) -> asyncpg.Record | None:
    """One upload row."""
    row: asyncpg.Record | None = await db.fetchrow("SELECT * FROM uploads WHERE id = $1", uid)
    return row


async def insert_upload(
    db: Db, uid: str, channel: str, length: int, filename: str | None, title: str, host: str
) -> None:
    """A new upload, receiving."""
    await db.execute(
        "INSERT INTO uploads (id, channel, length, filename, title, host) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        uid, channel, length, filename, title, host,
    )  # fmt: skip


async def touch_upload(db: Db, uid: str, received: int) -> None:
    """Bytes keep arriving: `received` mirrors the file, and expiry counts from now."""
    await db.execute(
        "UPDATE uploads SET received = $2, updated_at = now() "
        "WHERE id = $1 AND state = 'receiving'",
        uid,
        received,
    )


async def promised_bytes(db: Db, host: str) -> int:
    """Bytes this host's unfinished uploads may still send."""
    return int(
        await db.fetchval(
            "SELECT coalesce(sum(length - received), 0) FROM uploads "
            "WHERE host = $1 AND state = 'receiving'",
            host,
        )
    )


async def receiving(db: Db, host: str) -> list[asyncpg.Record]:
    """This host's uploads still receiving."""
    return list(
        await db.fetch(
            "SELECT id, channel, title, length FROM uploads WHERE host = $1 "
            "AND state = 'receiving'",
            host,
        )
    )


async def expire_idle(db: Db, host: str, idle_s: float) -> list[asyncpg.Record]:
    """This host's incomplete uploads idle past idle_s, marked expired; returns them."""
    return list(
        await db.fetch(
            "UPDATE uploads SET state = 'expired', updated_at = now() "
            "WHERE host = $2 AND state = 'receiving' "
            "AND updated_at < now() - make_interval(secs => $1) RETURNING id, channel",
            idle_s,
            host,
        )
    )


async def needed_upload_ids(db: Db) -> set[str]:
    """Uploads whose bytes are still needed: receiving, or the source of a pending video."""
    rows = await db.fetch(
        "SELECT u.id FROM uploads u LEFT JOIN videos v ON v.id = u.video_id "
        "WHERE u.state = 'receiving' OR (u.state = 'done' "
        "AND v.state IN ('queued', 'transcoding'))"
    )
    return {r["id"] for r in rows}


async def of_channel(db: Db, channel: str) -> list[asyncpg.Record]:
    """A channel's uploads, newest first."""
    return list(
        await db.fetch(
            "SELECT * FROM uploads WHERE channel = $1 ORDER BY created_at DESC LIMIT 200", channel
        )
    )


async def insert_video(
    db: Db,
    vid: str,
    uid: str,
    channel: str,
    title: str,
    host: str,
    duration_s: float,
    width: int,
    height: int,
    source_bytes: int,
) -> None:
    """A new video, queued."""
    await db.execute(
        "INSERT INTO videos (id, channel, upload_id, title, duration_s, width, height, "
        "source_bytes, host) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        vid, channel, uid, title, duration_s, width, height, source_bytes, host,
    )  # fmt: skip


async def get_video(db: Db, vid: str) -> asyncpg.Record | None:
    """channel, upload id and state of one video."""
    row: asyncpg.Record | None = await db.fetchrow(
        "SELECT channel, upload_id, state FROM videos WHERE id = $1", vid
    )
    return row


async def video_state(db: Db, vid: str, channel: str) -> str | None:
    """The state of a channel's video, None when there is no such video."""
    state = await db.fetchval(
        "SELECT state FROM videos WHERE id = $1 AND channel = $2", vid, channel
    )
    return str(state) if state is not None else None


async def videos_of_channel(db: Db, channel: str) -> list[asyncpg.Record]:
    """A channel's videos, newest first (deleted ones are gone)."""
    return list(
        await db.fetch(
            "SELECT * FROM videos WHERE channel = $1 AND state <> 'deleted' "
            "ORDER BY created_at DESC LIMIT 1000",
            channel,
        )
    )


async def next_queued(db: Db, host: str) -> asyncpg.Record | None:
    """This host's oldest queued video (its source was uploaded here)."""
    row: asyncpg.Record | None = await db.fetchrow(
        "SELECT id, channel, upload_id, duration_s FROM videos "
        "WHERE host = $1 AND state = 'queued' ORDER BY created_at LIMIT 1",
        host,
    )
    return row


async def set_progress(db: Db, vid: str, fraction: float) -> None:
    """How far a running transcode is, 0..1."""
    await db.execute(
        "UPDATE videos SET progress = $2 WHERE id = $1 AND state = 'transcoding'", vid, fraction
    )


async def kept_video_ids(db: Db) -> set[str]:
    """Ids of every video not deleted, on any host."""
    return {r["id"] for r in await db.fetch("SELECT id FROM videos WHERE state <> 'deleted'")}


async def backlog(db: Db) -> int:
    """Videos queued or transcoding."""
    return int(
        await db.fetchval("SELECT count(*) FROM videos WHERE state IN ('queued', 'transcoding')")
    )


async def requeue(db: Db, host: str) -> None:
    """This host's interrupted transcodes go back to the queue (others' still run)."""
    await db.execute(
        "UPDATE videos SET state = 'queued' WHERE host = $1 AND state = 'transcoding'", host
    )


async def claim_legacy(db: Db, host: str) -> None:
    """Uploads and videos from before hosts were recorded become `host`'s (see recordings)."""
    for table in ("uploads", "videos"):
        await db.execute(f"UPDATE {table} SET host = $1 WHERE host = ''", host)
