"""Every onair_chat_* metric (kept beside chat so metrics.py stays the HTTP side's)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CONNECTED = Gauge("onair_chat_connected_clients", "Socket.IO clients connected to this process")
ACCEPTED = Counter("onair_chat_messages_accepted_total", "Chat messages accepted")
REJECTED = Counter(
    "onair_chat_messages_rejected_total", "Chat messages refused, by reason", ["reason"]
)
FANOUT = Histogram(
    "onair_chat_fanout_seconds",
    "From accepting a message to handing it to every local client and the Redis bus",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
PENDING = Gauge("onair_chat_pending_writes", "Accepted messages not yet written to PostgreSQL")
WRITE_FAILURES = Counter(
    "onair_chat_write_failures_total", "Batched chat writes to PostgreSQL that failed and wait"
)
DROPPED = Counter(
    "onair_chat_messages_dropped_total",
    "Accepted messages never stored (channel deleted, or the write buffer overflowed)",
)
