"""Prometheus metrics of the transcoder, on prometheus_client's default registry."""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge

SPEED = Gauge(
    "onair_transcoder_speed",
    "Media seconds encoded per wall-clock second (below 1 means falling behind live)",
    ["channel"],
)
FPS = Gauge("onair_transcoder_fps", "Frames per second ffmpeg reports", ["channel"])
RUNGS = Gauge("onair_transcoder_rungs", "Renditions the channel's ffmpeg produces", ["channel"])
RESTARTS = Counter(
    "onair_transcoder_restarts_total", "ffmpeg restarts after an unplanned exit", ["channel"]
)
EXITS = Counter(
    "onair_transcoder_exits_total",
    "ffmpeg exits by reason: stopped, killed, crashed, ended, stalled, shed",
    ["reason"],
)
FAILED = Counter(
    "onair_transcoder_failed_total", "Channels given up after repeated fast failures", ["channel"]
)
SHED = Counter(
    "onair_transcoder_shed_total", "Rungs dropped because ffmpeg fell behind", ["channel"]
)


def forget(channel: str) -> None:
    """Drop the channel's gauges so an ended stream does not report stale values."""
    for gauge in (SPEED, FPS, RUNGS):
        with contextlib.suppress(KeyError):  # never set for this channel
            gauge.remove(channel)
