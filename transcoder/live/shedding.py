"""When ffmpeg cannot keep up with live input: pure policies for a faster preset, then
shedding, and for bringing a shed rung back once the box has room."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from transcoder.live.encoders import faster_preset
from transcoder.live.ladder import AV1_PRESETS, LadderConfig, Rendition, shed_rung
from transcoder.schedule import CpuSample


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
    config: LadderConfig  # with the faster preset when action is "preset"
    renditions: tuple[Rendition, ...]


def catch_up(config: LadderConfig, renditions: Sequence[Rendition]) -> CatchUp | None:
    """Step a family that may adapt to a faster preset first (every rung kept): HEVC (the
    costlier in software), then AV1; shed the costliest rung only when no preset can step;
    None when neither is possible."""
    codecs = {r.codec for r in renditions if not r.copy}
    if "hevc" in codecs and config.hevc_preset_adapts:
        faster = faster_preset(config.hevc_encoder, config.preset)
        if faster is not None:
            return CatchUp("preset", replace(config, preset=faster), tuple(renditions))
    if "av1" in codecs and config.av1_preset_adapts and config.av1_preset < max(AV1_PRESETS):
        faster_av1 = replace(config, av1_preset=config.av1_preset + 1)
        return CatchUp("preset", faster_av1, tuple(renditions))
    smaller = shed_rung(list(renditions), config)
    if smaller is not None:
        return CatchUp("shed", config, tuple(smaller))
    return None


@dataclass(frozen=True)
class CpuReading:
    """The box's CPU counters and each rung process's, read at one moment."""

    box: CpuSample
    rungs: dict[int, int]  # pid -> jiffies used


def predicted_speed(
    before: CpuReading, after: CpuReading, cost_now: float, cost_added: float
) -> float | None:
    """How many times real time the ladder could run with a rung of cost_added back.

    Live input caps every rung at 1.0x, so speed says nothing about room; CPU does. The
    ladder's measured CPU scales by cost (ladder.cpu_cost) to what the bigger ladder would
    need; the room is every CPU but what the rest of the box used (niced work excluded: it
    yields). None when the interval cannot tell (a rung restarted, no CPU counted).
    """
    total = after.box.total - before.box.total
    if total <= 0 or cost_now <= 0 or set(before.rungs) != set(after.rungs):
        return None
    ladder = sum(after.rungs[pid] - before.rungs[pid] for pid in after.rungs)
    if ladder <= 0:
        return None
    other = max(0, after.box.foreground - before.box.foreground - ladder)
    need = ladder * (cost_now + cost_added) / cost_now
    return (total - other) / need


class RestoreTimer:
    """True once the predicted speed has stayed at or above a floor for hold_s."""

    def __init__(self, hold_s: float, floor: float) -> None:
        """hold_s: how long the room must last; floor: the predicted speed it must keep."""
        self.hold_s = hold_s
        self.floor = floor
        self._since: float | None = None

    def observe(self, now: float, predicted: float | None) -> None:
        """A new prediction: below the floor (or unknown) starts the wait over."""
        if predicted is None or predicted < self.floor:
            self._since = None
        elif self._since is None:
            self._since = now

    def reset(self) -> None:
        """Something changed (a shed, a restart): wait a whole hold again."""
        self._since = None

    def ready(self, now: float) -> bool:
        """True when the room has lasted hold_s."""
        return self._since is not None and now - self._since >= self.hold_s
