"""The recordings table: ids, the guarded state transitions, the API's JSON shape."""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

import asyncpg

from transcoder.recordings import media

STATES = ("recording", "finalizing", "compressing", "ready", "failed", "deleted")
IN_PROGRESS = ("recording", "finalizing")
PLAYABLE = ("compressing", "ready")
ID_RE = re.compile(r"^[0-9a-f]{16,32}$")


def new_id() -> str:
    """Time-ordered hex (ms) plus randomness: folder names sort by start, URLs never repeat."""
    return f"{time.time_ns() // 1_000_000:011x}{secrets.token_hex(4)}"


# The state machine. The migration's trigger rejects any other transition; the WHERE clause
# makes each step a compare-and-set, so two paths racing cannot both take it.
_COLUMNS = frozenset(
    {"ended_at", "finalized_at", "compressed_at", "deleted_at", "duration_s", "bytes",
     "original_bytes", "codec", "error", "deleted_reason"}
)  # fmt: skip


async def transition(
    db: asyncpg.Pool, rid: str, to: str, frm: tuple[str, ...], **columns: Any
) -> bool:
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
    mp4 = media.COMPRESSED if row["compressed_at"] is not None else media.ORIGINAL
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
        "mp4_url": base + mp4 if playable else None,
    }
