"""The pure parts of bench/latency.py and bench/chat.py: barcodes, playlists, push clock, stats."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load(name: str) -> ModuleType:
    """bench/ is a folder of scripts that import each other by plain name."""
    if str(BENCH) not in sys.path:
        sys.path.append(str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


latency = load("latency")
chat = load("chat")


def row(number: int, dark: int = 20, light: int = 235) -> bytes:
    """One decoded barcode row: bit i of number → byte i, as ffmpeg's 16x1 gray output."""
    return bytes(light if number >> i & 1 else dark for i in range(latency.BITS))


def test_frame_numbers_read_each_row_and_tolerate_blur() -> None:
    raw = row(0) + row(1) + row(1234) + row(65535, dark=90, light=170)
    assert latency.frame_numbers(raw) == [0, 1, 1234, 65535]
    assert latency.frame_numbers(raw[:-1]) == [0, 1, 1234]  # a cut-off row is dropped


def test_playlists_give_segments_and_variants_in_order() -> None:
    media = '#EXTM3U\n#EXT-X-MAP:URI="init.mp4"\n#EXTINF:2.0,\na-1.m4s\n#EXTINF:2.0,\na-2.m4s\n'
    assert latency.playlist_segments(media) == ["a-1.m4s", "a-2.m4s"]
    master = (
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n720p/index.m3u8\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=2\nh264/index.m3u8\n"
    )
    assert latency.variant_uris(master) == ["720p/index.m3u8", "h264/index.m3u8"]


def test_clock_takes_the_earliest_estimate_of_frame_zero() -> None:
    clock = latency.Clock()
    clock.report(0, 100.0)  # no frame yet: ignored
    clock.report(31, 101.2)  # frame 30 out by 101.2 → T0 ≤ 100.2
    clock.report(61, 102.1)  # frame 60 out by 102.1 → T0 ≤ 100.1 (a prompter report)
    assert clock.t0 == pytest.approx(100.1)
    assert clock.pushed_at(90) == pytest.approx(103.1)
    assert clock.reports == 2


def test_rung_summary_uses_only_contiguous_segments() -> None:
    good = [
        {"at_s": at, "first_s": f, "last_s": f - 2, "contiguous": True}
        for at, f in ((10.0, 3.0), (50.0, 3.2), (70.0, 3.4))
    ]
    bad = [
        {"at_s": 80.0, "first_s": 9.0, "last_s": 9.0, "contiguous": False},
        {"error": "HTTP 404"},
    ]
    summary = latency.rung_summary(good + bad)
    assert summary["segments"] == 3
    assert summary["bad"] == 2
    assert summary["first_frame_p50_s"] == 3.2
    assert summary["first_frame_max_s"] == 3.4
    assert summary["last_frame_p50_s"] == 1.2
    assert summary["drift_s"] == 0.4
    assert summary["minute_p50_s"] == [3.1, 3.4]  # minute 0: 3.0 and 3.2; minute 1: 3.4


def test_chat_percentile_and_rate_per_thousand() -> None:
    values = [float(n) for n in range(1, 101)]
    assert chat.percentile(values, 50) == 50.0
    assert chat.percentile(values, 99) == 99.0
    assert chat.percentile([], 50) is None
    # 3 CPU-s over 10 s with 500 clients = 36 CPU-s per 1,000 clients per minute
    assert chat.per_thousand_per_minute(3.0, 10.0, 500) == pytest.approx(36.0)
