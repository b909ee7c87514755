"""Metrics of chat (names start with onair_)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CHAT_CONNECTED = Gauge(
    "onair_chat_connected_clients", "Socket.IO clients connected to this process"
)
CHAT_ACCEPTED = Counter("onair_chat_messages_accepted_total", "Chat messages accepted")
CHAT_REJECTED = Counter(
    "onair_chat_messages_rejected_total", "Chat messages refused, by reason", ["reason"]
)
CHAT_FANOUT = Histogram(
    "onair_chat_fanout_seconds",
    "From accepting a message to handing it to every local client and the Redis bus",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
CHAT_DELIVERIES = Counter(
    "onair_chat_deliveries_total",
    "Broadcast events handed to local clients, by path: written at once, or queued behind "
    "the connection's own packets (long-polling, an upgrade, a slow reader)",
    ["path"],
)
CHAT_PENDING = Gauge("onair_chat_pending_writes", "Accepted messages not yet written to PostgreSQL")
CHAT_WRITE_FAILURES = Counter(
    "onair_chat_write_failures_total", "Batched chat writes to PostgreSQL that failed and wait"
)
CHAT_REDIS_DEGRADED = Gauge(
    "onair_chat_redis_degraded",
    "1 while Redis is unreachable and this process serves chat to its own clients only",
)
CHAT_DROPPED = Counter(
    "onair_chat_messages_dropped_total",
    "Accepted messages never stored (channel deleted, or the write buffer overflowed)",
)
