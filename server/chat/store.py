"""Chat in PostgreSQL: batched message writes, history pages and bans (moderators are
channel tokens: server/channels/tokens.py)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from server.chat.limits import MAX_TEXT, iso_ms
from server.chat.metrics import CHAT_DROPPED, CHAT_PENDING, CHAT_WRITE_FAILURES
from server.chat.payloads import MessagePayload, Role, UserPayload
from server.chat.state import StoredBan
from server.webhooks import outbox
from transcoder.waiting import wait_event

log = logging.getLogger("onair.chat")

# Accepted messages wait at most this long before they are written.
FLUSH_SECONDS = 0.2
BATCH_SIZE = 500
# While PostgreSQL is away, keep this many messages in memory; beyond, the oldest go.
MAX_PENDING = 50_000
# A delete can name a message another host has not written yet: retry for ~10 s.
DELETE_ATTEMPTS = 50

# One statement, so the messages and their webhook deliveries are written together; a message
# already stored (a retried batch whose first commit went through) gets no second delivery.
_INSERT = """
WITH stored AS (
    INSERT INTO chat_messages
        (id, channel, user_id, user_name, user_role, ip_hash, body, created_at)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::text[], $8::timestamptz[])
    ON CONFLICT (id) DO NOTHING
    RETURNING id
), events AS (
    SELECT 'chat.message' AS event, m.channel, m.body, m.n
    FROM unnest($1::text[], $2::text[], $9::text[]) WITH ORDINALITY AS m(id, channel, body, n)
    WHERE m.id IN (SELECT id FROM stored)
)
""" + outbox.fan_out("events")


@dataclass(frozen=True)
class Pending:
    """An accepted message on its way to PostgreSQL."""

    message: MessagePayload
    ip_hash: str
    created: datetime


class MessageWriter:
    """Accepted messages queue in memory; a background loop writes them in batches.

    The ack goes out before the write, so a crash loses at most what is queued:
    about FLUSH_SECONDS of messages (more only while PostgreSQL is unreachable).
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._pending: list[Pending] = []
        self._deletes: dict[tuple[str, str], int] = {}  # (channel, message id) -> attempts left
        self._lock = asyncio.Lock()
        self._full = asyncio.Event()

    def add(self, message: MessagePayload, ip_hash: str, created: datetime) -> None:
        """Queue a message; never waits."""
        self._pending.append(Pending(message, ip_hash, created))
        if len(self._pending) > MAX_PENDING:
            del self._pending[0]
            CHAT_DROPPED.inc()
            log.error("chat write buffer full, oldest message dropped pending=%d", MAX_PENDING)
        if len(self._pending) >= BATCH_SIZE:
            self._full.set()
        CHAT_PENDING.set(len(self._pending))

    def delete(self, channel: str, message_id: str) -> None:
        """Queue a soft delete of a message of `channel` (only there: the moderator's power
        was checked there); applied after the inserts queued before it."""
        self._deletes[(channel, message_id)] = DELETE_ATTEMPTS

    @property
    def pending(self) -> int:
        """Messages accepted and not yet written."""
        return len(self._pending)

    async def run(self) -> None:
        """Write every FLUSH_SECONDS (or as soon as a batch is full) until cancelled."""
        while True:
            await wait_event(self._full, FLUSH_SECONDS)
            self._full.clear()
            try:
                await self.flush()
            except Exception as err:
                CHAT_WRITE_FAILURES.inc()
                log.warning(
                    "chat write failed, will retry pending=%d error=%s",
                    self.pending,
                    type(err).__name__,
                )

    async def flush(self) -> None:
        """Write what is queued now; on failure it stays queued (in order) for the next try."""
        async with self._lock:
            while self._pending:
                batch = self._pending[:BATCH_SIZE]
                await self._insert(batch)
                del self._pending[: len(batch)]
                CHAT_PENDING.set(len(self._pending))
            if self._deletes:
                wanted = list(self._deletes)
                found = await self._pool.fetch(
                    "UPDATE chat_messages m SET deleted_at = coalesce(m.deleted_at, now())"
                    " FROM unnest($1::text[], $2::text[]) AS d(channel, id)"
                    " WHERE m.id = d.id AND m.channel = d.channel RETURNING m.channel, m.id",
                    [channel for channel, _ in wanted],
                    [message_id for _, message_id in wanted],
                )
                done = {(r["channel"], r["id"]) for r in found}
                for key in wanted:
                    left = self._deletes.pop(key)
                    if key not in done and left > 1:
                        self._deletes[key] = left - 1

    async def _insert(self, batch: list[Pending]) -> None:
        try:
            await self._pool.execute(_INSERT, *_columns(batch))
        except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError):
            # One bad row (its channel deleted while it waited, say) must not hold back
            # the rest: write them one by one and drop only what PostgreSQL refuses.
            for one in batch:
                try:
                    await self._pool.execute(_INSERT, *_columns([one]))
                except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as err:
                    CHAT_DROPPED.inc()
                    log.warning(
                        "chat message not stored channel=%s id=%s error=%s",
                        one.message["channel"],
                        one.message["id"],
                        type(err).__name__,
                    )

    async def close(self) -> None:
        """Final flush on shutdown: a few tries, then say what is lost."""
        for attempt in range(3):
            try:
                await self.flush()
                return
            except Exception as err:
                log.warning(
                    "chat final flush failed attempt=%d error=%s", attempt + 1, type(err).__name__
                )
                await asyncio.sleep(0.5)
        CHAT_DROPPED.inc(self.pending)
        log.error("chat messages lost on shutdown count=%d", self.pending)


