"""Capacity model: which Vultr plan carries 100, 500 and 1,000+ viewers, from measured unit costs.

Run from the repository root (reads the newest results, runs nothing heavy):

    .venv/bin/python bench/capacity.py

Unit costs come from bench/results/: CPU per second of media for a live ladder by source and
preset (transcode-*.json and the final Big Buck Bunny log), CPU per playlist request through
nginx and per byte of segments (http-*.json), CPU per delivered chat message, per idle
connection and memory per 1,000 connections (chat-*.json), the live ladder's memory
(latency-*.json) and GB per recorded hour and compression speed (recordings-*.json). The
scenario (viewers, bitrate they watch, chat rate, hours live, hours recorded) and the plans
(Vultr, with the source of each price) are written out in the result, so every figure in the
table can be recomputed by hand. Output: bench/results/capacity-<date>.json and .md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import re
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from transcoder.live.ladder import LadderConfig  # noqa: E402

RESULTS = ROOT / "bench" / "results"

CPU_HEADROOM = 0.70  # plan CPU use at most 70 %: spikes, shared vCPUs, a second channel starting
RAM_HEADROOM = 0.80  # page cache for segments and PostgreSQL wants the rest
# Not measured here; generous round figures (PostgreSQL 15 defaults: 128 MB shared_buffers).
FIXED_RAM_MIB = {"os": 400, "postgresql": 300, "nginx": 50, "redis": 50}
OVERAGE_USD_PER_TB = 10.0  # Vultr: $0.01/GB beyond the plan's allowance
POOLED_FREE_TB = 2.0  # Vultr: 2 TB/month of egress free per account, pooled
BLOCK_USD_PER_GB = 0.10  # Vultr block storage: $1 per 10 GB/month (seed: 250 GB $25, 500 GB $50)
BLOCK_STEP_GB = 250
BACKUPS = 1.20  # automatic backups add 20 %; with them the list reproduces the seed's prices

PRICE_SOURCE = (
    "Vultr Cloud Compute, Regular Performance list prices as copied in"
    " github.com/rvnheaxf/vultr-pricing-analysis (README, crawled 2025; it quotes"
    " vultr.com/pricing), not re-checked against vultr.com on 2026-11-22 (no network here);"
    " +20 % automatic backups, which gives exactly the seed plan's $48 (4 vCPU/8 GB) and $96"
    " (6 vCPU/16 GB). Overage $0.01/GB and 2 TB pooled free egress from the same page."
)


@dataclass(frozen=True)
class Plan:
    """One Vultr instance type."""

    name: str
    vcpu: int
    ram_gb: float
    disk_gb: int
    bandwidth_tb: float
    list_usd: float

    @property
    def price_usd(self) -> float:
        """Monthly price with automatic backups."""
        return round(self.list_usd * BACKUPS, 2)


PLANS = (
    Plan("vc2-2c-4gb", 2, 4, 80, 3, 20),
    Plan("vc2-4c-8gb", 4, 8, 160, 4, 40),
    Plan("vc2-6c-16gb", 6, 16, 320, 5, 80),
    Plan("vc2-8c-32gb", 8, 32, 640, 6, 160),
)


@dataclass(frozen=True)
class Units:
    """Measured per-unit costs (CPU in core-seconds per second = cores)."""

    ladder_cores: dict[str, dict[str, float]]  # source -> preset -> cores per live channel
    transcoder_rss_mib: float  # one live ladder's ffmpeg
    playlist_per_server_cpu_s: float  # playlist requests via nginx per server CPU-second
    playlist_per_nginx_cpu_s: float
    segment_mb_per_nginx_cpu_s: float  # segment megabytes nginx sends per CPU-second
    chat_idle_cores_per_1k: float  # 1,000 connected, silent chat clients
    chat_cpu_us_per_delivery: float  # one message to one client, all costs included
    chat_rss_mib_per_1k: float
    server_rss_mib: float  # `onair serve` with nobody connected
    gb_per_hour_original: float
    gb_per_hour_compressed: float
    compress_media_s_per_cpu_s: float
    sources: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    """One load level and the assumptions that turn units into demand."""

    viewers: int
    channels: int = 1
    source: str = "720p"
    preset: str = "superfast"
    viewer_kbps: float = 2628.0  # the 720p HEVC rung + audio (LadderConfig defaults)
    playlist_interval_s: float = 2.0  # a player re-reads its rendition playlist once a segment
    chatters_share: float = 1.0  # share of viewers with the chat open
    chat_msgs_per_s: float = 5.0  # messages per second in the room, all senders
    live_hours_per_day: float = 4.0
    recorded_hours_per_month: float = 100.0  # the seed plan's monthly figure
    retention_days: int = 30


@dataclass(frozen=True)
class Demand:
    """What a scenario needs from one host."""

    cores_transcode: float
    cores_playlists: float
    cores_segments: float
    cores_chat: float
    cores_total: float
    ram_mib: float
    egress_gbit_s: float
    egress_tb_month: float
    recordings_gb: float
    compress_cores_offpeak: float  # cores busy in a 5 h nightly window to keep up
    server_process_cores: float  # the Python server's share: playlists + chat, one core each


def server_processes(d: Demand) -> int:
    """Server processes needed (`ONAIR_WORKERS`; more than one shares chat through Redis)."""
    return max(1, math.ceil(d.server_process_cores / CPU_HEADROOM))


def demand(units: Units, s: Scenario, offpeak_hours: float = 5.0) -> Demand:
    """The scenario's CPU, memory, egress and storage from the unit costs."""
    transcode = s.channels * units.ladder_cores[s.source][s.preset]
    playlist_rate = s.viewers / s.playlist_interval_s
    playlists_server = playlist_rate / units.playlist_per_server_cpu_s
    playlists = playlists_server + playlist_rate / units.playlist_per_nginx_cpu_s
    egress_bytes_s = s.viewers * s.viewer_kbps * 1000 / 8
    segments = egress_bytes_s / 1e6 / units.segment_mb_per_nginx_cpu_s
    chatters = s.viewers * s.chatters_share
    deliveries_s = s.chat_msgs_per_s * chatters
    chat = chatters / 1000 * units.chat_idle_cores_per_1k + deliveries_s * (
        units.chat_cpu_us_per_delivery / 1e6
    )
    ram = (
        sum(FIXED_RAM_MIB.values())
        + units.server_rss_mib
        + s.channels * units.transcoder_rss_mib
        + chatters / 1000 * units.chat_rss_mib_per_1k
    )
    live_s_month = s.live_hours_per_day * 3600 * 30
    recordings = (
        s.recorded_hours_per_month * units.gb_per_hour_compressed * (s.retention_days / 30)
        + s.recorded_hours_per_month / 30 * units.gb_per_hour_original
    )  # a day not yet compressed
    compress_cpu_s_day = s.recorded_hours_per_month / 30 * 3600 / units.compress_media_s_per_cpu_s
    return Demand(
        cores_transcode=round(transcode, 3),
        cores_playlists=round(playlists, 3),
        cores_segments=round(segments, 3),
        cores_chat=round(chat, 3),
        cores_total=round(transcode + playlists + segments + chat, 3),
        ram_mib=round(ram),
        egress_gbit_s=round(egress_bytes_s * 8 / 1e9, 3),
        egress_tb_month=round(egress_bytes_s * live_s_month / 1e12, 2),
        recordings_gb=round(recordings, 1),
        compress_cores_offpeak=round(compress_cpu_s_day / (offpeak_hours * 3600), 2),
        server_process_cores=round(playlists_server + chat, 3),
    )


