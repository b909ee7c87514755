"""When background encoding may start, and when it must pause so live never suffers."""

from __future__ import annotations

from datetime import datetime

from server.live.streams import Streams
from transcoder import schedule
from transcoder.live.pool import LadderPool

RESUME_AFTER_TICKS = 3  # calm ticks in a row before a paused job continues
BEHIND = 0.97  # a ladder slower than this is falling behind live


class CompressGate:
    """When a background job may start, and when a running one must pause for live."""

    def __init__(
        self,
        streams: Streams,
        ladders: LadderPool,
        window: schedule.Window | None,
        margin: float,
    ) -> None:
        """window: off-peak hours when jobs start even while channels are live."""
        self.streams = streams
        self.ladders = ladders
        self.window = window
        self.margin = margin
        self._cpu: schedule.CpuSample | None = None
        self._calm = 0

    def live(self) -> int:
        """Channels live now."""
        return len(self.streams.started)

    def may_start(self) -> bool:
        """Start a job only while nothing is live, or inside the off-peak window."""
        in_window = self.window is not None and self.window.contains(datetime.now().time())
        return self.live() == 0 or in_window

    def _strained(self) -> bool:
        if self.live() == 0:
            return False
        for speed in self.ladders.speeds().values():
            if speed is not None and speed < BEHIND:
                return True
        sample = schedule.read_cpu()
        room = schedule.headroom(self._cpu, sample) if self._cpu is not None else None
        self._cpu = sample
        return room is not None and room < self.margin

    def begin(self) -> None:
        """A job starts: sample the CPU now, so its first tick already measures headroom."""
        self._cpu = schedule.read_cpu()
        self._calm = 0

    def should_pause(self, paused: bool) -> bool:
        """Called every tick while a job runs: pause at once, resume only after calm ticks."""
        if self._strained():
            self._calm = 0
            return True
        self._calm += 1
        return paused and self._calm < RESUME_AFTER_TICKS
