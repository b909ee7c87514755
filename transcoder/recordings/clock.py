"""Where a recording sits on the wall clock, so its chat replays in sync.

While recording, each part's start (the wall time its first frame was ingested) is estimated
from FFmpeg's progress and kept beside the part (`part-0001.clock`). Finalizing joins the
parts end to end, so it turns them into `clock.json`: `[[at, wall], ...]`, the recording's
media time `at` (seconds) where a part begins and that part's wall time (Unix seconds).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from transcoder.ffmpeg.progress import Progress
from transcoder.layout import atomic_write

CLOCK = "clock.json"
ESTIMATE_REPORTS = 20  # progress reports (every 0.5 s) that may lower a part's estimate

ClockMap = list[tuple[float, float]]


def part_clock(part: Path) -> Path:
    """The file beside a part that holds its start on the wall clock."""
    return part.with_suffix(".clock")


class PartClock:
    """Estimates one part's start on the wall clock from FFmpeg's progress.

    `now - out_time` is never earlier than when the part's first frame was ingested: a report
    comes after what it counts was written, and a copy never runs ahead of the live source.
    The first reports also take in nginx's burst of already-buffered frames, so the smallest
    of them is the estimate (within a report interval).
    """

    def __init__(self, part: Path, now: Callable[[], float] = time.time) -> None:
        self.path = part_clock(part)
        self.now = now
        self.best: float | None = None
        self.seen = 0

    def observe(self, progress: Progress) -> None:
        """on_progress for the part's FFmpeg."""
        out = progress.out_time_s
        if self.seen >= ESTIMATE_REPORTS or out is None or out <= 0:
            return
        self.seen += 1
        start = self.now() - out
        if self.best is None or start < self.best:
            self.best = start
            atomic_write(self.path, f"{start:.3f}\n")


def read_part_clock(part: Path) -> float | None:
    """A part's start on the wall clock, or None when it has none (or an unreadable one)."""
    try:
        return float(part_clock(part).read_text())
    except (OSError, ValueError):
        return None


def clock_map(starts: Sequence[float | None], durations: Sequence[float]) -> ClockMap:
    """The joined recording's clock from each part's start and duration, in part order;
    parts without a known start are left out (the one before them covers their time)."""
    out: ClockMap = []
    at = 0.0
    for start, duration in zip(starts, durations, strict=True):
        if start is not None:
            out.append((round(at, 3), round(start, 3)))
        at += duration
    return out


def write_clock(directory: Path, clock: ClockMap) -> None:
    """clock.json in directory (nothing when the clock is empty)."""
    if clock:
        atomic_write(directory / CLOCK, json.dumps(clock) + "\n")


def read_clock(directory: Path) -> ClockMap | None:
    """The recording's clock.json, or None."""
    try:
        raw = json.loads((directory / CLOCK).read_text())
        return [(float(at), float(wall)) for at, wall in raw]
    except (OSError, ValueError, TypeError):
        return None
