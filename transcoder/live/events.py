"""What happened to a live ladder, in order: preset steps, sheds, restores, restarts, giving up.

The supervisor and its rungs append here as they act; the dashboard's live panel shows the
latest (server/live/status.py). Times are wall-clock (time.time()), for people to read.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

Kind = Literal["preset", "shed", "restore", "restart", "failed"]
KEPT = 50  # the newest events a ladder keeps


@dataclass(frozen=True)
class LadderEvent:
    """One thing the ladder did: to which rung, and why in a few words."""

    at: float  # time.time()
    kind: Kind
    rung: str
    detail: str


class LadderEvents:
    """The newest KEPT events of one ladder, oldest first."""

    def __init__(self) -> None:
        self._events: deque[LadderEvent] = deque(maxlen=KEPT)

    def add(self, kind: Kind, rung: str, detail: str) -> None:
        """Record that the ladder just did `kind` to `rung`."""
        self._events.append(LadderEvent(time.time(), kind, rung, detail))

    def __iter__(self) -> Iterator[LadderEvent]:
        return iter(tuple(self._events))

    def __len__(self) -> int:
        return len(self._events)
