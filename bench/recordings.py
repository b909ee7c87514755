"""Benchmark (not CI): GB per recorded hour before and after H.265 compression, speed per core.

    python -m bench.recordings [--seconds 120] [--size 1280x720] [--kbps 4500] [--preset medium]

Makes an OBS-like H.264 stream copy (CBR at --kbps, 2 s GOP, AAC 160k) of a moving test
pattern, finalizes it the way the server does, compresses it with the server's x265 flags
(nice 19, idle I/O class, one job), and writes bench/results/recordings-<preset>-<size>.json
with the machine's description. testsrc2 is easier to compress than a camera or a game, so
read the ratio as an upper bound and the speed as a lower bound on cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from host import describe_host

from transcoder.recordings import media

ROOT = Path(__file__).resolve().parent
WORK = ROOT / "work" / "recordings"


def machine() -> dict[str, object]:
    """What ran the benchmark."""
    return describe_host()


def make_source(path: Path, seconds: int, size: str, kbps: int) -> None:
    """What OBS sends: H.264 CBR, 2 s keyframes, AAC; as the recorder stores it (MPEG-TS)."""
    args = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", str(seconds),
        "-c:v", "libx264", "-preset", "veryfast",
        "-b:v", f"{kbps}k", "-maxrate", f"{kbps}k", "-bufsize", f"{kbps * 2}k",
        "-x264-params", "nal-hrd=cbr",  # OBS's default rate control for streaming
        "-g", "60", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "160k",
        "-f", "mpegts", str(path),
    ]  # fmt: skip
    subprocess.run(
        args,
        check=True,
    )


async def run(seconds: int, size: str, kbps: int, preset: str, crf: int) -> dict[str, object]:
    """One source through finalize and compress; the figures the issue asks for."""
    folder = WORK / f"{preset}-{size}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    make_source(folder / "part-0001.ts", seconds, size, kbps)
    tools = media.Tools(run_dir=WORK / "run")
    started = time.perf_counter()
    before = await media.finalize(folder, tools, "bench")
    finalize_s = time.perf_counter() - started
    reference = WORK / f"reference-{preset}-{size}.mp4"
    reference.write_bytes((folder / media.ORIGINAL).read_bytes())
    cpu0 = os.times()
    started = time.perf_counter()
    result = await media.compress(folder, tools, media.CompressOptions(preset, crf), "bench")
    wall = time.perf_counter() - started
    cpu1 = os.times()
    assert result is not None, "H.265 came out larger"
    _, after = result
    cpu_s = (cpu1.children_user - cpu0.children_user) + (
        cpu1.children_system - cpu0.children_system
    )
    score = await media.ssim(reference, folder / media.COMPRESSED)
    hour = 3600 / before.duration_s
    cores = os.cpu_count() or 1
    return {
        "source": {"size": size, "fps": 30, "video_kbps": kbps, "seconds": before.duration_s},
        "x265": {"preset": preset, "crf": crf},
        "gb_per_hour_original": round(before.bytes * hour / 1e9, 3),
        "gb_per_hour_compressed": round(after.bytes * hour / 1e9, 3),
        "ratio": round(after.bytes / before.bytes, 3),
        "ssim": round(score, 4),
        "finalize_s": round(finalize_s, 2),
        "compress_wall_s": round(wall, 1),
        "compress_speed_x": round(before.duration_s / wall, 3),
        "compress_cpu_s": round(cpu_s, 1),
        # media seconds per CPU second: how much one fully used core compresses per second
        "compress_speed_per_core_x": round(before.duration_s / cpu_s, 3) if cpu_s else None,
        "cores_used": round(cpu_s / wall, 2),
        "cores": cores,
        "hours_of_recording_per_day_one_core": round(24 * before.duration_s / cpu_s, 1)
        if cpu_s
        else None,
    }


def main() -> None:
    """Parse arguments, run, print and save the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--kbps", type=int, default=4500)
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--crf", type=int, default=26)
    args = parser.parse_args()
    result = asyncio.run(run(args.seconds, args.size, args.kbps, args.preset, args.crf))
    result["machine"] = machine()
    result["date"] = time.strftime("%Y-%m-%d")
    text = json.dumps(result, indent=2)
    print(text)
    out = ROOT / "results" / f"recordings-{args.preset}-{args.size}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")


if __name__ == "__main__":
    main()