def block_storage_gb(needed_gb: float) -> int:
    """The block volume to buy: needed plus a quarter, in BLOCK_STEP_GB steps."""
    return max(BLOCK_STEP_GB, math.ceil(needed_gb * 1.25 / BLOCK_STEP_GB) * BLOCK_STEP_GB)


def fit(d: Demand, plan: Plan) -> dict[str, Any]:
    """Does one host of this plan carry the demand, and what does the month cost?"""
    cpu_use = d.cores_total / plan.vcpu
    ram_use = d.ram_mib / (plan.ram_gb * 1024)
    overage_tb = max(0.0, d.egress_tb_month - plan.bandwidth_tb - POOLED_FREE_TB)
    block_gb = block_storage_gb(d.recordings_gb)
    cost = plan.price_usd + block_gb * BLOCK_USD_PER_GB + overage_tb * OVERAGE_USD_PER_TB
    return {
        "plan": plan.name,
        "cpu_use": round(cpu_use, 3),
        "ram_use": round(ram_use, 3),
        "fits_cpu": cpu_use <= CPU_HEADROOM,
        "fits_ram": ram_use <= RAM_HEADROOM,
        "fits": cpu_use <= CPU_HEADROOM and ram_use <= RAM_HEADROOM,
        "server_processes": server_processes(d),
        "block_gb": block_gb,
        "overage_tb": round(overage_tb, 2),
        "monthly_usd": round(cost, 2),
        "server_usd": plan.price_usd,
        "bandwidth_usd": round(overage_tb * OVERAGE_USD_PER_TB, 2),
    }


