"""Playlists: the master we write ourselves (CODECS, FRAME-RATE, shedding), ENDLIST when a
stream ends, and reading back what a master and a media playlist name."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from transcoder.ffmpeg.probe import SourceInfo
from transcoder.layout import atomic_write
from transcoder.live.ladder import Rendition, average_bandwidth, bandwidth, codecs_string

ENDLIST = "#EXT-X-ENDLIST"
START_HEIGHT = 480  # the variant players start on: quick first frame, then ABR climbs


def order_variants(renditions: Iterable[Rendition]) -> list[Rendition]:
    """AV1, then HEVC, then H.264; each family from its best rung <= 480p, then by bandwidth.

    Safari and hls.js start on the first listed variant they can decode (hls.js prefers HEVC
    to AV1 on its own unless the page says otherwise), so a player starts on a mid rung of the
    most efficient family it decodes, and one without HEVC or AV1 on the H.264 rung.
    """
    out: list[Rendition] = []
    for codec in ("av1", "hevc"):
        family = sorted((r for r in renditions if r.codec == codec), key=bandwidth, reverse=True)
        start = next(
            (r for r in family if r.height <= START_HEIGHT), family[-1] if family else None
        )
        out += ([start] if start is not None else []) + [r for r in family if r is not start]
    return out + [r for r in renditions if r.codec == "h264"]


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


# What the server reads back: only names our own writers produce are believed.
_VARIANT_URI = re.compile(r"^([a-z0-9]{1,16})/index\.m3u8$")
_BANDWIDTH = re.compile(r"BANDWIDTH=(\d+)")
_MAP = re.compile(r'#EXT-X-MAP:URI="(?:\.\./[a-z0-9]{1,16}/)?([^"/]+)"')
_MEDIA_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,80}\.(?:m4s|mp4)$")


@dataclass(frozen=True)
class Variant:
    """One `#EXT-X-STREAM-INF` of a master playlist we wrote."""

    rendition: str  # its folder name
    bandwidth: int


def read_variants(master: str) -> list[Variant]:
    """The variants a master playlist lists, in its order."""
    found: list[Variant] = []
    lines = master.splitlines()
    for line, uri in itertools.pairwise(lines):
        bandwidth_ = _BANDWIDTH.search(line)
        name = _VARIANT_URI.match(uri)
        if line.startswith("#EXT-X-STREAM-INF:") and bandwidth_ and name:
            found.append(Variant(name.group(1), int(bandwidth_.group(1))))
    return found


def newest_media(playlist: str) -> tuple[str, str] | None:
    """(init segment, newest segment) file names of a media playlist, or None.

    The newest segment decodes with the last EXT-X-MAP (a new one follows each discontinuity).
    """
    inits = _MAP.findall(playlist)
    segments = [ln for ln in playlist.splitlines() if ln and not ln.startswith("#")]
    if not inits or not segments:
        return None
    names = (inits[-1], segments[-1])
    return names if all(_MEDIA_NAME.match(n) for n in names) else None
