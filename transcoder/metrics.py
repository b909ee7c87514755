"""Prometheus metrics of the transcoder, on prometheus_client's default registry."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from prometheus_client import Counter, Gauge

SPEED = Gauge(
    "onair_transcoder_speed",
    "Media seconds encoded per wall-clock second (below 1 means falling behind live)",
    ["channel"],
)
FPS = Gauge("onair_transcoder_fps", "Frames per second ffmpeg reports", ["channel"])
RUNGS = Gauge("onair_transcoder_rungs", "Renditions the channel's ffmpeg produces", ["channel"])
RESTARTS = Counter(
    "onair_transcoder_restarts_total",
    "A rung's ffmpeg restarted after an unplanned exit",
    ["channel", "rung"],
)
EXITS = Counter(
    "onair_transcoder_exits_total",
    "ffmpeg exits by reason: stopped, killed, crashed, ended, stalled, faster",
    ["reason"],
)
FAILED = Counter(
    "onair_transcoder_failed_total", "Channels given up after repeated fast failures", ["channel"]
)
SHED = Counter(
    "onair_transcoder_shed_total", "Rungs dropped because ffmpeg fell behind", ["channel"]
)
PRESET_INDEX = Gauge(
    "onair_transcoder_preset_index",
    "Encoder preset steps above the fastest (0 = fastest, nothing left but shedding)",
    ["channel"],
)
PRESET_CHANGES = Counter(
    "onair_transcoder_preset_changes_total",
    "Restarts with a faster preset because ffmpeg fell behind",
    ["channel"],
)


RUNG_SPEED = Gauge(
    "onair_transcoder_rung_speed",
    "Media seconds one rung's ffmpeg encodes per wall-clock second",
    ["channel", "rung"],
)
RESTORED = Counter(
    "onair_transcoder_restored_total",
    "Shed rungs brought back once the CPU had room for them",
    ["channel"],
)


def forget(channel: str, rungs: Iterable[str] = ()) -> None:
    """Drop the channel's gauges so an ended stream does not report stale values."""
    for gauge in (SPEED, FPS, RUNGS, PRESET_INDEX):
        with contextlib.suppress(KeyError):  # never set for this channel
            gauge.remove(channel)
    for rung in rungs:
        with contextlib.suppress(KeyError):
            RUNG_SPEED.remove(channel, rung)


# Recordings (transcoder side: the recorder and compressor processes).
RECORDING_DISK_FULL = Gauge(
    "onair_recordings_disk_full",
    "1 while the channel's recording is stopped because the media volume is below its reserve",
    ["channel"],
)
RECORDING_STOPS = Counter(
    "onair_recordings_stops_total", "Recordings stopped while live, by reason", ["reason"]
)
RECORDER_EXITS = Counter(
    "onair_recordings_recorder_exits_total",
    "Recorder ffmpeg exits by reason: stopped, ended, crashed, disk_full, spawn",
    ["reason"],
)
COMPRESS_SPEED = Gauge(
    "onair_recordings_compress_speed",
    "Media seconds compressed per wall-clock second by the running job (0 when idle)",
)
COMPRESS_SECONDS = Counter(
    "onair_recordings_compressed_media_seconds_total", "Media seconds compressed to H.265"
)
COMPRESS_PAUSED = Gauge(
    "onair_recordings_compress_paused", "1 while the compression job is paused to protect live"
)
COMPRESS_JOBS = Counter(
    "onair_recordings_compress_jobs_total",
    "Compression jobs by result: replaced, kept (no gain), failed",
    ["result"],
)
COMPRESS_SAVED = Counter(
    "onair_recordings_compress_saved_bytes_total", "Bytes freed by replacing originals with H.265"
)
