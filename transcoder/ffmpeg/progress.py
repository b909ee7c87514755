"""Parse ffmpeg's `-progress` output: key=value lines, one block per report."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """One `-progress` block; None where ffmpeg printed N/A."""

    frame: int | None
    fps: float | None
    speed: float | None
    out_time_s: float | None
    bitrate_kbps: float | None
    total_size: int | None
    dup_frames: int
    drop_frames: int
    ended: bool  # progress=end: ffmpeg is finishing


def _float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text.strip().removesuffix("x").removesuffix("kbits/s"))
    except ValueError:
        return None  # "N/A" and friends


def _int(text: str | None) -> int | None:
    value = _float(text)
    return None if value is None else int(value)


def parse_block(fields: dict[str, str]) -> Progress:
    """Turn one block's fields into a Progress."""
    out_us = _int(fields.get("out_time_us"))
    # out_time_us is negative or N/A before the first packet is muxed
    out_time = out_us / 1e6 if out_us is not None and out_us >= 0 else None
    return Progress(
        frame=_int(fields.get("frame")),
        fps=_float(fields.get("fps")),
        speed=_float(fields.get("speed")),
        out_time_s=out_time,
        bitrate_kbps=_float(fields.get("bitrate")),
        total_size=_int(fields.get("total_size")),
        dup_frames=_int(fields.get("dup_frames")) or 0,
        drop_frames=_int(fields.get("drop_frames")) or 0,
        ended=fields.get("progress") == "end",
    )


class ProgressParser:
    """Feed stdout lines one at a time; returns a Progress when a block completes."""

    def __init__(self) -> None:
        """Start with an empty block."""
        self._fields: dict[str, str] = {}

    def feed(self, line: str) -> Progress | None:
        """Take one line; a `progress=...` line closes the block and yields it."""
        key, sep, value = line.strip().partition("=")
        if not sep:
            return None
        self._fields[key.strip()] = value.strip()
        if key.strip() != "progress":
            return None
        fields, self._fields = self._fields, {}
        return parse_block(fields)


def parse_all(text: str) -> list[Progress]:
    """Every complete block in a captured stdout."""
    parser = ProgressParser()
    return [p for line in text.splitlines() if (p := parser.feed(line)) is not None]


_LEVEL = re.compile(r"\[(panic|fatal|error|warning|info|verbose|debug|trace)\] ")
# Harmless chatter that would otherwise flood the log once per packet.
_NOISE = (
    "Packet duration:",
    "Non-monotonous DTS",
    "Past duration",
    "deprecated pixel format",
    "Queue input is backward in time",
)
_LEVELS = {
    "panic": logging.CRITICAL,
    "fatal": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
}


def classify_stderr(line: str) -> int:
    """Log level for one stderr line of ffmpeg run with `-loglevel level+...`."""
    if any(n in line for n in _NOISE):
        return logging.DEBUG
    match = _LEVEL.search(line)
    if match is None:
        return logging.INFO  # unprefixed lines are banners or continuation lines
    return _LEVELS.get(match.group(1), logging.DEBUG)
