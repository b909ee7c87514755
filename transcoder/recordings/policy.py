"""Pure decisions of retention: which recordings go by age, and which when the volume fills."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Stored:
    """A recording as retention sees it."""

    id: str
    started_at: datetime
    bytes: int
    in_progress: bool  # recording or finalizing: never deleted


def expired(stored: Sequence[Stored], now: datetime, max_age: timedelta | None) -> list[str]:
    """Ids older than max_age (None: keep forever), never one in progress."""
    if max_age is None:
        return []
    return [s.id for s in stored if not s.in_progress and now - s.started_at > max_age]


def over_water(
    stored: Sequence[Stored], used: int, total: int, high: float, low: float
) -> list[str]:
    """Oldest first, enough ids to bring `used` under low * total once `used` passes high."""
    if total <= 0 or used <= high * total:
        return []
    to_free = used - int(low * total)
    chosen: list[str] = []
    for s in sorted(stored, key=lambda s: s.started_at):
        if to_free <= 0:
            break
        if s.in_progress:
            continue
        chosen.append(s.id)
        to_free -= s.bytes
    return chosen
