"""Turn captured parts into a VOD (one fragmented MP4 + byte-range HLS), compress, verify."""

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

log = logging.getLogger("onair.recordings")

PLAYLIST = "index.m3u8"
ORIGINAL = "video.mp4"  # the stream copy, as the publisher sent it
COMPRESSED = "video-hevc.mp4"  # a new name, so cached byte ranges of the original never mix
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


async def _background_run(
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
    )


def media_name(directory: Path) -> str | None:
    """The MP4 the VOD playlist points at (video.mp4 or video-hevc.mp4), if finalized."""
    try:
        text = (directory / PLAYLIST).read_text()
    except FileNotFoundError:
        return None
    match = re.search(r'#EXT-X-MAP:URI="([a-z0-9_-]+\.mp4)"', text)
    return match.group(1) if match and (directory / match.group(1)).exists() else None


def parts(directory: Path) -> list[Path]:
    """Captured MPEG-TS parts in order, empty ones (a run that got no packet) left out."""
    found = sorted(directory.glob(PART_GLOB))
    return [p for p in found if p.stat().st_size > 0]


def _remove_parts(directory: Path) -> None:
    for part in directory.glob(PART_GLOB):
        part.unlink(missing_ok=True)


def _replace_into(work: Path, directory: Path, names: list[str]) -> None:
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
    rc, tail = await _background_run(args, directory, tools, "finalize", label)
    if rc != 0:
        raise MediaError(f"remux failed rc={rc}: {tail}")
    listing.unlink()
    await asyncio.to_thread(_replace_into, work, directory, [ORIGINAL])
    await asyncio.to_thread(_remove_parts, directory)
    return await probe_media(tools.ffprobe, directory / ORIGINAL)


@dataclass(frozen=True)
class CompressOptions:
    """x265 settings for the archive copy: slower presets buy smaller files."""

    preset: str = "medium"
    crf: int = 26
    gop_seconds: int = VOD_SEGMENT_SECONDS  # one keyframe per VOD segment for seeking


def compress_args(source: Path, work: Path, tools: Tools, options: CompressOptions) -> list[str]:
    """Re-encode the original to H.265 with the audio copied, into the same VOD layout.

    Paths are relative to the recording's folder, where the job runs.
    """
    return [
        *base_args(tools.ffmpeg),
        *local_input(source, RECORDING_FORMATS),
        "-map", "0:v:0", "-map", "0:a:0?",
        "-c:v", "libx265",
        "-preset", options.preset,
        "-crf", str(options.crf),  # constant quality: the bitrate follows the picture
        "-pix_fmt", "yuv420p",  # Main profile, what every HEVC decoder plays
        "-tag:v", "hvc1",  # hvc1, not hev1: Apple players refuse hev1 in MP4
        "-force_key_frames", f"expr:gte(t,n_forced*{options.gop_seconds})",  # seek points
        "-x265-params", "log-level=error",  # no per-file banner in our log
        "-c:a", "copy",  # audio is a few % of the bytes: not worth a generation loss
        *vod_args(tools.ffmpeg, work / PLAYLIST, COMPRESSED),
    ]  # fmt: skip


async def decodes(directory: Path, path: Path, tools: Tools, label: str) -> str | None:
    """None when every frame of path (relative to directory) decodes, else the error."""
    args = [
        *base_args(tools.ffmpeg),
        "-xerror",  # stop at the first decoding error
        *local_input(path, RECORDING_FORMATS), "-map", "0:v:0", "-f", "null", "-",
    ]  # fmt: skip
    rc, tail = await _background_run(args, directory, tools, "verify", label)
    return None if rc == 0 else f"decode failed rc={rc}: {tail}"


async def compress(
    directory: Path,
    tools: Tools,
    options: CompressOptions,
    label: str,
    *,
    on_start: Callable[[FfmpegProcess], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> tuple[MediaInfo, MediaInfo] | None:
    """Compress the original; replace it only once the result verifies.

    Returns (before, after), or None when H.265 came out no smaller (the original stays).
    Raises MediaError when encoding or verification fails (the original stays).
    """
    source = directory / ORIGINAL
    before = await probe_media(tools.ffprobe, source)
    work = directory / ".compress"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        rc, tail = await _background_run(
            compress_args(Path(source.name), Path(work.name), tools, options),
            directory, tools, "compress", label, on_start=on_start, on_progress=on_progress,
        )  # fmt: skip
        if rc != 0:
            raise MediaError(f"x265 failed rc={rc}: {tail}")
        after = await probe_media(tools.ffprobe, work / COMPRESSED)
        # Cuts can only move by a frame or an audio packet: more means frames went missing.
        if abs(after.duration_s - before.duration_s) > max(0.5, before.duration_s * 0.01):
            raise MediaError(f"duration {after.duration_s:.2f}s, original {before.duration_s:.2f}s")
        if after.video_codec != "hevc":
            raise MediaError(f"codec {after.video_codec}, expected hevc")
        problem = await decodes(directory, Path(work.name) / COMPRESSED, tools, label)
        if problem is not None:
            raise MediaError(problem)
        if after.bytes >= before.bytes:
            return None
        await asyncio.to_thread(_replace_into, work, directory, [COMPRESSED])
        # Only now, with the verified copy whole under its own name: the download link
        # (recording.mp4) always finds one complete file, whatever the row says yet.
        source.unlink(missing_ok=True)
        return before, after
    finally:
        shutil.rmtree(work, ignore_errors=True)


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
