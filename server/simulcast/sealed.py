"""Destination stream keys at rest (sealed by server/sealed.py, bound to their channel) and
their masked form. A key sealed under another secret does not open: the relay then says so,
and the key must be entered again."""

from __future__ import annotations

from server import sealed

# The HKDF info the first keys were sealed under: changing it would make every stored key
# unreadable.
PURPOSE = b"onair destination stream keys v1"
KeyUnreadable = sealed.Unreadable


def seal(secret_key: str, key: str, *, channel: str) -> bytes:
    """The stored form of a stream key; its channel is bound in, so a sealed key copied onto
    another channel's destination does not open there."""
    return sealed.seal(secret_key, key, purpose=PURPOSE, bound_to=channel)


def unseal(secret_key: str, sealed_key: bytes, *, channel: str) -> str:
    """The stream key back; KeyUnreadable when sealed under another secret or channel."""
    return sealed.unseal(secret_key, sealed_key, purpose=PURPOSE, bound_to=channel)


def hint(key: str) -> str:
    """What is kept in clear: the last four characters (fewer of a short key)."""
    return key[-4:] if len(key) >= 12 else key[-2:]


def masked(key_hint: str) -> str:
    """How the API shows a key: `****abcd`."""
    return "****" + key_hint
