"""Turn captured parts into a VOD (one fragmented MP4 + byte-range HLS), compress, verify.

Compressed, a recording is two renditions under one master playlist (index.m3u8): the
efficient codec at the source's size (ONAIR_COMPRESS_CODEC: HEVC for Safari and hardware
decoders, or AV1 for Chromium, Firefox and recent Apple chips) and a small H.264 one every
browser decodes; each player takes the best it can (hls.js filters variants by CODECS).
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from transcoder.ffmpeg.probe import ProbeError, probe_json
from transcoder.ffmpeg.process import (
    BACKGROUND_PRIORITY,
    RECORDING_FORMATS,
    FfmpegProcess,
    base_args,
    local_input,
    run_captured,
    run_to_end,
    tagged,
)
from transcoder.ffmpeg.progress import Progress
from transcoder.recordings.clock import CLOCK, clock_map, part_clock, read_part_clock, write_clock

log = logging.getLogger("onair.recordings")

PLAYLIST = "index.m3u8"  # the original's media playlist; once compressed, the master
ORIGINAL = "video.mp4"  # the stream copy, as the publisher sent it
COMPRESS_CODECS = ("hevc", "av1")
FALLBACK = "video-h264.mp4"  # the small H.264 rendition beside the compressed copy


def compressed_name(codec: str) -> str:
    """The compressed copy's file: a new name, so cached byte ranges of the original never mix."""
    return f"video-{codec}.mp4"


def media_playlist(name: str) -> str:
    """A compressed rendition's media playlist: video-av1.mp4 -> video-av1.m3u8."""
    return name.removesuffix(".mp4") + ".m3u8"


COMPRESSED_FILES = tuple(compressed_name(c) for c in COMPRESS_CODECS)
# Every file a recording's folder may serve.
VOD_FILES = (
    PLAYLIST, ORIGINAL, FALLBACK, media_playlist(FALLBACK), *COMPRESSED_FILES,
    *(media_playlist(n) for n in COMPRESSED_FILES),
)  # fmt: skip
PART_GLOB = "part-*.ts"
VOD_SEGMENT_SECONDS = 6
PROBE_TIMEOUT_S = 60.0
TAG_PREFIX = "onair-recording-"


class MediaError(Exception):
    """ffmpeg or ffprobe failed, or the result did not verify."""


@dataclass(frozen=True)
class MediaInfo:
    """What the recordings table keeps about a finished file."""

    duration_s: float
    bytes: int
    video_codec: str
    audio_codec: str | None
    width: int = 0
    height: int = 0
    fps: float = 0.0
    video_profile: str = ""
    video_level: int = 0  # as ffprobe reports it: H.264 30 = 3.0, HEVC idc 93, AV1 seq_level_idx


@dataclass(frozen=True)
class Tools:
    """Which binaries to run and where their pidfiles go (for the orphan reaper)."""

    ffmpeg: str = "ffmpeg"
    ffprobe: str = "ffprobe"
    run_dir: Path = Path("/tmp")


def vod_args(ffmpeg: str, playlist: Path, media_name: str) -> list[str]:
    """Output flags: one fragmented MP4 that is both the download and the HLS byte ranges."""
    return [
        "-f", "hls",
        "-hls_time", str(VOD_SEGMENT_SECONDS),
        "-hls_segment_type", "fmp4",  # fMP4: the only HLS segment type HEVC plays in on Apple
        # single_file: no second copy on disk; the playlist points at byte ranges of the MP4
        "-hls_flags", "single_file+independent_segments",
        "-hls_playlist_type", "vod",  # EXT-X-PLAYLIST-TYPE:VOD and ENDLIST
        "-hls_segment_filename", str(playlist.parent / media_name),
        str(playlist),
    ]  # fmt: skip


