"""bench/capacity.py's arithmetic on a small fixed input (never on measured numbers)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load_capacity() -> ModuleType:
    """bench/ is a folder of scripts, not a package: load capacity.py by path."""
    spec = importlib.util.spec_from_file_location("bench_capacity", BENCH / "capacity.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


capacity = load_capacity()

UNITS = capacity.Units(
    ladder_cores={"720p": {"superfast": 3.0, "ultrafast": 2.0}},
    transcoder_rss_mib=200,
    playlist_per_server_cpu_s=1000,
    playlist_per_nginx_cpu_s=4000,
    segment_mb_per_nginx_cpu_s=1000,
    chat_idle_cores_per_1k=0.01,
    chat_cpu_us_per_delivery=50,
    chat_rss_mib_per_1k=40,
    server_rss_mib=100,
    gb_per_hour_original=2.0,
    gb_per_hour_compressed=1.0,
    compress_media_s_per_cpu_s=0.5,
)
SCENARIO = capacity.Scenario(viewers=1000, viewer_kbps=2000)
SIX = capacity.Plan("six", vcpu=6, ram_gb=16, disk_gb=320, bandwidth_tb=5, list_usd=80)
FOUR = capacity.Plan("four", vcpu=4, ram_gb=8, disk_gb=160, bandwidth_tb=4, list_usd=40)


def test_demand_adds_up_each_part() -> None:
    d = capacity.demand(UNITS, SCENARIO)
    assert d.cores_transcode == 3.0
    # 1,000 viewers / 2 s = 500 playlists/s at 1/1000 + 1/4000 CPU-s each
    assert d.cores_playlists == pytest.approx(0.625)
    # 1,000 x 2 Mbit/s = 250 MB/s at 1,000 MB per nginx CPU-s
    assert d.cores_segments == pytest.approx(0.25)
    # 1,000 idle clients at 0.01 cores + 5 msg/s x 1,000 deliveries x 50 µs
    assert d.cores_chat == pytest.approx(0.26)
    assert d.cores_total == pytest.approx(4.135)
    assert d.ram_mib == sum(capacity.FIXED_RAM_MIB.values()) + 100 + 200 + 40
    assert d.egress_gbit_s == pytest.approx(2.0)
    # 250 MB/s x 4 h x 30 days
    assert d.egress_tb_month == pytest.approx(108.0)
    # 100 h x 1 GB kept 30 days + one day (100/30 h) not yet compressed at 2 GB/h
    assert d.recordings_gb == pytest.approx(106.7)
    # 100/30 h a day at 0.5 media-s per CPU-s, spread over a 5 h window
    assert d.compress_cores_offpeak == pytest.approx(1.33)
    # the Python process: its share of the playlists (0.5) and all of chat (0.26)
    assert d.server_process_cores == pytest.approx(0.76)
    assert capacity.server_processes(d) == 2  # 0.76 cores > 70 % of one core


def test_fit_prices_server_storage_and_egress_overage() -> None:
    r = capacity.fit(capacity.demand(UNITS, SCENARIO), SIX)
    assert r["cpu_use"] == pytest.approx(4.135 / 6, abs=1e-3)
    assert r["fits"] is True
    assert r["overage_tb"] == pytest.approx(108 - 5 - capacity.POOLED_FREE_TB)
    assert r["block_gb"] == 250
    expected = 80 * capacity.BACKUPS + 250 * capacity.BLOCK_USD_PER_GB + 101 * 10
    assert r["monthly_usd"] == pytest.approx(expected)
    assert capacity.fit(capacity.demand(UNITS, SCENARIO), FOUR)["fits"] is False


def test_choose_takes_the_cheapest_fit_and_prefers_the_better_preset_on_a_tie() -> None:
    chosen = capacity.choose(UNITS, SCENARIO, [FOUR, SIX], ["superfast", "ultrafast"])
    assert len(chosen["rows"]) == 4
    # four at ultrafast needs 3.135 of 4 cores (78 % > 70 %): only six fits, at either preset
    assert (chosen["best"]["plan"], chosen["best"]["preset"]) == ("six", "superfast")


def test_block_storage_rounds_up_in_steps_with_a_quarter_spare() -> None:
    assert capacity.block_storage_gb(0) == 250
    assert capacity.block_storage_gb(200) == 250
    assert capacity.block_storage_gb(201) == 500
