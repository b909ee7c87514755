"""Secrets at rest that the server must read back (a destination's stream key, a webhook's
signing secret): sealed with AES-256-GCM under a key derived from ONAIR_SECRET_KEY
(HKDF-SHA256, one derived key per purpose), bound to the row they belong to. A secret sealed
under another ONAIR_SECRET_KEY, purpose or row does not open."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = b"\x01"
_NONCE = 12


class Unreadable(Exception):
    """The sealed secret does not open with this server's secret (ONAIR_SECRET_KEY changed)."""


def _aead(secret_key: str, purpose: bytes) -> AESGCM:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose)
    return AESGCM(derived.derive(secret_key.encode()))


def seal(secret_key: str, secret: str, *, purpose: bytes, bound_to: str) -> bytes:
    """The stored form of `secret`; `bound_to` (a channel, a URL) is authenticated with it, so
    a sealed secret copied onto another row does not open there."""
    nonce = os.urandom(_NONCE)
    return (
        VERSION
        + nonce
        + _aead(secret_key, purpose).encrypt(nonce, secret.encode(), bound_to.encode())
    )


def unseal(secret_key: str, sealed: bytes, *, purpose: bytes, bound_to: str) -> str:
    """The secret back; Unreadable when sealed under another secret, purpose or row."""
    if sealed[:1] != VERSION or len(sealed) < 1 + _NONCE + 16:
        raise Unreadable("not a sealed secret")
    nonce, body = sealed[1 : 1 + _NONCE], sealed[1 + _NONCE :]
    try:
        return _aead(secret_key, purpose).decrypt(nonce, body, bound_to.encode()).decode()
    except InvalidTag:
        raise Unreadable("sealed under another ONAIR_SECRET_KEY") from None
