"""Webhooks as stored: checking what an admin sends, and the webhooks' and delivery log's SQL
(the outbox writes are outbox.py's, the deliverer's claim and outcome are deliverer.py's)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from server import sealed
from server.web.errors import ApiError, NotFound
from server.webhooks.outbox import EVENTS, iso
from transcoder.layout import valid_slug

# The HKDF info of webhook secrets (server/sealed.py): changing it makes all stored unreadable.
PURPOSE = b"onair webhook secrets v1"
MAX_URL = 2000
MAX_CHANNELS = 100
LOG_LIMIT = 100  # deliveries the log shows, newest first


@dataclass(frozen=True)
class Receiver:
    """A checked receiver URL."""

    url: str
    host: str
    port: int


def parse_url(value: object) -> Receiver:
    """An http(s):// URL without credentials, or a 400 naming what is wrong with it."""
    if not isinstance(value, str) or not value.strip():
        raise ApiError("url must be the receiver's http:// or https:// URL")
    url = value.strip()
    if len(url) > MAX_URL or not url.isprintable() or " " in url:
        raise ApiError(f"url must be at most {MAX_URL} printable characters without spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as err:
        raise ApiError(f"url is not a URL: {err}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ApiError("url must start with http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise ApiError(
            "url must not carry a user name or password: the signature proves the sender"
        )
    host = (parts.hostname or "").lower()
    if not host:
        raise ApiError("url has no host name")
    return Receiver(url, host, port or (443 if scheme == "https" else 80))


def check_events(value: object) -> list[str]:
    """A non-empty list of known event names, each once."""
    if not isinstance(value, list) or not value or not all(isinstance(e, str) for e in value):
        raise ApiError("events must be a non-empty list of: " + ", ".join(EVENTS))
    unknown = [e for e in value if e not in EVENTS]
    if unknown:
        raise ApiError(f"unknown events: {', '.join(unknown)[:200]}; known: {', '.join(EVENTS)}")
    return [e for e in EVENTS if e in value]


def check_channels(value: object) -> list[str] | None:
    """None (every channel) or a non-empty list of channel slugs."""
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or not value
        or len(value) > MAX_CHANNELS
        or not all(isinstance(c, str) and valid_slug(c) for c in value)
    ):
        raise ApiError(
            f"channels must be left out (every channel) or a list of 1 to {MAX_CHANNELS} slugs"
        )
    return sorted(set(value))


@dataclass(frozen=True)
class Webhook:
    """One webhook row, its secret still sealed."""

    id: int
    url: str
    events: list[str]
    channels: list[str] | None
    secret_sealed: bytes
    created_at: datetime

    def json(self) -> dict[str, Any]:
        """As the API lists it: never the secret."""
        return {
            "id": self.id,
            "url": self.url,
            "events": self.events,
            "channels": self.channels,
            "created_at": iso(self.created_at),
        }

    def secret(self, secret_key: str) -> str:
        """The signing secret; sealed.Unreadable when ONAIR_SECRET_KEY changed."""
        return sealed.unseal(secret_key, self.secret_sealed, purpose=PURPOSE, bound_to=self.url)


_COLUMNS = ", ".join(Webhook.__dataclass_fields__)


def _webhook(row: asyncpg.Record) -> Webhook:
    return Webhook(**{name: row[name] for name in Webhook.__dataclass_fields__})


async def create(
    db: asyncpg.Pool,
    secret_key: str,
    *,
    url: str,
    events: list[str],
    channels: list[str] | None,
    secret: str,
) -> Webhook:
    """Add a webhook (404 naming a channel that does not exist)."""
    if channels is not None:
        found = await db.fetch("SELECT slug FROM channels WHERE slug = ANY($1::text[])", channels)
        missing = sorted(set(channels) - {r["slug"] for r in found})
        if missing:
            raise NotFound(f"no channel {', '.join(missing)[:200]}")
    row = await db.fetchrow(
        f"INSERT INTO webhooks (url, events, channels, secret_sealed) VALUES ($1, $2, $3, $4)"
        f" RETURNING {_COLUMNS}",
        url,
        events,
        channels,
        sealed.seal(secret_key, secret, purpose=PURPOSE, bound_to=url),
    )
    return _webhook(row)


async def list_all(db: asyncpg.Pool) -> list[Webhook]:
    """Every webhook in the order they were added."""
    return [_webhook(r) for r in await db.fetch(f"SELECT {_COLUMNS} FROM webhooks ORDER BY id")]


async def get(db: asyncpg.Pool, webhook_id: int) -> Webhook:
    """One webhook, or 404."""
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM webhooks WHERE id = $1", webhook_id)
    if row is None:
        raise NotFound(f"no webhook {webhook_id}")
    return _webhook(row)


async def delete(db: asyncpg.Pool, webhook_id: int) -> None:
    """Remove a webhook and its deliveries (404 when there is none)."""
    if await db.fetchval("DELETE FROM webhooks WHERE id = $1 RETURNING id", webhook_id) is None:
        raise NotFound(f"no webhook {webhook_id}")


_DELIVERY = """id, event, channel, body::text AS body, state, attempts, next_attempt_at,
    last_status, last_error, redelivery_of, created_at, delivered_at"""


def delivery_json(row: asyncpg.Record) -> dict[str, Any]:
    """A delivery as the log shows it: where it stands, how often it was tried, why it failed."""
    return {
        "id": row["id"],
        "event": row["event"],
        "channel": row["channel"],
        "state": row["state"],
        "attempts": row["attempts"],
        "next_attempt_at": iso(row["next_attempt_at"]) if row["state"] == "pending" else None,
        "last_status": row["last_status"],
        "last_error": row["last_error"],
        "redelivery_of": row["redelivery_of"],
        "created_at": iso(row["created_at"]),
        "delivered_at": iso(row["delivered_at"]) if row["delivered_at"] else None,
        "body": json.loads(row["body"]),
    }


async def deliveries(db: asyncpg.Pool, webhook_id: int) -> list[asyncpg.Record]:
    """The webhook's last LOG_LIMIT deliveries, newest first."""
    return list(
        await db.fetch(
            f"SELECT {_DELIVERY} FROM webhook_deliveries WHERE webhook_id = $1"
            " ORDER BY id DESC LIMIT $2",
            webhook_id,
            LOG_LIMIT,
        )
    )


async def redeliver(db: asyncpg.Pool, webhook_id: int, delivery_id: int) -> asyncpg.Record:
    """A new delivery of the same body at the end of the webhook's queue (404 when the webhook
    has no such delivery)."""
    row = await db.fetchrow(
        f"""INSERT INTO webhook_deliveries (webhook_id, event, channel, body, redelivery_of)
            SELECT webhook_id, event, channel, body, id FROM webhook_deliveries
            WHERE webhook_id = $1 AND id = $2
            RETURNING {_DELIVERY}""",
        webhook_id,
        delivery_id,
    )
    if row is None:
        raise NotFound(f"webhook {webhook_id} has no delivery {delivery_id}")
    return row