def choose(
    units: Units, scenario: Scenario, plans: Sequence[Plan], presets: Sequence[str]
) -> dict[str, Any]:
    """The cheapest plan that fits, trying the slower (better) preset first on each plan."""
    rows = []
    for preset in presets:
        s = dataclasses.replace(scenario, preset=preset)
        d = demand(units, s)
        for plan in plans:
            rows.append({"preset": preset, "demand": dataclasses.asdict(d)} | fit(d, plan))
    fitting = [r for r in rows if r["fits"]]
    best = min(fitting, key=lambda r: (r["monthly_usd"], presets.index(r["preset"])), default=None)
    at_default = [r for r in fitting if r["preset"] == scenario.preset]
    best_default = min(at_default, key=lambda r: r["monthly_usd"], default=None)
    return {"viewers": scenario.viewers, "rows": rows, "best": best, "best_default": best_default}


# --- reading the results --------------------------------------------------------------------

BBB_LOG = re.compile(r"^\s*bbb\s+(\S+)@1\s+speed\s+[\d.]+x cpu ([\d.]+) core-s/s", re.M)
CLIP_SOURCE = {"bbb": "720p", "pattern1080": "1080p", "bikes": "272p"}


def newest(paths: Iterable[Path]) -> Path | None:
    """The newest result file by its recorded date (then name)."""
    dated = []
    for path in paths:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        dated.append((str(data.get("date", "")), path.name, path))
    return max(dated)[2] if dated else None


def ladder_cores(results: Path) -> tuple[dict[str, dict[str, float]], list[str]]:
    """source -> preset -> core-s/s, newest run first; the shipped x265 extras only."""
    table: dict[str, dict[str, float]] = {}
    used: list[str] = []
    for log in sorted(results.glob("transcode-*-final-bbb.log"), reverse=True):
        for label, cores in BBB_LOG.findall(log.read_text()):
            preset = "superfast" if label == "default" else label
            table.setdefault("720p", {}).setdefault(preset, float(cores))
        used.append(log.name)
    files = sorted(
        results.glob("transcode-*.json"),
        key=lambda p: json.loads(p.read_text()).get("date", ""),
        reverse=True,
    )
    for path in files:
        report = json.loads(path.read_text())
        ladders = report.get("ladders", {})
        for clip, runs in report.get("results", {}).items():
            source = CLIP_SOURCE.get(clip, clip)
            for label, figures in runs.items():
                if label in ("runs", "decode-only") or "core_s_per_s" not in figures:
                    continue
                spec = ladders.get(label, {})
                if spec.get("x265_params"):
                    continue  # a tuning trial, not a shipped configuration
                preset = spec.get("preset", label)
                table.setdefault(source, {}).setdefault(preset, figures["core_s_per_s"])
        used.append(path.name)
    return table, used


