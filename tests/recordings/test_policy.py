"""Retention choice, the off-peak window and CPU headroom: pure decisions."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from transcoder.recordings.policy import Stored, expired, over_water
from transcoder.schedule import CpuSample, Window, headroom, read_cpu

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)


def stored(rid: str, days_old: float, size: int, in_progress: bool = False) -> Stored:
    return Stored(rid, NOW - timedelta(days=days_old), size, in_progress)


def test_expired_by_age_never_in_progress() -> None:
    items = [stored("old", 40, 1), stored("live", 45, 1, True), stored("new", 2, 1)]
    assert expired(items, NOW, timedelta(days=30)) == ["old"]
    assert expired(items, NOW, None) == []


def test_over_water_deletes_oldest_first_until_low() -> None:
    items = [
        stored("c", 3, 100),
        stored("a", 9, 100, in_progress=True),
        stored("b", 5, 100),
        stored("d", 1, 100),
    ]
    # 950 of 1000 used, high 0.9, low 0.75: 200 to free, a (oldest) is recording.
    assert over_water(items, used=950, total=1000, high=0.9, low=0.75) == ["b", "c"]
    assert over_water(items, used=900, total=1000, high=0.9, low=0.75) == []


@pytest.mark.parametrize(
    ("text", "inside", "outside"),
    [
        ("02:00-07:00", time(3, 30), time(7, 0)),
        ("22:30-04:00", time(1, 0), time(12, 0)),
        ("00:00-24:00", time(23, 59), None),
    ],
)
def test_window(text: str, inside: time, outside: time | None) -> None:
    window = Window.parse(text)
    assert window.contains(inside)
    if outside is not None:
        assert not window.contains(outside)


@pytest.mark.parametrize("text", ["", "2-7", "25:00-01:00", "01:00-24:30"])
def test_bad_window(text: str) -> None:
    with pytest.raises(ValueError):
        Window.parse(text)


def test_headroom_leaves_niced_work_out(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    #                 user nice system idle iowait irq softirq steal
    stat.write_text("cpu  100 0 0 0 0 0 0 0\n")
    before = read_cpu(stat)
    # 400 jiffies pass: 100 live work, 250 compression at nice 19, 50 idle.
    stat.write_text("cpu  180 250 20 50 0 0 0 0\n")
    after = read_cpu(stat)
    assert headroom(before, after) == pytest.approx(4.0)
    assert headroom(before, before) is None
    assert headroom(CpuSample(0, 0), CpuSample(0, 10)) == float("inf")
