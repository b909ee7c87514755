"""Which channels are live right now, and since when: the in-process view ingest keeps."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass
class LiveRegistry:
    """slug → start time of the current session; ingest writes, the API and pages read."""

    started: dict[str, datetime] = field(default_factory=dict)
    viewer_counts: dict[str, int] = field(default_factory=dict)

    def go_live(self, slug: str) -> datetime:
        """Mark a channel live; returns the session's start."""
        return self.started.setdefault(slug, datetime.now(UTC))

    def go_offline(self, slug: str) -> None:
        """Mark a channel offline."""
        self.started.pop(slug, None)

    def started_at(self, slug: str) -> datetime | None:
        """When the current session began, or None when offline."""
        return self.started.get(slug)

    def viewers(self, slug: str) -> int:
        """Players watching the channel now (kept by the viewer sessions)."""
        return self.viewer_counts.get(slug, 0)
