"""Pure decisions of when background work may run: the off-peak window and CPU headroom."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time
from pathlib import Path

_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


@dataclass(frozen=True)
class Window:
    """A daily off-peak window in local time, e.g. 02:00-07:00; may wrap past midnight."""

    start: time
    end: time | None  # None: 24:00

    @classmethod
    def parse(cls, text: str) -> Window:
        """'HH:MM-HH:MM'; ValueError otherwise."""
        match = _WINDOW.match(text.strip())
        if match is None:
            raise ValueError(f"not HH:MM-HH:MM: {text!r}")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h2 == 24 and m2 != 0:
            raise ValueError(f"not HH:MM-HH:MM: {text!r}")
        return cls(time(h1, m1), None if h2 == 24 else time(h2, m2))

    def contains(self, moment: time) -> bool:
        """True when moment (local wall-clock time) falls inside the window."""
        if self.end is None:
            return moment >= self.start
        if self.start <= self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end  # wraps past midnight


@dataclass(frozen=True)
class CpuSample:
    """Cumulative jiffies from /proc/stat: work not done at nice > 0, and all of it."""

    foreground: int  # user + system + irq + softirq + steal: everything but niced and idle
    total: int


def read_cpu(stat: Path = Path("/proc/stat")) -> CpuSample:
    """The aggregate `cpu` line of /proc/stat."""
    fields = [int(v) for v in stat.read_text().splitlines()[0].split()[1:]]
    user, _nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return CpuSample(user + system + irq + softirq + steal, sum(fields[:8]))


def headroom(before: CpuSample, after: CpuSample) -> float | None:
    """How many times over the CPUs could carry the foreground work; None if unknown.

    Compression runs at nice 19, so its CPU shows up as `nice` and is left out: what remains
    is what live (and everything else) needs. 1.2 means it would still fit if it needed 20 %
    more, the same margin as a ladder encoding at 1.2x real time.
    """
    total = after.total - before.total
    busy = after.foreground - before.foreground
    if total <= 0:
        return None
    return float("inf") if busy <= 0 else total / busy


def process_jiffies(pid: int) -> int | None:
    """CPU (user + system, in /proc/stat's units) a process has used; None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": field 3 is fields[0]
    return int(fields[11]) + int(fields[12])  # utime, stime
