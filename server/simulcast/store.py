"""Destinations as stored: checking what a streamer typed, and all of destinations' SQL.

A destination is a platform's server URL (`rtmp://` or `rtmps://`, as YouTube, Twitch or OBS
show it) and its stream key, kept sealed (sealed.py). The state columns are written by the
relay on the host where the channel is live (relays.py) and read by any host's API.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from server.simulcast.sealed import hint, masked, seal
from server.web.errors import ApiError, Conflict, NotFound

MAX_PER_CHANNEL = 10
MAX_NAME = 64
MAX_SERVER = 512
MAX_KEY = 512
STATES = ("idle", "connecting", "live", "failing")
SCHEMES = {"rtmp": 1935, "rtmps": 443}
_HOST = re.compile(
    r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
)
_APP = re.compile(r"[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*")
_KEY = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces: one line, as platforms give


@dataclass(frozen=True)
class Server:
    """A destination's server URL, taken apart the way the relay needs it."""

    url: str  # as typed, checked
    scheme: str  # rtmp or rtmps
    host: str
    port: int
    app: str  # the application path: live2, app, rtmp

    @property
    def address(self) -> str:
        """scheme://host:port/app: where FFmpeg connects (never with the key)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}/{self.app}"


@dataclass(frozen=True)
class Destination:
    """One destination row, its key still sealed."""

    id: int
    channel: str
    name: str
    server: str
    key_sealed: bytes
    key_hint: str
    enabled: bool
    updated_at: datetime
    state: str
    state_since: datetime
    last_error: str | None
    bytes_sent: int

    def json(self) -> dict[str, Any]:
        """As the API shows it: the key masked."""
        return {
            "id": self.id,
            "channel": self.channel,
            "name": self.name,
            "server": self.server,
            "key": masked(self.key_hint),
            "enabled": self.enabled,
            "state": self.state,
            "since": self.state_since.isoformat(),
            "last_error": self.last_error,
            "bytes_sent": self.bytes_sent,
        }


def check_name(value: object) -> str:
    """1 to 64 characters of text on one line."""
    if not isinstance(value, str) or not value.strip():
        raise ApiError("name must be a non-empty string, such as YouTube")
    name = value.strip()
    if len(name) > MAX_NAME or not name.isprintable():
        raise ApiError(f"name must be at most {MAX_NAME} printable characters")
    return name


def parse_server(value: object) -> Server:
    """The platform's server URL, or a 400 naming what is wrong with it."""
    if not isinstance(value, str) or not value.strip():
        raise ApiError("server must be the platform's rtmp:// or rtmps:// URL")
    url = value.strip()
    if len(url) > MAX_SERVER:
        raise ApiError(f"server must be at most {MAX_SERVER} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as err:
        raise ApiError(f"server is not a URL: {err}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ApiError("server must start with rtmp:// or rtmps://")
    if parts.username is not None or parts.password is not None:
        raise ApiError("server must not carry a user name or password: use the stream key")
    host = (parts.hostname or "").lower()
    if not host:
        raise ApiError("server has no host name")
    if not _valid_host(host):
        raise ApiError(f"server's host {host[:80]!r} is not a host name or IP address")
    if parts.query or parts.fragment:
        raise ApiError("server must not have a ?query or #fragment: put those in the stream key")
    app = parts.path.strip("/")
    if not app:
        raise ApiError("server needs its application path, such as /live2 or /app")
    if not _APP.fullmatch(app):
        raise ApiError("server's path may hold only letters, digits and . _ ~ - /")
    return Server(url, scheme, host, port or SCHEMES[scheme], app)


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOST.fullmatch(host))


def check_key(value: object) -> str:
    """The platform's stream key: one line of printable ASCII, no spaces."""
    if not isinstance(value, str) or not value.strip():
        raise ApiError("key must be the platform's stream key")
    key = value.strip()
    if len(key) > MAX_KEY:
        raise ApiError(f"key must be at most {MAX_KEY} characters")
    if not _KEY.fullmatch(key):
        raise ApiError("key may hold only printable characters without spaces")
    return key


def check_enabled(value: object) -> bool:
    if not isinstance(value, bool):
        raise ApiError("enabled must be true or false")
    return value


def _destination(row: asyncpg.Record) -> Destination:
    return Destination(**{name: row[name] for name in Destination.__dataclass_fields__})


_COLUMNS = ", ".join(Destination.__dataclass_fields__)


async def list_for(db: asyncpg.Pool, channel: str) -> list[Destination]:
    """A channel's destinations in the order they were added."""
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM destinations WHERE channel = $1 ORDER BY id", channel
    )
    return [_destination(r) for r in rows]


