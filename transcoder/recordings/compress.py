"""The archive copy of a finished recording: the efficient codec at the source's size and a
small H.264 rendition every browser decodes, under one master playlist, verified before the
original goes.

ONAIR_COMPRESS_CODEC picks the efficient codec: HEVC (Safari, hardware decoders) or AV1
(Chromium, Firefox, recent Apple chips); each player takes the best rendition it can (hls.js
filters variants by CODECS), so no browser is left without one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from transcoder.ffmpeg.process import RECORDING_FORMATS, FfmpegProcess, base_args, local_input
from transcoder.ffmpeg.progress import Progress
from transcoder.layout import atomic_write
from transcoder.recordings.media import (
    COMPRESS_CODECS,
    FALLBACK,
    ORIGINAL,
    PLAYLIST,
    VOD_SEGMENT_SECONDS,
    MediaError,
    MediaInfo,
    Tools,
    background_run,
    compressed_name,
    decodes,
    media_playlist,
    probe_media,
    replace_into,
    vod_args,
)

FALLBACK_HEIGHT = 360
FALLBACK_KBPS = 600  # capped, so a phone on a slow link still plays it


@dataclass(frozen=True)
class CompressOptions:
    """The archive copy: which efficient codec and how hard it works; the H.264 rendition."""

    codec: str = "hevc"  # one of COMPRESS_CODECS
    preset: str = "medium"  # x265's; slower presets buy smaller files
    crf: int = 26  # x265 constant quality: the bitrate follows the picture
    av1_preset: int = 8  # SVT-AV1 (bench/recordings.py measures the pair against x265)
    av1_crf: int = 36
    gop_seconds: int = VOD_SEGMENT_SECONDS  # one keyframe per VOD segment for seeking

    def __post_init__(self) -> None:
        """An unknown codec is refused here, before any job runs."""
        if self.codec not in COMPRESS_CODECS:
            raise ValueError(f"compress codec {self.codec!r} (one of {', '.join(COMPRESS_CODECS)})")

    @property
    def name(self) -> str:
        """The compressed copy's file name."""
        return compressed_name(self.codec)


def _keyframes(options: CompressOptions) -> list[str]:
    s = options.gop_seconds  # a seek point per VOD segment (libsvtav1 honours only -g)
    return ["-force_key_frames", f"expr:gte(t,n_forced*{s})"]


def _efficient(options: CompressOptions, fps: float) -> list[str]:
    if options.codec == "av1":
        return [
            "-c:v", "libsvtav1",
            "-preset", str(options.av1_preset),
            "-crf", str(options.av1_crf),
            "-g", str(max(1, round((fps or 30.0) * options.gop_seconds))),
            "-svtav1-params", "scd=0",  # keyframes only at the seek points
            "-pix_fmt", "yuv420p",  # Main profile, 8 bit
        ]  # fmt: skip
    return [
        "-c:v", "libx265",
        "-preset", options.preset,
        "-crf", str(options.crf),
        "-pix_fmt", "yuv420p",  # Main profile, what every HEVC decoder plays
        "-tag:v", "hvc1",  # hvc1, not hev1: Apple players refuse hev1 in MP4
        *_keyframes(options),
        "-x265-params", "log-level=error",  # no per-file banner in our log
    ]  # fmt: skip


