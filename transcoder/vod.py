"""Uploaded files into a VOD ladder: which containers and codecs we take, the rungs, the argv."""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transcoder.ffmpeg.probe import ProbeError, SourceInfo, parse_probe
from transcoder.ffmpeg.process import UPLOAD_FORMATS, base_args, local_input, local_input_options
from transcoder.live.command import TranscodeJob, build_args
from transcoder.live.ladder import LadderConfig, Rendition, choose_ladder, scaled_size

MASTER = "master.m3u8"
POSTER = "poster.jpg"
VOD_SEGMENT_SECONDS = 6  # longer than live: fewer files and requests, seeking stays fine
POSTER_HEIGHT = 360

# ffprobe's format_name for what phones, cameras and editors export. ffprobe names a
# demuxer family ("mov,mp4,m4a,3gp,3g2,mj2"), so any one of its names is enough.
ALLOWED_FORMATS = frozenset(
    {"mov", "mp4", "m4a", "3gp", "matroska", "webm", "mpegts", "avi", "flv", "mpeg"}
)
# Video codecs an upload may carry; images, GIFs and raw streams are not videos.
ALLOWED_VIDEO = frozenset(
    {"h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "mpeg2video", "prores", "dnxhd", "mjpeg"}
)
MAX_DIMENSION = 8192  # beyond 8K is not a video anyone uploads here
MIN_DURATION_S = 0.1


class Rejected(Exception):
    """The upload is not a video we accept; the message says why, for the uploader."""


@dataclass(frozen=True)
class Accepted:
    """What we know about an accepted upload."""

    source: SourceInfo
    duration_s: float
    format_name: str


def check_upload(data: dict[str, Any]) -> Accepted:
    """Accept or reject ffprobe's JSON (`-show_format -show_streams`) of an uploaded file."""
    fmt = data.get("format")
    if not isinstance(fmt, dict):
        raise Rejected("not a media file ffprobe can read")
    names = str(fmt.get("format_name") or "")
    if not set(names.split(",")) & ALLOWED_FORMATS:
        raise Rejected(
            f"container {names or 'unknown'} is not accepted "
            f"(accepted: MP4/MOV, Matroska/WebM, MPEG-TS, AVI, FLV, MPEG-PS)"
        )
    streams = data.get("streams") or []
    video = next(
        (
            s
            for s in streams
            if isinstance(s, dict)
            and s.get("codec_type") == "video"
            # cover art is a video stream too: one still picture is not the video
            and not (s.get("disposition") or {}).get("attached_pic")
        ),
        None,
    )
    if video is None:
        raise Rejected("the file has no video stream")
    codec = str(video.get("codec_name") or "unknown")
    if codec not in ALLOWED_VIDEO:
        raise Rejected(
            f"video codec {codec} is not accepted (accepted: {', '.join(sorted(ALLOWED_VIDEO))})"
        )
    try:
        source = parse_probe({**data, "streams": [video, *(s for s in streams if s is not video)]})
    except ProbeError as err:
        raise Rejected(f"unreadable video stream: {err}") from err
    if source.width > MAX_DIMENSION or source.height > MAX_DIMENSION:
        raise Rejected(f"video is {source.width}x{source.height}; at most {MAX_DIMENSION} a side")
    try:
        duration = float(fmt.get("duration") or video.get("duration") or 0.0)
    except (TypeError, ValueError):
        duration = 0.0
    if duration < MIN_DURATION_S:
        raise Rejected("the video has no duration")
    return Accepted(source, duration, names)


def vod_config(config: LadderConfig, preset: str) -> LadderConfig:
    """The live ladder's rungs and encoders with VOD segments and the background x265 preset."""
    return dataclasses.replace(config, segment_seconds=VOD_SEGMENT_SECONDS, preset=preset)


def vod_ladder(source: SourceInfo, config: LadderConfig) -> list[Rendition]:
    """choose_ladder's rungs (never upscaled), with the H.264 rung always encoded.

    Live remuxes an H.264 source; an upload's keyframes fall anywhere and its profile and
    bitrate can be anything (a 4K phone clip at 60 Mbit/s), so the fallback rung is encoded.
    """
    out = []
    for r in choose_ladder(source, config):
        if r.copy:
            w, h = scaled_size(source, min(config.h264_height, source.height))
            kbps = config.h264_kbps
            r = Rendition(
                name=r.name,
                codec="h264",
                width=w,
                height=h,
                video_kbps=kbps,
                maxrate_kbps=int(kbps * config.maxrate_factor),
                bufsize_kbps=int(kbps * config.bufsize_factor),
                audio_kbps=r.audio_kbps,
            )
        out.append(r)
    return out


def ladder_args(
    source_path: Path,
    output_dir: Path,
    renditions: list[Rendition],
    source: SourceInfo,
    config: LadderConfig,
    ffmpeg: str = "ffmpeg",
) -> list[str]:
    """The live path's argv (command.build_args) in VOD mode: the same rungs and flags."""
    job = TranscodeJob(
        input_url=str(source_path),
        input_options=local_input_options(UPLOAD_FORMATS),
        output_dir=output_dir,
        renditions=tuple(renditions),
        config=config,
        fps=source.fps,
        has_audio=source.has_audio,
        segment_prefix="seg",  # a video's folder is never reused: plain names are fine
        ffmpeg=ffmpeg,
        loglevel="error",
        vod=True,
    )
    return build_args(job)


def poster_args(ffmpeg: str, source_path: Path, poster: Path, duration_s: float) -> list[str]:
    """One JPEG frame a little way in (the first frame is often black), 360 px high."""
    at = min(5.0, duration_s * 0.1)
    return [
        *base_args(ffmpeg),
        "-ss", f"{at:.3f}",  # before -i: seek by keyframe index, not by decoding up to it
        *local_input(source_path, UPLOAD_FORMATS),
        "-frames:v", "1",
        "-vf", f"scale=-2:'min({POSTER_HEIGHT},ih)'",  # never upscale; even width for JPEG
        "-q:v", "4",  # mjpeg quality: small and clean enough for a thumbnail
        str(poster),
    ]  # fmt: skip


def progress_fraction(out_time_s: float | None, duration_s: float) -> float:
    """How far the job is, 0..1, from ffmpeg's out_time (clamped; never 1 before it ends)."""
    if out_time_s is None or duration_s <= 0:
        return 0.0
    return max(0.0, min(0.99, out_time_s / duration_s))


def folder_bytes(directory: Path) -> int:
    """Bytes under directory (the finished ladder)."""
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def remove(directory: Path) -> None:
    """Delete a video's folder, and its channel's folder once that is empty."""
    shutil.rmtree(directory, ignore_errors=True)
    with contextlib.suppress(OSError):  # not empty (other videos), or gone already
        directory.parent.rmdir()