async def enabled_for(db: asyncpg.Pool, channels: list[str]) -> list[Destination]:
    """The enabled destinations of these channels."""
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM destinations WHERE enabled AND channel = ANY($1::text[])",
        channels,
    )
    return [_destination(r) for r in rows]


async def get(db: asyncpg.Pool, destination_id: int) -> Destination:
    """One destination, or 404."""
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM destinations WHERE id = $1", destination_id)
    if row is None:
        raise NotFound(f"no destination {destination_id}")
    return _destination(row)


async def create(
    db: asyncpg.Pool,
    secret_key: str,
    channel: str,
    *,
    name: str,
    server: str,
    key: str,
    enabled: bool,
) -> Destination:
    """Add a destination (409 for a name the channel already uses or past MAX_PER_CHANNEL)."""
    async with db.acquire() as conn, conn.transaction():
        # One at a time per channel, so two requests cannot both pass the count.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('destinations:' || $1))", channel)
        count = await conn.fetchval("SELECT count(*) FROM destinations WHERE channel = $1", channel)
        if count >= MAX_PER_CHANNEL:
            raise Conflict(f"a channel has at most {MAX_PER_CHANNEL} destinations")
        try:
            row = await conn.fetchrow(
                f"""
                INSERT INTO destinations (channel, name, server, key_sealed, key_hint, enabled)
                VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_COLUMNS}
                """,
                channel,
                name,
                server,
                seal(secret_key, key, channel=channel),
                hint(key),
                enabled,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(f"this channel already has a destination named {name!r}") from None
    return _destination(row)


async def update(
    db: asyncpg.Pool, secret_key: str, current: Destination, changes: dict[str, Any]
) -> Destination:
    """Change name, server, key and/or enabled (checked already); the relay restarts on the
    new updated_at."""
    sets, values = [], []
    for column in ("name", "server", "enabled"):
        if column in changes:
            values.append(changes[column])
            sets.append(f"{column} = ${len(values)}")
    if "key" in changes:
        values += [seal(secret_key, changes["key"], channel=current.channel), hint(changes["key"])]
        sets += [f"key_sealed = ${len(values) - 1}", f"key_hint = ${len(values)}"]
    values.append(current.id)
    try:
        row = await db.fetchrow(
            f"""UPDATE destinations SET {", ".join(sets)}, updated_at = now(),
                    -- a running relay restarts on the change: not "live" on the old settings
                    state = CASE WHEN state = 'idle' THEN state ELSE 'connecting' END,
                    state_since = CASE WHEN state = 'idle' THEN state_since ELSE now() END
                WHERE id = ${len(values)} RETURNING {_COLUMNS}""",
            *values,
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(
            f"this channel already has a destination named {changes['name']!r}"
        ) from None
    if row is None:
        raise NotFound(f"no destination {current.id}")
    return _destination(row)


async def delete(db: asyncpg.Pool, destination_id: int) -> None:
    """Remove a destination (its relay stops at the next look)."""
    await db.execute("DELETE FROM destinations WHERE id = $1", destination_id)


async def report(
    db: asyncpg.Pool,
    destination_id: int,
    state: str,
    *,
    last_error: str | None,
    bytes_sent: int,
    changed: bool,
) -> None:
    """What the relay sees: a new state (`changed`: since now) or only more bytes sent."""
    assert state in STATES
    await db.execute(
        """
        UPDATE destinations
        SET state = $2, last_error = $3, bytes_sent = $4,
            state_since = CASE WHEN $5 THEN now() ELSE state_since END
        WHERE id = $1
        """,
        destination_id,
        state,
        last_error,
        bytes_sent,
        changed,
    )


async def idle_unless_live_elsewhere(db: asyncpg.Pool, host: str, stale_after_s: float) -> None:
    """At start-up: relays a killed server left "live" or "failing" are idle now, unless their
    channel is live on another host (whose relays report for themselves)."""
    await db.execute(
        """
        UPDATE destinations SET state = 'idle', state_since = now(), bytes_sent = 0
        WHERE state <> 'idle' AND channel NOT IN (
            SELECT channel FROM live_status
            WHERE host <> $1 AND updated_at > now() - make_interval(secs => $2))
        """,
        host,
        stale_after_s,
    )