async def background_run(
    args: list[str],
    directory: Path,
    tools: Tools,
    kind: str,
    label: str,
    *,
    on_start: Callable[[FfmpegProcess], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> tuple[int, str]:
    """One niced ffmpeg in the recording's folder; paths in args are relative to it.

    The tag names the folder, and the pidfile (finalize-/verify-/compress-<id>.pid) carries
    it, so the reaper only ever kills an ffmpeg that is verifiably this recording's.
    """
    tag = f"{TAG_PREFIX}{directory.name}"
    return await run_to_end(
        tagged(args, tag),
        cwd=directory,
        label=label,
        pidfile=tools.run_dir / f"{kind}-{directory.name}.pid",
        marker=tag,
        priority=BACKGROUND_PRIORITY,
        logger=log,
        on_start=on_start,
        on_progress=on_progress,
    )


async def probe_media(ffprobe: str, path: Path) -> MediaInfo:
    """Duration, size and codecs of a finished recording file."""
    try:
        data = await probe_json(ffprobe, path, timeout=PROBE_TIMEOUT_S, formats=RECORDING_FORMATS)
    except ProbeError as err:
        raise MediaError(f"ffprobe failed on {path.name}: {err}") from err
    streams = data.get("streams")
    fmt = data.get("format")
    if not isinstance(streams, list) or not isinstance(fmt, dict):
        raise MediaError(f"no streams in {path.name}")
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None:
        raise MediaError(f"no video stream in {path.name}")
    try:
        duration = float(fmt.get("duration", 0.0))
    except (TypeError, ValueError):
        duration = 0.0
    size = await asyncio.to_thread(lambda: path.stat().st_size)
    return MediaInfo(
        duration_s=duration,
        bytes=size,
        video_codec=str(video.get("codec_name")),
        audio_codec=str(audio.get("codec_name")) if audio else None,
        width=_int(video.get("width")),
        height=_int(video.get("height")),
        fps=_rate(video.get("avg_frame_rate")),
        video_profile=str(video.get("profile", "")),
        video_level=_int(video.get("level")),
    )


def _int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def _rate(value: object) -> float:
    num, _, den = str(value).partition("/")
    try:
        return float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        return 0.0


def media_name(directory: Path) -> str | None:
    """The MP4 the VOD playlist points at: video.mp4 once finalized, the compressed copy
    (video-hevc.mp4, video-av1.mp4) once the master lists it; None before either."""
    try:
        text = (directory / PLAYLIST).read_text()
    except FileNotFoundError:
        return None
    if "#EXT-X-STREAM-INF:" in text:
        listed = [n for n in COMPRESSED_FILES if f"\n{media_playlist(n)}\n" in text]
        return next((n for n in listed if (directory / n).exists()), None)
    match = re.search(r'#EXT-X-MAP:URI="([a-z0-9_-]+\.mp4)"', text)
    return match.group(1) if match and (directory / match.group(1)).exists() else None


def parts(directory: Path) -> list[Path]:
    """Captured MPEG-TS parts in order, empty ones (a run that got no packet) left out."""
    found = sorted(directory.glob(PART_GLOB))
    return [p for p in found if p.stat().st_size > 0]


def _remove_parts(directory: Path) -> None:
    for part in directory.glob(PART_GLOB):
        part.unlink(missing_ok=True)
        part_clock(part).unlink(missing_ok=True)


def replace_into(work: Path, directory: Path, names: list[str]) -> None:
    """Move finished files in; the playlist last, so it never names a missing file."""
    for name in names:
        (work / name).replace(directory / name)
    (work / PLAYLIST).replace(directory / PLAYLIST)
    shutil.rmtree(work, ignore_errors=True)


async def finalize(directory: Path, tools: Tools, label: str) -> MediaInfo:
    """Parts → one fragmented MP4 + VOD playlist (stream copy), then drop the parts.

    Safe to run again after a crash at any point: it starts from what is on disk.
    """
    found = await asyncio.to_thread(parts, directory)
    if not found:
        name = media_name(directory)
        if name is None:
            raise MediaError("no media was recorded")
        return await probe_media(tools.ffprobe, directory / name)
    first = await probe_media(tools.ffprobe, found[0])
    work = directory / ".finalize"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    # The concat demuxer rebases each part's timestamps onto the previous one's end, so a
    # recorder restart (disk full, RTMP hiccup) becomes a cut, not a gap or a time jump.
    listing = work / "parts.txt"
    listing.write_text("".join(f"file '{p.resolve()}'\n" for p in found))
    args = [
        *base_args(tools.ffmpeg),
        "-f", "concat", "-safe", "0",
        *local_input(f"{work.name}/{listing.name}", RECORDING_FORMATS),
        "-map", "0:v:0", "-map", "0:a:0?",
        "-c", "copy",  # a remux: seconds for an hour of video, no quality lost
    ]  # fmt: skip
    if first.audio_codec == "aac":
        args += ["-bsf:a", "aac_adtstoasc"]  # ADTS (MPEG-TS) AAC → MP4's AudioSpecificConfig
    args += vod_args(tools.ffmpeg, Path(work.name) / PLAYLIST, ORIGINAL)
    rc, tail = await background_run(args, directory, tools, "finalize", label)
    if rc != 0:
        raise MediaError(f"remux failed rc={rc}: {tail}")
    listing.unlink()
    durations = [first.duration_s]
    for part in found[1:]:  # the concat demuxer put each part right after the one before
        durations.append((await probe_media(tools.ffprobe, part)).duration_s)
    write_clock(work, clock_map([read_part_clock(p) for p in found], durations))
    kept = [ORIGINAL, CLOCK] if (work / CLOCK).exists() else [ORIGINAL]
    await asyncio.to_thread(replace_into, work, directory, kept)
    await asyncio.to_thread(_remove_parts, directory)
    return await probe_media(tools.ffprobe, directory / ORIGINAL)


async def decodes(directory: Path, path: Path, tools: Tools, label: str) -> str | None:
    """None when every frame of path (relative to directory) decodes, else the error."""
    args = [
        *base_args(tools.ffmpeg),
        "-xerror",  # stop at the first decoding error
        *local_input(path, RECORDING_FORMATS), "-map", "0:v:0", "-f", "null", "-",
    ]  # fmt: skip
    rc, tail = await background_run(args, directory, tools, "verify", label)
    return None if rc == 0 else f"decode failed rc={rc}: {tail}"


async def ssim(reference: Path, distorted: Path, ffmpeg: str = "ffmpeg") -> float:
    """Mean SSIM (All) of distorted against reference, for tests and the benchmark."""
    args = [
        ffmpeg, "-hide_banner", "-nostdin", "-i", str(distorted), "-i", str(reference),
        "-lavfi", "[0:v][1:v]ssim", "-f", "null", "-",
    ]  # fmt: skip
    rc, _, err = await run_captured(args, timeout=3600)
    match = re.search(r"SSIM .* All:([0-9.]+)", err.decode(errors="replace"))
    if rc != 0 or match is None:
        raise MediaError("ssim failed")
    return float(match.group(1))
