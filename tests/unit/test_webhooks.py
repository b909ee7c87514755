"""Webhook signatures, the receiver's answer and the retry backoff, without a network."""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path
from typing import Any

import pytest

from server.webhooks.deliverer import backoff, verdict
from server.webhooks.signing import new_secret, signature, verify

SECRET = "whsec_test-secret-0123456789"
BODY = b'{"event":"stream.started","channel":"show"}'
NOW = 1_765_000_000


def test_the_signature_is_the_documented_hmac_of_t_dot_body() -> None:
    header = signature(SECRET, BODY, NOW)
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={NOW},v1={expected}"


def test_a_signature_verifies_only_with_its_secret_body_and_a_recent_time() -> None:
    header = signature(SECRET, BODY, NOW)
    assert verify(SECRET, BODY, header, now=NOW + 10)
    assert not verify("whsec_another-secret-entirely", BODY, header, now=NOW)
    assert not verify(SECRET, BODY + b" ", header, now=NOW)
    assert not verify(SECRET, BODY, header, now=NOW + 301)  # replayed later
    forged_time = header.replace(f"t={NOW}", f"t={NOW + 5}")
    assert not verify(SECRET, BODY, forged_time, now=NOW)
    for broken in ("", "t=x,v1=00", f"t={NOW}", "v1=" + "0" * 64):
        assert not verify(SECRET, BODY, broken, now=NOW)
    # A receiver accepts any v1 that matches: room for a second secret while rotating.
    assert verify(SECRET, BODY, f"t={NOW},v1={'0' * 64},{header.split(',')[1]}", now=NOW)


def test_secrets_are_long_and_never_repeat() -> None:
    made = {new_secret() for _ in range(100)}
    assert len(made) == 100 and all(s.startswith("whsec_") and len(s) >= 48 for s in made)


@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, "delivered"), (204, "delivered"), (301, "failed"), (400, "failed"), (404, "failed"),
     (410, "failed"), (408, "retry"), (429, "retry"), (500, "retry"), (503, "retry")],
)  # fmt: skip
def test_2xx_delivers_408_429_and_5xx_retry_anything_else_fails(status: int, expected: str) -> None:
    assert verdict(status) == expected


def test_retries_double_from_the_first_up_to_the_cap() -> None:
    assert [backoff(n, 10, 3600) for n in (1, 2, 3, 4)] == [10, 20, 40, 80]
    assert backoff(9, 10, 3600) == 2560 and backoff(10, 10, 3600) == 3600
    assert backoff(10_000, 10, 3600) == 3600  # no overflow after a day of retries


def test_the_readme_receiver_check_accepts_a_delivery_and_refuses_the_rest() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    snippet = readme.split("A receiver checks it in a few lines:\n\n```python\n", 1)[1]
    found: dict[str, Any] = {}
    exec(snippet.split("```", 1)[0], found)
    verified = found["verified"]
    now = int(time.time())
    assert verified(SECRET, BODY, signature(SECRET, BODY, now))
    assert not verified("whsec_another-secret-entirely", BODY, signature(SECRET, BODY, now))
    assert not verified(SECRET, BODY, signature(SECRET, BODY, now - 3600))
    for broken in ("", "garbage", f"t={now}", "t=x,v1=00"):
        assert not verified(SECRET, BODY, broken)
