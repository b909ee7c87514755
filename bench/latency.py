"""Glass-to-glass latency: a frame pushed over RTMP → the segment holding it fetchable, per rung.

Run from the repository root:

    .venv/bin/python bench/latency.py                  # 640x360 source, 60 s
    .venv/bin/python bench/latency.py --quick          # 640x360 source, 20 s
    .venv/bin/python bench/latency.py --size 1280x720  # the full 720/480/360 ladder
    .venv/bin/python bench/latency.py --codecs av1     # an AV1 ladder (ONAIR_LADDER_CODECS)
    .venv/bin/python bench/latency.py --size 1280x720 --source camera --preset veryfast \
        --seconds 600                                  # OBS on the same box, 10 minutes

It starts the same private stack as bench/http_load.py (PostgreSQL, nginx-rtmp rendered from
the product template, `onair serve`), creates a channel and pushes an OBS-style stream to it:
ffmpeg `-re` from a lavfi test pattern (or, with `--source camera`, bench/camera.py's 720p30
natural-content stand-in, looped), H.264 (x264 `--preset`, ultrafast by default; OBS's
default is veryfast; zerolatency, 2 s GOP) + AAC, encoded on the same machine.
Each frame carries its number as a 16-bit barcode in the top eighth of the picture (a 16x1
`geq` strip scaled up with nearest-neighbour, so it survives scaling and HEVC). The pusher's
`-progress` output gives when frame n left the encoder; the earliest (report time - n/fps)
estimates the wall time of frame 0, so frame n was pushed at T0 + n/fps.

A player is simulated per rung of the master playlist: it polls the rendition playlist through
nginx every 100 ms; when a segment appears, it fetches init.mp4 and the segment through nginx,
decodes the barcodes of its first and last frames and records

    latency(first frame) = time the segment appeared - push time of its first frame

(what a player that starts on this segment waits at best; the last frame's figure is about one
segment shorter). The first two segments are skipped (start-up). Per rung the p50 of each
minute is kept (a ladder that falls behind real time shows a rising latency), and the master
playlist is read every 5 s: which variants it lists over time (sheds and restores).
Results: p50/max per rung in bench/results/latency-<date>[-quick].json and .md with the
machine's description.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import re
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import camera  # noqa: E402
from chat import rss_bytes  # noqa: E402
from harness import (  # noqa: E402
    cpu_seconds,
    descendants,
    private_stack,
    stop_process,
    wait_for,
)
from host import write_results  # noqa: E402
from http_load import load, machine  # noqa: E402

from transcoder.live.window import parse_media  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SLUG = "latency"
FPS = 30
BITS = 16  # frame numbers up to 65,535: 36 minutes at 30 fps
POLL_S = 0.1
SKIP_SEGMENTS = 2


def pusher_args(
    rtmp: str, size: str, kbps: int, preset: str = "ultrafast", clip: Path | None = None
) -> list[str]:
    """OBS-like H.264 + AAC push whose frames carry their number as a barcode."""
    width, height = (int(x) for x in size.split("x"))
    band = max(16, height // 8)
    video = ["-re", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={FPS}"]
    picture = "[0:v]"
    if clip is not None:
        video = ["-re", "-stream_loop", "-1", "-i", str(clip)]
        picture = f"[0:v]scale={width}:{height},fps={FPS}[pic];[pic]"
    graph = (
        f"nullsrc=s={BITS}x1:r={FPS},format=gray,"
        # bit X of the frame number N: white or black
        "geq=lum='255*mod(floor(N/pow(2\\,X))\\,2)',"
        f"scale={width}:{band}:flags=neighbor,format=yuv420p[bar];"
        f"{picture}[bar]overlay=0:0:shortest=1,format=yuv420p[v]"
    )
    return [
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", *video,
        "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-filter_complex", graph, "-map", "[v]", "-map", "1:a",
        "-c:v", "libx264", "-preset", preset, "-tune", "zerolatency",
        "-g", str(2 * FPS), "-b:v", f"{kbps}k", "-maxrate", f"{kbps}k",
        "-bufsize", f"{kbps * 2}k", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "128k",
        "-progress", "pipe:1", "-stats_period", "0.25",
        "-f", "flv", rtmp,
    ]  # fmt: skip


def frame_numbers(raw: bytes) -> list[int]:
    """Frame numbers from BITS-byte gray rows (one per frame, bit 0 leftmost)."""
    numbers = []
    for start in range(0, len(raw) - BITS + 1, BITS):
        row = raw[start : start + BITS]
        numbers.append(sum(1 << i for i, value in enumerate(row) if value >= 128))
    return numbers


async def decode_barcodes(init: bytes, segment: bytes) -> list[int]:
    """Every frame's number in an fMP4 segment (init + media), in decode order."""
    with tempfile.NamedTemporaryFile(suffix=".mp4") as tmp:
        tmp.write(init + segment)
        tmp.flush()
        process = await asyncio.create_subprocess_exec(
            "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-i", tmp.name,
            "-vf", f"crop=iw:ih/8:0:0,scale={BITS}:1:flags=area", "-an",
            "-fps_mode", "passthrough",  # one row per coded frame, no duplicates
            "-f", "rawvideo", "-pix_fmt", "gray", "-",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        out, _ = await process.communicate()
    return frame_numbers(out)


def playlist_segments(text: str) -> list[str]:
    """Segment URIs of a media playlist, oldest first."""
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def variant_uris(master: str) -> list[str]:
    """Rendition playlist URIs of a master playlist."""
    return [u for u in playlist_segments(master) if u.endswith(".m3u8")]


class Clock:
    """Push time of frame n, from the pusher's -progress reports."""

    def __init__(self) -> None:
        self.t0: float | None = None
        self.reports = 0

    def report(self, frames: int, at: float) -> None:
        """frame=N arrived at wall time `at`: frame N-1 was pushed no later than that."""
        if frames <= 0:
            return
        estimate = at - (frames - 1) / FPS
        self.t0 = estimate if self.t0 is None else min(self.t0, estimate)
        self.reports += 1

    def pushed_at(self, frame: int) -> float:
        """Wall time frame n was pushed."""
        assert self.t0 is not None
        return self.t0 + frame / FPS

    async def follow(self, stream: asyncio.StreamReader) -> None:
        """Read `frame=N` lines until the pusher exits."""
        while line := await stream.readline():
            match = re.match(rb"frame=(\d+)", line)
            if match:
                self.report(int(match.group(1)), time.time())


async def watch_rung(
    session: aiohttp.ClientSession, base: str, uri: str, until: float, clock: Clock
) -> list[dict[str, Any]]:
    """A player on one rung: poll the playlist, time each new segment, decode its frames."""
    folder = uri.rsplit("/", 1)[0]
    seen: set[str] = set()
    first_poll = True
    samples: list[dict[str, Any]] = []
    inits: dict[str, bytes] = {}  # each FFmpeg run has its own init segment
    decodes: list[asyncio.Task[None]] = []

    async def measure(name: str, init_name: str, visible: float) -> None:
        if init_name not in inits:
            async with session.get(f"{base}/{folder}/{init_name}") as r:
                inits[init_name] = await r.read()
        init = inits[init_name]
        async with session.get(f"{base}/{folder}/{name}") as r:
            if r.status != 200:
                samples.append({"segment": name, "error": f"HTTP {r.status}"})
                return
            body = await r.read()
        frames = await decode_barcodes(init, body)
        if not frames or clock.t0 is None:
            samples.append({"segment": name, "error": "no frames decoded"})
            return
        samples.append(
            {
                "segment": name,
                "frames": len(frames),
                "at_s": round(visible - clock.pushed_at(0), 1),
                "first_frame": frames[0],
                "last_frame": frames[-1],
                "contiguous": frames == list(range(frames[0], frames[0] + len(frames))),
                "first_s": round(visible - clock.pushed_at(frames[0]), 3),
                "last_s": round(visible - clock.pushed_at(frames[-1]), 3),
            }
        )

    skipped = 0
    while time.monotonic() < until:
        async with session.get(f"{base}/{uri}") as r:
            text = await r.text() if r.status == 200 else ""
        visible = time.time()
        for segment in parse_media(text).segments:
            name = segment.uri
            if name in seen:
                continue
            seen.add(name)
            # Segments already listed at the first poll were not seen appearing.
            if first_poll or skipped < SKIP_SEGMENTS:
                skipped += 0 if first_poll else 1
                continue
            decodes.append(asyncio.create_task(measure(name, segment.init, visible)))
        first_poll = False
        await asyncio.sleep(POLL_S)
    await asyncio.gather(*decodes)
    return samples


def transcoders(server_pid: int) -> list[int]:
    """The server's ffmpeg children (one per live channel)."""
    found = []
    for pid in descendants(server_pid):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "ffmpeg":
                found.append(pid)
        except OSError:
            continue
    return found


async def sample_transcoder(server_pid: int, until: float, out: dict[str, float]) -> None:
    """CPU-seconds and peak RSS of the live ladder's ffmpeg while the players watch.

    The supervisor may restart ffmpeg (a faster preset, a shed rung): every process seen
    counts, from the start of the window or from its own start.
    """
    started = time.monotonic()
    first: dict[int, float] = {pid: cpu_seconds([pid]) for pid in transcoders(server_pid)}
    last = dict(first)
    peak = 0
    while time.monotonic() < until:
        pids = transcoders(server_pid)
        for pid in pids:
            first.setdefault(pid, 0.0)
            last[pid] = cpu_seconds([pid])
        peak = max(peak, sum(rss_bytes(p) for p in pids))
        await asyncio.sleep(0.5)
    wall = time.monotonic() - started
    used = sum(last[p] - first[p] for p in last)
    out["transcoder_core_s_per_s"] = round(used / wall, 3)
    out["transcoder_peak_rss_mib"] = round(peak / 2**20, 1)
    out["transcoder_processes"] = len(last)


def rung_summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """p50/max of first- and last-frame latency over a rung's good samples."""
    good = [s for s in samples if "first_s" in s and s["contiguous"]]
    first = [s["first_s"] for s in good]
    last = [s["last_s"] for s in good]
    return {
        "segments": len(good),
        "bad": len(samples) - len(good),
        "first_frame_p50_s": round(statistics.median(first), 2) if first else None,
        "first_frame_max_s": round(max(first), 2) if first else None,
        "last_frame_p50_s": round(statistics.median(last), 2) if last else None,
        # A rising latency means the ladder does not keep up with real time.
        "drift_s": round(first[-1] - first[0], 2) if len(first) > 1 else None,
        "minute_p50_s": minute_medians(good),
    }


def minute_medians(samples: list[dict[str, Any]]) -> list[float]:
    """p50 first-frame latency of each whole minute since the push (a partial last one too)."""
    minutes: dict[int, list[float]] = {}
    for s in samples:
        minutes.setdefault(int(s["at_s"] // 60), []).append(s["first_s"])
    return [round(statistics.median(v), 2) for _, v in sorted(minutes.items())]


async def watch_master(
    session: aiohttp.ClientSession, url: str, until: float, started: float
) -> list[dict[str, Any]]:
    """The master's variants every 5 s, kept only when they change: sheds and restores."""
    timeline: list[dict[str, Any]] = []
    while time.monotonic() < until:
        async with session.get(url) as r:
            variants = sorted(variant_uris(await r.text())) if r.status == 200 else []
        if not timeline or timeline[-1]["variants"] != variants:
            timeline.append({"at_s": round(time.monotonic() - started, 1), "variants": variants})
        await asyncio.sleep(5)
    return timeline


async def measure(
    size: str, kbps: int, seconds: float, codecs: str, preset: str, clip: Path | None
) -> dict[str, Any]:
    """Push, wait for the master playlist, watch every rung for `seconds`."""
    overrides = {"ladder_codecs": tuple(codecs.split(","))}
    async with private_stack(overrides=overrides) as stack:
        headers = {"Authorization": f"Bearer {stack.settings.admin_token}"}
        async with (
            aiohttp.ClientSession(headers=headers) as admin,
            admin.post(
                f"{stack.server_url}/api/channels", json={"slug": SLUG, "title": "Latency"}
            ) as r,
        ):
            r.raise_for_status()
            key = (await r.json())["stream_key"]
        rtmp = f"rtmp://127.0.0.1:{stack.settings.rtmp_port}/live/{key}"
        clock = Clock()
        pushed = time.monotonic()
        pusher = await asyncio.create_subprocess_exec(
            *pusher_args(rtmp, size, kbps, preset, clip),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        assert pusher.stdout is not None
        follower = asyncio.create_task(clock.follow(pusher.stdout))
        try:
            base = f"{stack.nginx_url}/hls/{SLUG}"
            await wait_for(f"{base}/master.m3u8", 60, "master playlist")
            to_master = time.monotonic() - pushed
            await asyncio.sleep(1.0)  # the ladder's ffmpeg is running by now
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{base}/master.m3u8") as r:
                    master = await r.text()
                uris = variant_uris(master)
                until = time.monotonic() + seconds
                cost: dict[str, float] = {}
                sampler = asyncio.create_task(sample_transcoder(stack.server_pid, until, cost))
                masters = asyncio.create_task(
                    watch_master(session, f"{base}/master.m3u8", until, pushed)
                )
                per_rung = await asyncio.gather(
                    *(watch_rung(session, base, uri, until, clock) for uri in uris)
                )
                await sampler
                timeline = await masters
        finally:
            await stop_process(pusher, signal.SIGINT)
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
    rungs = {uri.split("/")[0]: samples for uri, samples in zip(uris, per_rung, strict=True)}
    return {
        "publish_to_master_s": round(to_master, 2),
        "clock_reports": clock.reports,
        **cost,
        "master_timeline": timeline,
        "rungs": {name: rung_summary(s) | {"samples": s} for name, s in rungs.items()},
    }


def markdown(report: dict[str, Any]) -> str:
    """A short table for bench/results/latency-<date>.md."""
    m = report["machine"]
    lines = [
        f"# Glass-to-glass latency {report['date']}{' (quick)' if report['quick'] else ''}",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB; {m['ffmpeg'][:22]},"
        f" {m['nginx']}. Load average before {report['load_before']}, after"
        f" {report['load_after']}. Source {report['size']} @ {FPS} fps, {report['kbps']} kbit/s"
        f" H.264 ({report.get('source', 'pattern')}, x264"
        f" {report.get('publisher_preset', 'ultrafast')} on this machine),"
        f" ladder {report.get('codecs', 'hevc')} + H.264;"
        f" {report['seconds']:.0f} s watched; publish → master playlist"
        f" {report['publish_to_master_s']} s. The live ladder's ffmpeg meanwhile:"
        f" {report.get('transcoder_core_s_per_s')} core-s/s,"
        f" peak RSS {report.get('transcoder_peak_rss_mib')} MiB.",
        "",
        "| rung | segments | first frame p50 s | first frame max s | last frame p50 s"
        " | drift s | first → last minute p50 s | bad |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in report["rungs"].items():
        minutes = r.get("minute_p50_s") or []
        trend = f"{minutes[0]} → {minutes[-1]}" if minutes else ""
        lines.append(
            f"| {name} | {r['segments']} | {r['first_frame_p50_s']} | {r['first_frame_max_s']}"
            f" | {r['last_frame_p50_s']} | {r['drift_s']} | {trend} | {r['bad']} |"
        )
    lines += ["", "Master playlist over time (variants listed):", ""]
    for entry in report.get("master_timeline", []):
        names = ", ".join(v.split("/")[0] for v in entry["variants"])
        lines.append(f"- {entry['at_s']} s after the push: {names}")
    lines += [
        "",
        "first frame: a segment's first frame pushed → the segment listed in the playlist via"
        " nginx (a player starting there waits at least this); drift: last - first sample"
        " (rising = the ladder falls behind real time).",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, push and watch, write bench/results/latency-<date>[-tag].json/.md."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 s instead of 60 s")
    parser.add_argument("--size", default="640x360", help="source size, WxH")
    parser.add_argument("--kbps", type=int, default=0, help="source bitrate (default by size)")
    parser.add_argument("--seconds", type=float, default=0, help="how long to watch")
    parser.add_argument("--tag", default="", help="suffix for the result file names")
    parser.add_argument("--codecs", default="hevc", help="ONAIR_LADDER_CODECS, e.g. av1")
    parser.add_argument("--source", choices=("pattern", "camera"), default="pattern")
    parser.add_argument("--preset", default="ultrafast", help="the publisher's x264 preset")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    height = int(args.size.split("x")[1])
    kbps = args.kbps or (4500 if height >= 720 else 2500 if height >= 480 else 1500)
    seconds = args.seconds or (20.0 if args.quick else 60.0)
    started = time.monotonic()
    report: dict[str, Any] = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine(),
        "size": args.size,
        "kbps": kbps,
        "seconds": seconds,
        "codecs": args.codecs,
        "source": args.source,
        "publisher_preset": args.preset,
        "load_before": load(),
    }
    clip = camera.make(60) if args.source == "camera" else None
    report |= asyncio.run(measure(args.size, kbps, seconds, args.codecs, args.preset, clip))
    report["load_after"] = load()
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    parts = (f"{height}p", args.source if args.source != "pattern" else "", args.tag)
    tag = "-".join(x for x in (*parts[:2], "quick" if args.quick else "", parts[2]) if x)
    write_results(RESULTS, "latency", tag, report, markdown)


if __name__ == "__main__":
    main()
