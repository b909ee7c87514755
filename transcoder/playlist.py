"""Write the master playlist ourselves (CODECS, FRAME-RATE, shedding) and finish playlists."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from transcoder.ladder import Rendition, average_bandwidth, bandwidth, codecs_string
from transcoder.probe import SourceInfo

ENDLIST = "#EXT-X-ENDLIST"
START_HEIGHT = 480  # the variant players start on: quick first frame, then ABR climbs


def atomic_write(path: Path, text: str) -> None:
    """Write text to path via a temp file in the same directory and os.replace."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; nginx and the server must read it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def order_variants(renditions: Iterable[Rendition]) -> list[Rendition]:
    """HEVC first, starting at the best rung <= 480p, then by bandwidth; H.264 last.

    hls.js and Safari start on the first listed variant it can decode: HEVC-capable players
    start on a mid rung, the rest filter HEVC out and start on the H.264 rung.
    """
    hevc = sorted((r for r in renditions if r.codec == "hevc"), key=bandwidth, reverse=True)
    h264 = [r for r in renditions if r.codec != "hevc"]
    start = next((r for r in hevc if r.height <= START_HEIGHT), hevc[-1] if hevc else None)
    first = [start] if start is not None else []
    return first + [r for r in hevc if r is not start] + h264


def master_text(renditions: Iterable[Rendition], source: SourceInfo) -> str:
    """The master playlist text for the given renditions."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for r in order_variants(renditions):
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={bandwidth(r)},AVERAGE-BANDWIDTH={average_bandwidth(r)},"
            f'RESOLUTION={r.width}x{r.height},CODECS="{codecs_string(r, source)}",'
            f"FRAME-RATE={source.fps:.3f}"
        )
        lines.append(f"{r.name}/index.m3u8")
    return "\n".join(lines) + "\n"


def write_master(output_dir: Path, renditions: Iterable[Rendition], source: SourceInfo) -> Path:
    """Atomically (re)write output_dir/master.m3u8; returns its path."""
    path = output_dir / "master.m3u8"
    atomic_write(path, master_text(renditions, source))
    return path


def append_endlist(playlist: Path) -> bool:
    """Finish a media playlist with #EXT-X-ENDLIST unless it has one; False if absent."""
    try:
        text = playlist.read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    if ENDLIST in text:
        return True
    atomic_write(playlist, text.rstrip("\n") + f"\n{ENDLIST}\n")
    return True