def is_standard_http(path: Path) -> bool:
    """A bench/http_load.py run with the playlist and segment loads, at full length."""
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    names = {load.get("name") for load in report.get("loads", [])}
    return (
        not report.get("quick")
        and "playlist-via-nginx" in report.get("summary", {})
        and "segment-1mb-nginx" in names
    )


def load_units(results: Path) -> Units:
    """Unit costs from the newest result of each bench."""
    sources: dict[str, str] = {}
    ladders, used = ladder_cores(results)
    sources["ladder"] = ", ".join(used)

    # The newest full run of the standard loads (not an --ab comparison, not --quick).
    http_path = newest(p for p in results.glob("http-*.json") if is_standard_http(p))
    assert http_path, "no http-*.json: run bench/http_load.py"
    http = json.loads(http_path.read_text())
    sources["http"] = http_path.name
    via = http["summary"]["playlist-via-nginx"]
    segment = next(x for x in http["loads"] if x["name"] == "segment-1mb-nginx")

    # The default run: one process at the default rate (not --redis, not a --rate variant).
    chat_path = newest(
        p for p in results.glob("chat-*.json") if "redis" not in p.name and "rate" not in p.name
    )
    assert chat_path, "no chat-*.json: run bench/chat.py"
    chat = json.loads(chat_path.read_text())
    sources["chat"] = chat_path.name
    summary, big = chat["summary"], chat["rows"][-1]

    latency_path = newest(results.glob("latency-*720p*.json")) or newest(
        results.glob("latency-*.json")
    )
    rss = 400.0
    if latency_path:
        rss = json.loads(latency_path.read_text()).get("transcoder_peak_rss_mib") or rss
        sources["transcoder_rss"] = latency_path.name

    rec_path = newest(results.glob("recordings-*.json"))
    assert rec_path, "no recordings-*.json: run bench/recordings.py"
    rec = json.loads(rec_path.read_text())
    sources["recordings"] = rec_path.name

    return Units(
        ladder_cores=ladders,
        transcoder_rss_mib=rss,
        playlist_per_server_cpu_s=via["per_server_cpu_s"],
        playlist_per_nginx_cpu_s=via["per_nginx_cpu_s"],
        segment_mb_per_nginx_cpu_s=round(segment["bytes"] / 1e6 / segment["nginx_cpu_s"], 1),
        chat_idle_cores_per_1k=round(summary["idle_cpu_s_per_1k_clients_per_min"] / 60, 4),
        # The median over rooms of 100+ (the 10-client room is all per-message fixed cost):
        # one window's figure moves by ±15 % on the shared bench machine.
        chat_cpu_us_per_delivery=statistics.median(
            r["cpu_us_per_delivery"] for r in chat["rows"] if r["clients"] >= 100
        ),
        chat_rss_mib_per_1k=summary["rss_mib_per_1k_clients"],
        server_rss_mib=round(big["rss_mib"] - big["rss_growth_mib"], 1),
        gb_per_hour_original=rec["gb_per_hour_original"],
        gb_per_hour_compressed=rec["gb_per_hour_compressed"],
        compress_media_s_per_cpu_s=rec["compress_speed_per_core_x"],
        sources=sources,
    )


# --- output ---------------------------------------------------------------------------------

LEVELS = (100, 500, 1000)
# Issue #20's busy room: 5,000 people in one chat, 10 messages/s (50,000 deliveries/s).
BUSY_VIEWERS, BUSY_MSGS_PER_S = 5000, 10.0
PRESETS = ("superfast", "ultrafast")


def top_rung_kbps(config: LadderConfig) -> float:
    """What a viewer on the best HEVC rung pulls: video + audio."""
    return max(r.video_kbps for r in config.rungs) + config.audio_kbps