def _fallback(options: CompressOptions, height: int) -> list[str]:
    h = max(2, min(FALLBACK_HEIGHT, height) // 2 * 2)
    return [
        "-vf", f"scale=-2:{h}",
        "-c:v", "libx264",
        "-preset", "veryfast",
        "-crf", "26",
        "-maxrate", f"{FALLBACK_KBPS}k", "-bufsize", f"{FALLBACK_KBPS * 2}k",
        "-profile:v", "main",  # every browser's MSE decodes Main
        "-pix_fmt", "yuv420p",
        *_keyframes(options),
    ]  # fmt: skip


def compress_args(
    source: Path, work: Path, tools: Tools, options: CompressOptions, original: MediaInfo
) -> list[str]:
    """One decode, two outputs in the same VOD layout: the efficient copy at the source's
    size and the small H.264 rendition; audio copied into both.

    Paths are relative to the recording's folder, where the job runs.
    """
    streams = ["-map", "0:v:0", "-map", "0:a:0?"]
    audio = ["-c:a", "copy"]  # a few % of the bytes: not worth a generation loss
    return [
        *base_args(tools.ffmpeg),
        *local_input(source, RECORDING_FORMATS),
        *streams, *_efficient(options, original.fps), *audio,
        *vod_args(tools.ffmpeg, work / media_playlist(options.name), options.name),
        *streams, *_fallback(options, original.height), *audio,
        *vod_args(tools.ffmpeg, work / media_playlist(FALLBACK), FALLBACK),
    ]  # fmt: skip


_AVC_PROFILES = {"Constrained Baseline": "42E0", "Baseline": "4200", "Main": "4D40", "High": "6400"}


def codecs_of(info: MediaInfo) -> str:
    """The RFC 6381 CODECS of a compressed rendition, from what ffprobe read in it."""
    level = info.video_level
    if info.video_codec == "hevc":
        video = f"hvc1.1.6.L{level}.B0"  # Main profile, Main tier (what x265 made from yuv420p)
    elif info.video_codec == "av1":
        video = f"av01.0.{max(level, 0):02d}M.08"  # Main profile, Main tier, 8 bit
    else:
        video = f"avc1.{_AVC_PROFILES.get(info.video_profile, '4D40')}{max(level, 0):02X}"
    return f"{video},mp4a.40.2" if info.audio_codec == "aac" else video


def _peak_bits(playlist: Path) -> int:
    """The highest segment bitrate a byte-range playlist lists (for BANDWIDTH)."""
    peak, duration = 0.0, 0.0
    for line in playlist.read_text().splitlines():
        if line.startswith("#EXTINF:"):
            duration = float(line[len("#EXTINF:") :].split(",", 1)[0] or 0)
        elif line.startswith("#EXT-X-BYTERANGE:") and duration > 0:
            length = int(line.split(":", 1)[1].split("@", 1)[0])
            peak = max(peak, length * 8 / duration)
    return int(peak)


def master_text(work: Path, renditions: list[tuple[str, MediaInfo]]) -> str:
    """The compressed recording's master: the efficient rendition first, then H.264."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for name, info in renditions:
        playlist = media_playlist(name)
        average = int(info.bytes * 8 / info.duration_s) if info.duration_s > 0 else 0
        peak = max(_peak_bits(work / playlist), average)
        lines += [
            f"#EXT-X-STREAM-INF:BANDWIDTH={peak},AVERAGE-BANDWIDTH={average},"
            f'RESOLUTION={info.width}x{info.height},CODECS="{codecs_of(info)}"',
            playlist,
        ]
    return "\n".join(lines) + "\n"


async def compress(
    directory: Path,
    tools: Tools,
    options: CompressOptions,
    label: str,
    *,
    on_start: Callable[[FfmpegProcess], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> tuple[MediaInfo, MediaInfo] | None:
    """Compress the original; replace it only once both renditions verify.

    Returns (before, after) -- after counts the bytes of both renditions -- or None when
    they came out no smaller than the original (it stays).
    Raises MediaError when encoding or verification fails (the original stays).
    """
    source = directory / ORIGINAL
    before = await probe_media(tools.ffprobe, source)
    work = directory / ".compress"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        rc, tail = await background_run(
            compress_args(Path(source.name), Path(work.name), tools, options, before),
            directory, tools, "compress", label, on_start=on_start, on_progress=on_progress,
        )  # fmt: skip
        if rc != 0:
            raise MediaError(f"{options.codec} compression failed rc={rc}: {tail}")
        made = [(options.name, options.codec), (FALLBACK, "h264")]
        renditions = [
            (n, await _verified(directory, work, n, c, before, tools, label)) for n, c in made
        ]
        main = renditions[0][1]
        after = dataclasses.replace(main, bytes=sum(info.bytes for _, info in renditions))
        if after.bytes >= before.bytes:
            return None
        await asyncio.to_thread(atomic_write, work / PLAYLIST, master_text(work, renditions))
        names = [n for name, _ in made for n in (name, media_playlist(name))]
        await asyncio.to_thread(replace_into, work, directory, names)
        # Only now, with the verified copy whole under its own name: the download link
        # (recording.mp4) always finds one complete file, whatever the row says yet.
        source.unlink(missing_ok=True)
        return before, after
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def _verified(
    directory: Path, work: Path, name: str, codec: str, before: MediaInfo, tools: Tools, label: str
) -> MediaInfo:
    """One rendition as ffprobe sees it, once its length, codec and every frame check out."""
    info = await probe_media(tools.ffprobe, directory / work.name / name)
    # Cuts can only move by a frame or an audio packet: more means frames went missing.
    if abs(info.duration_s - before.duration_s) > max(0.5, before.duration_s * 0.01):
        raise MediaError(
            f"{name}: duration {info.duration_s:.2f}s, original {before.duration_s:.2f}s"
        )
    if info.video_codec != codec:
        raise MediaError(f"{name}: codec {info.video_codec}, expected {codec}")
    problem = await decodes(directory, Path(work.name) / name, tools, label)
    if problem is not None:
        raise MediaError(f"{name}: {problem}")
    return info
