"""Metrics of recordings and the media volume (names start with onair_)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

RECORDINGS = Gauge("onair_recordings", "Recordings by state (deleted ones not counted)", ["state"])
RECORDINGS_BYTES = Gauge(
    "onair_recordings_stored_bytes", "Bytes of recordings kept, by state", ["state"]
)
COMPRESS_BACKLOG = Gauge(
    "onair_recordings_compress_backlog", "Finalized recordings waiting for H.265 compression"
)
COMPRESS_BACKLOG_SECONDS = Gauge(
    "onair_recordings_compress_backlog_seconds", "Media seconds waiting for H.265 compression"
)
RECORDINGS_DELETED = Counter(
    "onair_recordings_deleted_total", "Recordings deleted, by reason: age, water, admin", ["reason"]
)
MEDIA_USED = Gauge("onair_media_used_bytes", "Bytes used on the media volume")
MEDIA_FREE = Gauge("onair_media_free_bytes", "Bytes free on the media volume")
MEDIA_SIZE = Gauge("onair_media_size_bytes", "Size of the media volume in bytes")