def build(units: Units, levels: Sequence[int] = LEVELS) -> dict[str, Any]:
    """The whole model: scenarios, demand per plan, the cheapest fit per level."""
    base = Scenario(viewers=0, viewer_kbps=top_rung_kbps(LadderConfig()))
    return {
        "units": dataclasses.asdict(units),
        "assumptions": {
            "scenario": dataclasses.asdict(base) | {"viewers": list(levels)},
            "cpu_headroom": CPU_HEADROOM,
            "ram_headroom": RAM_HEADROOM,
            "fixed_ram_mib": FIXED_RAM_MIB,
            "overage_usd_per_tb": OVERAGE_USD_PER_TB,
            "pooled_free_tb": POOLED_FREE_TB,
            "block_usd_per_gb": BLOCK_USD_PER_GB,
            "backups_factor": BACKUPS,
            "price_source": PRICE_SOURCE,
        },
        "plans": [dataclasses.asdict(p) | {"price_usd": p.price_usd} for p in PLANS],
        "levels": [
            choose(units, dataclasses.replace(base, viewers=n), PLANS, PRESETS) for n in levels
        ],
        "busy_room": choose(
            units,
            dataclasses.replace(base, viewers=BUSY_VIEWERS, chat_msgs_per_s=BUSY_MSGS_PER_S),
            PLANS,
            PRESETS,
        ),
    }


def compact_table(model: dict[str, Any]) -> list[str]:
    """One row per level: CPU use on each plan at the default / fastest preset, and the bill."""
    plans = model["plans"]
    head = "| viewers | cores needed (superfast / ultrafast) | " + " | ".join(
        f"{p['vcpu']} vCPU / {p['ram_gb']:g} GB, ${p['price_usd']:.0f}" for p in plans
    )
    lines = [
        head + " | egress | cheapest fit, $/month all in |",
        "|---" * (len(plans) + 4) + "|",
    ]
    for level in model["levels"]:
        rows = {(r["plan"], r["preset"]): r for r in level["rows"]}
        presets = sorted({r["preset"] for r in level["rows"]}, key=PRESETS.index)
        cores = " / ".join(
            f"{next(r for r in level['rows'] if r['preset'] == p)['demand']['cores_total']:.2f}"
            for p in presets
        )
        cells = []
        for plan in plans:
            uses = [rows[(plan["name"], p)] for p in presets]
            text = " / ".join(f"{r['cpu_use']:.0%}" for r in uses)
            cells.append(text + (" ✓" if any(r["fits"] for r in uses) else " ✗"))
        d = level["rows"][0]["demand"]
        best = level["best"]
        fit_text = (
            f"{best['plan']} ({best['preset']}): ${best['monthly_usd']:,.0f}" if best else "none"
        )
        lines.append(
            f"| {level['viewers']:,} | {cores} | "
            + " | ".join(cells)
            + f" | {d['egress_gbit_s']:.2f} Gbit/s, {d['egress_tb_month']:.0f} TB | {fit_text} |"
        )
    return lines


