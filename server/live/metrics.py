"""Metrics of the live path: hook decisions, playlists served, viewers (names start onair_)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

HOOK_DECISIONS = Counter(
    "onair_ingest_hook_decisions_total", "nginx-rtmp hook answers", ["hook", "decision"]
)
PLAYLIST_REQUESTS = Counter(
    "onair_hls_playlist_requests_total", "Playlist requests through the server", ["result"]
)
VIEWERS_GAUGE = Gauge("onair_hls_viewers", "Viewer sessions per channel", ["channel"])
