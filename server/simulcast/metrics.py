"""Metrics of the simulcast relays (names start with onair_); `destination` is its id."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

RELAY_UP = Gauge(
    "onair_relay_up", "1 while the relay is sending to its destination", ["channel", "destination"]
)
RELAY_RESTARTS = Counter(
    "onair_relay_restarts_total",
    "Relay FFmpeg runs that ended while their channel was live",
    ["channel", "destination"],
)
RELAY_SENT = Counter(
    "onair_relay_sent_bytes_total",
    "Bytes a relay sent to its destination",
    ["channel", "destination"],
)
