"""Destination stream keys at rest: sealed with AES-256-GCM under a key derived from
ONAIR_SECRET_KEY (HKDF-SHA256), and their masked form. A key sealed under another secret
does not open: the relay then says so, and the key must be entered again."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = b"\x01"
_INFO = b"onair destination stream keys v1"
_NONCE = 12


class KeyUnreadable(Exception):
    """The sealed key does not open with this server's secret (ONAIR_SECRET_KEY changed)."""


def _aead(secret_key: str) -> AESGCM:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO)
    return AESGCM(derived.derive(secret_key.encode()))


def seal(secret_key: str, key: str, *, channel: str) -> bytes:
    """The stored form of a stream key; its channel is bound in, so a sealed key copied onto
    another channel's destination does not open there."""
    nonce = os.urandom(_NONCE)
    return VERSION + nonce + _aead(secret_key).encrypt(nonce, key.encode(), channel.encode())


def unseal(secret_key: str, sealed: bytes, *, channel: str) -> str:
    """The stream key back; KeyUnreadable when sealed under another secret or channel."""
    if sealed[:1] != VERSION or len(sealed) < 1 + _NONCE + 16:
        raise KeyUnreadable("not a sealed stream key")
    nonce, body = sealed[1 : 1 + _NONCE], sealed[1 + _NONCE :]
    try:
        return _aead(secret_key).decrypt(nonce, body, channel.encode()).decode()
    except InvalidTag:
        raise KeyUnreadable("sealed under another ONAIR_SECRET_KEY") from None


def hint(key: str) -> str:
    """What is kept in clear: the last four characters (fewer of a short key)."""
    return key[-4:] if len(key) >= 12 else key[-2:]


def masked(key_hint: str) -> str:
    """How the API shows a key: `****abcd`."""
    return "****" + key_hint