def markdown(model: dict[str, Any]) -> str:
    """The capacity table: per level and plan, CPU/RAM use and the month's cost."""
    u, a = model["units"], model["assumptions"]
    s = a["scenario"]
    lines = [
        f"# Capacity model {model['date']}",
        "",
        f"Scenario: {s['channels']} live channel ({s['source']} source, ladder 720/480/360"
        f" HEVC + H.264 copy), every viewer on the top rung ({s['viewer_kbps']:.0f} kbit/s),"
        f" re-reading the playlist every {s['playlist_interval_s']:g} s, all in chat with"
        f" {s['chat_msgs_per_s']:g} messages/s in the room; live {s['live_hours_per_day']:g}"
        f" h/day; {s['recorded_hours_per_month']:g} recorded h/month kept"
        f" {s['retention_days']} days. A plan fits at ≤ {a['cpu_headroom']:.0%} CPU and"
        f" ≤ {a['ram_headroom']:.0%} RAM.",
        "",
        f"Unit costs (measured; files in `units.sources`): ladder 720p superfast"
        f" {u['ladder_cores']['720p'].get('superfast')} cores, ultrafast"
        f" {u['ladder_cores']['720p'].get('ultrafast')}; playlists"
        f" {u['playlist_per_server_cpu_s']:,} per server CPU-s + {u['playlist_per_nginx_cpu_s']:,}"
        f" per nginx CPU-s; segments {u['segment_mb_per_nginx_cpu_s']:,} MB per nginx CPU-s;"
        f" chat {u['chat_cpu_us_per_delivery']} µs CPU per delivered message,"
        f" {u['chat_idle_cores_per_1k']} cores per 1,000 idle clients,"
        f" {u['chat_rss_mib_per_1k']} MiB per 1,000 clients; ladder ffmpeg"
        f" {u['transcoder_rss_mib']} MiB; recordings {u['gb_per_hour_original']} GB/h"
        f" ({u['gb_per_hour_compressed']} GB/h after H.265).",
        "",
        "CPU use of each plan at superfast / ultrafast (✓: fits within the headroom at one"
        " of them):",
        "",
        *compact_table(model),
        "",
        "Every plan and preset:",
        "",
        "| viewers | plan | $/month (server) | preset | cores needed (transcode + playlists"
        " + segments + chat) | CPU use | RAM use | egress Gbit/s | TB/month | bandwidth $"
        " | block GB | total $/month | fits |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for level in model["levels"]:
        best = level["best"]
        for r in level["rows"]:
            d = r["demand"]
            mark = "**best**" if r is best else ("yes" if r["fits"] else "no")
            lines.append(
                f"| {level['viewers']:,} | {r['plan']} | {r['server_usd']:.0f} | {r['preset']}"
                f" | {d['cores_total']:.2f} ({d['cores_transcode']:.2f}"
                f" + {d['cores_playlists']:.2f} + {d['cores_segments']:.2f}"
                f" + {d['cores_chat']:.2f}) | {r['cpu_use']:.0%}"
                f" | {r['ram_use']:.0%} | {d['egress_gbit_s']:.2f} | {d['egress_tb_month']:.1f}"
                f" | {r['bandwidth_usd']:,.0f} | {r['block_gb']} | {r['monthly_usd']:,.0f}"
                f" | {mark} |"
            )
    lines += ["", "Cheapest fit per level (any preset; at the default preset):", ""]
    for level in model["levels"]:
        text = []
        for b in (level["best"], level["best_default"]):
            if b is None:
                text.append("no single plan fits")
                continue
            text.append(
                f"{b['plan']} at {b['preset']}, ${b['monthly_usd']:,.0f}/month (server"
                f" ${b['server_usd']:.0f}, bandwidth ${b['bandwidth_usd']:,.0f}, block"
                f" {b['block_gb']} GB; CPU {b['cpu_use']:.0%}, RAM {b['ram_use']:.0%},"
                f" {b['server_processes']} worker(s))"
            )
        lines.append(f"- {level['viewers']:,} viewers: {text[0]}; at the default: {text[1]}.")
    room = model["busy_room"]
    d, b = room["rows"][0]["demand"], room["best"]
    lines += [
        "",
        f"A busy room: {BUSY_VIEWERS:,} people in one chat at {BUSY_MSGS_PER_S:g} messages/s"
        f" ({BUSY_VIEWERS * BUSY_MSGS_PER_S:,.0f} deliveries/s):"
        f" chat needs {d['cores_chat']:.2f} cores, the server processes"
        f" {d['server_process_cores']:.2f} with the playlists, so"
        f" {server_processes(Demand(**d))} worker(s) at {CPU_HEADROOM:.0%} each; "
        + (
            f"cheapest fit with the whole stream: {b['plan']} at {b['preset']}"
            f" (CPU {b['cpu_use']:.0%})."
            if b
            else "no single plan carries the whole stream (transcode, egress and chat)."
        ),
    ]
    lines += ["", f"Prices: {a['price_source']}", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Read the newest results, build the model, write capacity-<date>.json and .md."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    model = {"date": dt.date.today().isoformat()} | build(load_units(args.results))
    stem = args.results / f"capacity-{model['date']}"
    stem.with_suffix(".json").write_text(json.dumps(model, indent=2) + "\n")
    text = markdown(model)
    stem.with_suffix(".md").write_text(text)
    print(text)
    print(f"wrote {stem}.json and .md")


if __name__ == "__main__":
    main()
