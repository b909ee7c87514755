"""Metrics of webhook deliveries (names start with onair_)."""

from __future__ import annotations

from prometheus_client import Counter

WEBHOOK_ATTEMPTS = Counter(
    "onair_webhook_attempts_total",
    "Webhook delivery attempts by outcome: delivered, failed (for good), retry, or error (ours:"
    " the database away, say)",
    ["outcome"],
)
