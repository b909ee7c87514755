"""Chat's pure rules: text and name cleaning, token buckets, message ids, keyed IP hashes."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from server.chat.metrics import CHAT_REJECTED
from server.chat.payloads import Ack
from server.web.net import address_key, client_address
from transcoder.layout import valid_slug

MAX_TEXT = 500
# A chat event waits at most this long on PostgreSQL (a join is then `unavailable`).
DB_TIMEOUT = 2.0
MAX_NAME = 24
HISTORY_SIZE = 50
# Names: letters and digits in any script, with inner spaces, dots, dashes and underscores.
NAME_RE = re.compile(r"^\w[\w .-]*$")
MESSAGE_ID_RE = re.compile(r"^[0-9a-f]{28}$")
# Bidi overrides and isolates reorder what follows them: a classic way to spoof text.
_BIDI = set(range(0x202A, 0x202F)) | set(range(0x2066, 0x206A))


# The refusals DESIGN names for `message`; they are counted by reason.
MESSAGE_ERRORS = frozenset(
    ("rate_limited", "too_long", "empty", "banned", "slow_mode", "not_joined")
)


def refuse(error: str) -> Ack:
    """`{ok: false, error}`, counted in onair_chat_messages_rejected_total when DESIGN names it."""
    if error in MESSAGE_ERRORS:
        CHAT_REJECTED.labels(error).inc()
    return {"ok": False, "error": error}


def channel_of(data: Any) -> str | None:
    """The payload's `channel` when it is a valid slug."""
    channel = data.get("channel") if isinstance(data, dict) else None
    return channel if isinstance(channel, str) and valid_slug(channel) else None


def clean_text(raw: str) -> str:
    """Drop control characters (C0/C1, lone surrogates, bidi overrides) and outer whitespace."""
    kept = [
        ch for ch in raw if unicodedata.category(ch) not in ("Cc", "Cs") and ord(ch) not in _BIDI
    ]
    return "".join(kept).strip()


def message_text(raw: object) -> tuple[str, str | None]:
    """A message's text, cleaned, and why it is refused ("empty", "too_long") or None."""
    text = clean_text(raw) if isinstance(raw, str) else ""
    if not text:
        return text, "empty"
    return text, "too_long" if len(text) > MAX_TEXT else None


def clean_name(raw: object) -> str | None:
    """A display name with runs of spaces collapsed, or None when it breaks the rules."""
    if not isinstance(raw, str):
        return None
    name = " ".join(clean_text(raw).split())
    if not 1 <= len(name) <= MAX_NAME or NAME_RE.fullmatch(name) is None:
        return None
    return name


def guest_name() -> str:
    """A name for someone who gave none."""
    return f"guest-{secrets.randbelow(10_000):04d}"


def ip_hash(secret: str, address: str) -> str:
    """The address (an IPv6 one by its /64) keyed with the server secret: stable per address,
    useless without the key."""
    key = address_key(address).encode()
    return hmac.new(secret.encode(), key, hashlib.sha256).hexdigest()[:32]


def guest_id(secret: str, address_hash: str, name: str) -> str:
    """Same address and same name → same id, so a ban by id survives a reconnect."""
    key = f"{address_hash}|{name.casefold()}".encode()
    return "g-" + hmac.new(secret.encode(), key, hashlib.sha256).hexdigest()[:16]


def environ_address(environ: dict[str, Any]) -> str:
    """The client address of a Socket.IO connection (see server.net.client_address)."""
    request = environ.get("aiohttp.request")
    peer = request.remote if request is not None else None
    return client_address(peer, str(environ.get("HTTP_X_FORWARDED_FOR", "")))


@dataclass
class TokenBucket:
    """`capacity` tokens, refilled evenly over `period` seconds."""

    capacity: int
    period: float
    tokens: float = -1.0
    updated: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = float(self.capacity)

    def _refill(self, now: float) -> None:
        rate = self.capacity / self.period
        self.tokens = min(float(self.capacity), self.tokens + (now - self.updated) * rate)
        self.updated = now

    def has_token(self, now: float | None = None) -> bool:
        """True when a token is there (does not take it)."""
        self._refill(time.monotonic() if now is None else now)
        return self.tokens >= 1.0

    def take(self) -> None:
        """Spend one token; call after has_token() said yes."""
        self.tokens -= 1.0

    def full(self, now: float) -> bool:
        """True once the bucket has refilled, so it can be forgotten."""
        self._refill(now)
        return self.tokens >= self.capacity


class MessageIds:
    """Ids as 12 hex digits of milliseconds + 16 random ones: unique without coordination
    between hosts, time-ordered, and strings (a 64-bit number would not survive JavaScript)."""

    def __init__(self) -> None:
        self._last_ms = 0
        self._last_rand = 0

    def next(self) -> tuple[str, int]:
        """A new id and its millisecond timestamp; strictly increasing within this process."""
        ms = time.time_ns() // 1_000_000
        if ms <= self._last_ms:
            ms, rand = self._last_ms, self._last_rand + 1
        else:
            rand = secrets.randbits(63)
        self._last_ms, self._last_rand = ms, rand
        return f"{ms:012x}{rand:016x}", ms


def iso_ms(ms: int) -> str:
    """Milliseconds since the epoch as ISO 8601 UTC (`2025-01-01T12:00:00.123Z`)."""
    stamp = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def within_rate(
    own: TokenBucket, by_address: dict[str, TokenBucket], address_hash: str, fresh: TokenBucket
) -> bool:
    """Take a token from the connection's bucket and its address's (`fresh` when the address
    has none yet), only if both have one."""
    now = time.monotonic()
    shared = by_address.setdefault(address_hash, fresh)
    if not (own.has_token(now) and shared.has_token(now)):
        return False
    own.take()
    shared.take()
    return True
