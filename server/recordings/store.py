"""The recordings table, all of its SQL: ids, the guarded state transitions, the queries
of capture, compression and retention, and the API's JSON shape."""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any

import asyncpg

from server.db import Db
from transcoder.recordings import media

STATES = ("recording", "finalizing", "compressing", "ready", "failed", "deleted")
IN_PROGRESS = ("recording", "finalizing")
PLAYABLE = ("compressing", "ready")
ID_RE = re.compile(r"^[0-9a-f]{16,32}$")
# The download link the API lists: one name for as long as the recording is, served from
# whichever file is complete at request time (the original, then the compressed copy).
MP4_LINK = "recording.mp4"


def new_id() -> str:
    """Time-ordered hex (ms) plus randomness: folder names sort by start, URLs never repeat."""
    return f"{time.time_ns() // 1_000_000:011x}{secrets.token_hex(4)}"


# The state machine. The migration's trigger rejects any other transition; the WHERE clause
# makes each step a compare-and-set, so two paths racing cannot both take it.
_COLUMNS = frozenset(
    {"ended_at", "finalized_at", "compressed_at", "deleted_at", "duration_s", "bytes",
     "original_bytes", "codec", "error", "deleted_reason", "clock"}
)  # fmt: skip


async def transition(db: Db, rid: str, to: str, frm: tuple[str, ...], **columns: Any) -> bool:
    """Move rid from one of `frm` to `to`, setting columns; False if it was not in `frm`."""
    assert to in STATES and set(columns) <= _COLUMNS
    sets = ["state = $2"] + [f"{name} = ${i}" for i, name in enumerate(columns, start=4)]
    row = await db.fetchval(
        f"UPDATE recordings SET {', '.join(sets)} WHERE id = $1 AND state = ANY($3::text[]) "
        "RETURNING id",
        rid,
        to,
        list(frm),
        *columns.values(),
    )
    return row is not None


def recording_json(row: asyncpg.Record) -> dict[str, Any]:
    """A recording as the API shows it; URLs only once there is something to play."""
    base = f"/vod/{row['channel']}/{row['id']}/"
    playable = row["state"] in PLAYABLE
    ended = row["ended_at"]
    return {
        "id": row["id"],
        "channel": row["channel"],
        "state": row["state"],
        "started_at": row["started_at"].isoformat(),
        "ended_at": ended.isoformat() if ended else None,
        "duration_s": row["duration_s"],
        "bytes": row["bytes"],
        "codec": row["codec"],
        "hls_url": base + media.PLAYLIST if playable else None,
        # Not the file's own name: compression replaces and deletes the original while a
        # list that named it may still be on a page or in a download manager.
        "mp4_url": base + MP4_LINK if playable else None,
        # [[media seconds, Unix seconds], ...]: where each captured part sits on the wall
        # clock (chat replay); null for recordings made before it was kept
        "clock": json.loads(row["clock"]) if row["clock"] else None,
    }


async def insert(db: asyncpg.Pool, rid: str, channel: str, host: str) -> None:
    """A new session row in state `recording`, owned by `host`."""
    await db.execute(
        "INSERT INTO recordings (id, channel, host) VALUES ($1, $2, $3)", rid, channel, host
    )


async def claim_legacy(db: asyncpg.Pool, host: str) -> None:
    """Rows from before hosts were recorded become `host`'s: right for the single-host
    deployments that existed then (with several, the first host to start takes them)."""
    await db.execute("UPDATE recordings SET host = $1 WHERE host = ''", host)


async def interrupted(db: asyncpg.Pool, host: str, active: list[str]) -> list[asyncpg.Record]:
    """This host's sessions still recording or finalizing, but for the `active` ones."""
    return list(
        await db.fetch(
            "SELECT id, channel, state FROM recordings WHERE host = $3 "
            "AND state = ANY($1::text[]) AND NOT id = ANY($2::text[]) ORDER BY started_at",
            list(IN_PROGRESS),
            active,
            host,
        )
    )


async def next_to_compress(db: asyncpg.Pool, host: str, skip: list[str]) -> asyncpg.Record | None:
    """This host's oldest recording waiting for compression, but for the `skip` ones."""
    row: asyncpg.Record | None = await db.fetchrow(
        "SELECT id, channel FROM recordings WHERE host = $1 AND state = 'compressing' "
        "AND NOT id = ANY($2::text[]) ORDER BY started_at LIMIT 1",
        host,
        skip,
    )
    return row


async def get(db: asyncpg.Pool, rid: str) -> asyncpg.Record | None:
    """id, channel and state of one recording."""
    row: asyncpg.Record | None = await db.fetchrow(
        "SELECT id, channel, state FROM recordings WHERE id = $1", rid
    )
    return row


async def of_channel_one(db: asyncpg.Pool, channel: str, rid: str) -> asyncpg.Record | None:
    """One of a channel's recordings, every column (recording_json), None if it has no such."""
    row: asyncpg.Record | None = await db.fetchrow(
        "SELECT * FROM recordings WHERE id = $1 AND channel = $2 AND state <> 'deleted'",
        rid,
        channel,
    )
    return row


async def retained(db: asyncpg.Pool, host: str) -> list[asyncpg.Record]:
    """This host's recordings retention may look at (every one not deleted)."""
    return list(
        await db.fetch(
            "SELECT id, started_at, bytes, state FROM recordings "
            "WHERE host = $1 AND state <> 'deleted'",
            host,
        )
    )


async def kept_ids(db: asyncpg.Pool) -> set[str]:
    """Ids of every recording not deleted, on any host (a folder without one is an orphan)."""
    return {r["id"] for r in await db.fetch("SELECT id FROM recordings WHERE state <> 'deleted'")}


async def totals_by_state(db: asyncpg.Pool) -> dict[str, asyncpg.Record]:
    """Per state: count (n), bytes (b) and media seconds (s)."""
    rows = await db.fetch(
        "SELECT state, count(*) AS n, coalesce(sum(bytes), 0) AS b, "
        "coalesce(sum(duration_s), 0) AS s FROM recordings GROUP BY state"
    )
    return {r["state"]: r for r in rows}


async def of_channel(db: asyncpg.Pool, channel: str) -> list[asyncpg.Record]:
    """A channel's recordings, newest first (deleted ones are gone)."""
    return list(
        await db.fetch(
            "SELECT * FROM recordings WHERE channel = $1 AND state <> 'deleted' "
            "ORDER BY started_at DESC LIMIT 1000",
            channel,
        )
    )


async def vod_row(db: asyncpg.Pool, rid: str, channel: str) -> asyncpg.Record | None:
    """state and compressed_at of a channel's recording, None when there is no such one."""
    row: asyncpg.Record | None = await db.fetchrow(
        "SELECT state, compressed_at FROM recordings WHERE id = $1 AND channel = $2", rid, channel
    )
    return row
