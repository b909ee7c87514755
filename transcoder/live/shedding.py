"""When ffmpeg cannot keep up with live input: pure policies for a faster preset, then shedding."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from transcoder.live.encoders import faster_preset
from transcoder.live.ladder import LadderConfig, Rendition, shed_rung


class ShedPolicy:
    """Catch up (faster preset, else shed) when the rate stays below min_speed for window_s.

    ffmpeg's own `speed` is a lifetime average that starts low while RTMP connects, so the
    policy measures media seconds per wall second over a sliding window instead.
    """

    def __init__(self, *, window_s: float = 20.0, min_speed: float = 0.95) -> None:
        """window_s: how long speed must stay low; min_speed: below this is falling behind."""
        self.window_s = window_s
        self.min_speed = min_speed
        self._samples: deque[tuple[float, float]] = deque()
        self._since = 0.0

    def reset(self, now: float) -> None:
        """Forget history: call at every (re)start of ffmpeg."""
        self._samples.clear()
        self._since = now

    def observe(self, now: float, out_time_s: float) -> None:
        """Record that at monotonic time now, ffmpeg had written out_time_s of media."""
        self._samples.append((now, out_time_s))
        # keep one sample older than the window so the rate spans the whole window
        while len(self._samples) > 2 and self._samples[1][0] <= now - self.window_s:
            self._samples.popleft()

    def speed(self) -> float | None:
        """Media seconds per wall second over the retained samples; None if too few."""
        if len(self._samples) < 2:
            return None
        (t0, m0), (t1, m1) = self._samples[0], self._samples[-1]
        return (m1 - m0) / (t1 - t0) if t1 - t0 >= 1.0 else None

    def should_shed(self, now: float) -> bool:
        """True once a full window of samples shows a rate below min_speed."""
        if now - self._since < self.window_s or not self._samples:
            return False
        if now - self._samples[0][0] < self.window_s * 0.9:
            return False
        speed = self.speed()
        return speed is not None and speed < self.min_speed


@dataclass(frozen=True)
class CatchUp:
    """What to do when the encoder falls behind live: a faster preset, or fewer rungs."""

    action: Literal["preset", "shed"]
    preset: str
    renditions: tuple[Rendition, ...]


def catch_up(config: LadderConfig, renditions: Sequence[Rendition]) -> CatchUp | None:
    """Step to a faster preset first (every rung kept); shed the costliest rung only at the
    fastest preset; None when neither is possible (one HEVC rung at the fastest preset)."""
    hevc_encoded = any(r.codec == "hevc" and not r.copy for r in renditions)
    faster = faster_preset(config.hevc_encoder, config.preset) if hevc_encoded else None
    if faster is not None:
        return CatchUp("preset", faster, tuple(renditions))
    smaller = shed_rung(list(renditions))
    if smaller is not None:
        return CatchUp("shed", config.preset, tuple(smaller))
    return None