def _columns(batch: list[Pending]) -> tuple[list[object], ...]:
    msgs = [p.message for p in batch]
    return (
        [m["id"] for m in msgs],
        [m["channel"] for m in msgs],
        [m["user"]["id"] for m in msgs],
        [m["user"]["name"] for m in msgs],
        [m["user"]["role"] for m in msgs],
        [p.ip_hash for p in batch],
        [m["text"] for m in msgs],
        [p.created for p in batch],
        [
            outbox.body("chat.message", m["channel"], p.created, message=m)
            for m, p in zip(msgs, batch, strict=True)
        ],
    )


def _message(row: asyncpg.Record) -> MessagePayload:
    role: Role = "moderator" if row["user_role"] == "moderator" else "viewer"
    user: UserPayload = {"id": row["user_id"], "name": row["user_name"], "role": role}
    ms = int(row["created_at"].timestamp() * 1000)
    return {
        "id": row["id"],
        "channel": row["channel"],
        "user": user,
        "text": row["body"][:MAX_TEXT],
        "ts": iso_ms(ms),
    }


async def messages(
    db: asyncpg.Pool,
    channel: str,
    limit: int,
    *,
    before: str | None = None,
    after: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[MessagePayload]:
    """Up to `limit` stored messages, oldest first: the newest ones older than `before` (an
    id), or from `after` (an id) or `since` onwards the oldest ones; all sent before `until`."""
    forward = after is not None or since is not None
    rows = await db.fetch(
        f"""SELECT * FROM chat_messages
           WHERE channel = $1 AND deleted_at IS NULL AND ($2::text IS NULL OR id < $2)
             AND ($3::text IS NULL OR id > $3)
             AND ($4::timestamptz IS NULL OR created_at >= $4)
             AND ($5::timestamptz IS NULL OR created_at < $5)
           ORDER BY id {"ASC" if forward else "DESC"} LIMIT $6""",
        channel,
        before,
        after,
        since,
        until,
        limit,
    )
    return [_message(r) for r in (rows if forward else reversed(rows))]


@dataclass(frozen=True)
class Ban:
    """One ban as stored; `until` is None for a ban for good."""

    channel: str
    user_id: str | None
    ip_hash: str | None
    until: datetime | None


async def add_ban(
    db: asyncpg.Pool,
    channel: str,
    user_id: str | None,
    ip_hash: str | None,
    seconds: int | None,
    moderator_id: int | None,
) -> Ban:
    """Store a ban (a user id, an address hash or both), for `seconds` or for good."""
    row = await db.fetchrow(
        """INSERT INTO chat_bans (channel, user_id, ip_hash, moderator_id, expires_at)
           VALUES ($1, $2, $3, $4, CASE WHEN $5::int IS NULL THEN NULL
                                        ELSE now() + make_interval(secs => $5::int) END)
           RETURNING expires_at""",
        channel,
        user_id,
        ip_hash,
        moderator_id,
        seconds,
    )
    return Ban(channel, user_id, ip_hash, row["expires_at"])


async def active_bans(db: asyncpg.Pool, channel: str | None = None) -> list[Ban]:
    """Every ban still in force (of one channel, or all: to seed the live state at start-up)."""
    rows = await db.fetch(
        "SELECT * FROM chat_bans WHERE (expires_at IS NULL OR expires_at > now())"
        " AND ($1::text IS NULL OR channel = $1)",
        channel,
    )
    return [Ban(r["channel"], r["user_id"], r["ip_hash"], r["expires_at"]) for r in rows]


async def stored_bans(db: asyncpg.Pool) -> list[StoredBan]:
    """Every ban in force, as the live state stores it."""
    return [
        (b.channel, ban_keys(b.user_id, b.ip_hash), b.until.timestamp() if b.until else None)
        for b in await active_bans(db)
    ]


@dataclass(frozen=True)
class ListedBan:
    """A ban in force as the admin API lists it, named by what the user last called themselves."""

    id: int
    user_id: str | None
    name: str | None
    created_at: datetime
    until: datetime | None


async def list_bans(db: asyncpg.Pool, channel: str) -> list[ListedBan]:
    """The channel's bans in force, newest first."""
    rows = await db.fetch(
        """SELECT b.id, b.user_id, b.created_at, b.expires_at,
                  (SELECT m.user_name FROM chat_messages m
                    WHERE m.channel = b.channel AND m.user_id = b.user_id
                    ORDER BY m.id DESC LIMIT 1) AS name
           FROM chat_bans b
           WHERE b.channel = $1 AND (b.expires_at IS NULL OR b.expires_at > now())
           ORDER BY b.id DESC""",
        channel,
    )
    return [
        ListedBan(r["id"], r["user_id"], r["name"], r["created_at"], r["expires_at"]) for r in rows
    ]


async def remove_ban(db: asyncpg.Pool, channel: str, ban_id: int) -> Ban | None:
    """Delete one of the channel's bans; returns what it banned, or None if there was none."""
    row = await db.fetchrow(
        "DELETE FROM chat_bans WHERE channel = $1 AND id = $2 RETURNING *", channel, ban_id
    )
    return None if row is None else Ban(row["channel"], row["user_id"], row["ip_hash"], None)


async def last_ip_hash(db: asyncpg.Pool, channel: str, user_id: str) -> str | None:
    """The address hash a user last wrote from in a channel (to ban someone who left)."""
    value = await db.fetchval(
        "SELECT ip_hash FROM chat_messages WHERE channel = $1 AND user_id = $2"
        " ORDER BY id DESC LIMIT 1",
        channel,
        user_id,
    )
    return str(value) if value is not None else None


def ban_keys(user_id: str | None, ip_hash: str | None) -> list[str]:
    """The keys a ban is stored under in the live state."""
    keys = [f"u:{user_id}"] if user_id else []
    return keys + ([f"ip:{ip_hash}"] if ip_hash else [])


def utc_from_ms(ms: int) -> datetime:
    """A timezone-aware datetime from epoch milliseconds."""
    return datetime.fromtimestamp(ms / 1000, UTC)
