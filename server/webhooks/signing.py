"""The Onair-Signature header: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` keyed
with the webhook's secret, and its check (what a receiver does, also used by the tests)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

# A receiver should refuse a signature older than this: a replayed delivery.
TOLERANCE_S = 300


def new_secret() -> str:
    """A webhook's signing secret: 256 random bits, shown once."""
    return "whsec_" + secrets.token_urlsafe(32)


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The header value for `body` sent at `timestamp`."""
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify(
    secret: str,
    body: bytes,
    header: str,
    *,
    now: float | None = None,
    tolerance_s: int = TOLERANCE_S,
) -> bool:
    """True when `header` signs `body` with `secret` and is at most `tolerance_s` old."""
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        fields.setdefault(name, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = _mac(secret, timestamp, body)
    return any(hmac.compare_digest(expected, given) for given in fields.get("v1", []))
