"""Benchmark (not CI): what a simulcast relay costs, beside the ladder it runs next to.

    .venv/bin/python bench/relay.py [--destinations 3] [--seconds 30] [--size 640x360] [--kbps 1500]

Starts a private stack (PostgreSQL, nginx, `onair serve`), publishes an OBS-like H.264 + AAC
test pattern in real time, relays it to N destinations on a second nginx-rtmp (the stand-in
platform of the simulcast tests), and measures over one window the CPU core-seconds per media
second of the relays' FFmpegs and, as the baseline in the same run, of the ladder's FFmpegs
(its HEVC rungs and its H.264 copy rung, which copies like a relay). Writes
bench/results/relay-<date>[-tag].json and .md with the machine's description.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The server package is imported from this checkout: the repository root goes first.
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from harness import cpu_seconds, ffmpeg_pids, private_stack, stop_process, wait_until  # noqa: E402
from host import describe_host, write_results  # noqa: E402

from bench.rtmp_platform import Platform  # noqa: E402

RESULTS = ROOT / "bench" / "results"
LIVE_TIMEOUT = 180.0


async def call(session: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> Any:
    """One API call; its JSON body."""
    async with session.request(method, url, json=body) as response:
        text = await response.text()
        if response.status >= 400:
            raise RuntimeError(f"{method} {url}: {response.status} {text[:200]}")
        return json.loads(text) if text else None


def per_process_cpu(pids: list[int]) -> dict[int, float]:
    return {pid: cpu_seconds([pid]) for pid in pids}


def window_cpu(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent in the window by the processes alive at its end (one started in
    the window counts whole); one that ended in the window is lost, and reported."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def is_copy_rung(pid: int, media: Path) -> bool:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f"{media}/live/bench/h264/".encode() in f.read()


async def run(destinations: int, seconds: float, size: str, kbps: int) -> dict[str, Any]:
    began = time.monotonic()
    platform = Platform()
    await platform.start()
    try:
        async with private_stack(overrides={"relay_allow_private": True}) as stack:
            admin = {"Authorization": f"Bearer {stack.settings.admin_token}"}
            base = stack.nginx_url
            async with aiohttp.ClientSession(headers=admin) as session:
                made = await call(session, "POST", f"{base}/api/channels", {"slug": "bench"})
                for n in range(destinations):
                    await call(
                        session,
                        "POST",
                        f"{base}/api/channels/bench/destinations",
                        {"name": f"Platform {n}", "server": platform.server(), "key": f"k-{n}"},
                    )
                publisher = await asyncio.create_subprocess_exec(
                    "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
                    "-re", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30",
                    "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
                    "-c:v", "libx264", "-preset", "veryfast", "-b:v", f"{kbps}k",
                    "-maxrate", f"{kbps}k", "-bufsize", f"{2 * kbps}k", "-g", "60",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "160k",
                    "-f", "flv", f"rtmp://127.0.0.1:{stack.settings.rtmp_port}/live/"
                    + made["stream_key"],
                )  # fmt: skip
                try:

                    async def all_live() -> bool:
                        found = await call(
                            session, "GET", f"{base}/api/channels/bench/destinations"
                        )
                        ladder = ffmpeg_pids(stack.settings.media_root)
                        return bool(ladder) and all(d["state"] == "live" for d in found)

                    await wait_until(all_live, LIVE_TIMEOUT, "every relay live and the ladder up")
                    await asyncio.sleep(5)  # past the start-up probes
                    media = stack.settings.media_root
                    load_before = os.getloadavg()
                    relays0 = per_process_cpu(ffmpeg_pids("onair-relay-bench-"))
                    ladder0 = per_process_cpu(ffmpeg_pids(media))
                    bytes0 = await platform.streams()
                    t0 = time.monotonic()
                    await asyncio.sleep(seconds)
                    window = time.monotonic() - t0
                    relays1 = per_process_cpu(ffmpeg_pids("onair-relay-bench-"))
                    ladder1 = per_process_cpu(ffmpeg_pids(media))
                    copy = [pid for pid in ladder1 if is_copy_rung(pid, media)]
                    bytes1 = await platform.streams()
                    load_after = os.getloadavg()
                finally:
                    await stop_process(publisher)
    finally:
        await platform.stop()
    relays = list(relays1)
    relay_cpu = window_cpu(relays0, relays1) / window
    ladder_cpu = window_cpu(ladder0, ladder1) / window
    copy_cpu = window_cpu(ladder0, {p: ladder1[p] for p in copy}) / window
    received = {k: (bytes1.get(k, 0) - bytes0.get(k, 0)) * 8 / window / 1000 for k in bytes1}
    return {
        "machine": describe_host(),
        "date": time.strftime("%Y-%m-%d"),
        "elapsed_s": time.monotonic() - began,
        "load_before": load_before,
        "load_after": load_after,
        "source": {"size": size, "fps": 30, "video_kbps": kbps, "audio_kbps": 160},
        "destinations": destinations,
        "window_s": round(window, 1),
        "relay_processes": len(relays),
        "ladder_processes": len(ladder1),
        "ladder_restarted_in_window": set(ladder0) != set(ladder1) or set(relays0) != set(relays1),
        "copy_rung_core_s_per_s": round(copy_cpu, 4),
        "relay_core_s_per_s_each": round(relay_cpu / max(1, len(relays)), 4),
        "relays_core_s_per_s": round(relay_cpu, 4),
        "ladder_core_s_per_s": round(ladder_cpu, 4),
        "relay_vs_ladder": round(relay_cpu / max(1, len(relays)) / ladder_cpu, 4),
        "relay_vs_copy_rung": round(relay_cpu / max(1, len(relays)) / copy_cpu, 2),
        "platform_kbps_received": {k: round(v) for k, v in sorted(received.items())},
    }


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    return "\n".join(
        [
            f"# Simulcast relay cost — {r['date']}",
            "",
            f"{m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB; {m['ffmpeg']}; load "
            f"{r['load_before'][0]:.2f} before, {r['load_after'][0]:.2f} after.",
            "",
            f"Source: {r['source']['size']} 30 fps H.264 {r['source']['video_kbps']} kbit/s + "
            f"AAC {r['source']['audio_kbps']} kbit/s, {r['destinations']} destinations, "
            f"{r['window_s']} s window.",
            "",
            "| what | processes | CPU core-seconds per media second |",
            "|---|---|---|",
            f"| the ladder (baseline) | {r['ladder_processes']} | {r['ladder_core_s_per_s']} |",
            f"| its H.264 copy rung | 1 | {r['copy_rung_core_s_per_s']} |",
            f"| all relays | {r['relay_processes']} | {r['relays_core_s_per_s']} |",
            f"| one relay | 1 | {r['relay_core_s_per_s_each']} "
            f"({r['relay_vs_ladder']:.1%} of the ladder, {r['relay_vs_copy_rung']}x its copy "
            "rung) |",
            "",
            "A process replaced in the window: "
            + (
                "yes (its CPU before it ended is lost)" if r["ladder_restarted_in_window"] else "no"
            ),
            "",
            "Received by the platform, kbit/s: "
            + ", ".join(f"{k} {v}" for k, v in r["platform_kbps_received"].items()),
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--destinations", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=30.0)
    # 640x360: one HEVC rung and the copy on 2 cores (a 720p ladder sheds there mid-window).
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--kbps", type=int, default=1500)
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    report = asyncio.run(run(args.destinations, args.seconds, args.size, args.kbps))
    write_results(RESULTS, "relay", args.tag, report, markdown)


if __name__ == "__main__":
    main()
