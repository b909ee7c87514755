"""The uploads' and VOD jobs' Prometheus metrics (names start with onair_)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

UPLOADS = Counter(
    "onair_uploads_total",
    "Upload events: created, done, rejected, expired, terminated, no_space",
    ["event"],
)
UPLOAD_BYTES = Counter("onair_upload_received_bytes_total", "Upload bytes written to disk")
VOD_JOBS = Counter("onair_vod_jobs_total", "VOD transcode jobs finished, by result", ["result"])
VOD_BACKLOG = Gauge("onair_vod_backlog", "Videos queued or transcoding")
VOD_PAUSED = Gauge("onair_vod_paused", "1 while the VOD transcode is paused for live channels")
