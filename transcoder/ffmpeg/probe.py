"""ffprobe, run one way: a source's size, frame rate, codecs, profile and level.

probe_json is the one ffprobe call (one error type, ProbeError); parse_probe reads what the
ladder needs out of its JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transcoder.ffmpeg.process import local_input, run_captured


class ProbeError(Exception):
    """ffprobe failed, timed out or described no usable video stream."""


@dataclass(frozen=True)
class SourceInfo:
    """What the ladder and the master playlist need to know about a source."""

    width: int
    height: int
    fps: float
    video_codec: str
    video_profile: str
    video_level: int
    video_bitrate_kbps: int | None
    has_audio: bool
    audio_codec: str | None


def _rate(text: object) -> float:
    """Turn an ffprobe rational like "30000/1001" into a float; 0.0 when unknown."""
    if not isinstance(text, str) or "/" not in text:
        return 0.0
    num, _, den = text.partition("/")
    try:
        n, d = float(num), float(den)
    except ValueError:
        return 0.0
    return n / d if d else 0.0


def _int(value: object) -> int | None:
    """Parse ffprobe's stringly numbers; None when absent or "N/A"."""
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(float(value))
        except ValueError:
            return None
    return None


def parse_probe(data: dict[str, Any]) -> SourceInfo:
    """Build a SourceInfo from ffprobe's JSON (`-show_streams -show_format`)."""
    streams = data.get("streams") or []
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None:
        raise ProbeError("no video stream")
    width, height = _int(video.get("width")) or 0, _int(video.get("height")) or 0
    if width <= 0 or height <= 0:
        raise ProbeError(f"bad video size {width}x{height}")
    # avg_frame_rate is what the encoder sends; r_frame_rate is a guess from timestamps.
    fps = _rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate"))
    if not 1.0 <= fps <= 240.0:
        fps = 30.0  # RTMP often reports 0/0 before the first frames; OBS defaults to 30
    bitrate = _int(video.get("bit_rate"))
    kbps = bitrate // 1000 if bitrate else None
    if kbps is None:
        # OBS puts its configured rate in the FLV onMetaData, already in kbit/s.
        tags = (data.get("format") or {}).get("tags") or {}
        kbps = _int(tags.get("videodatarate")) or None
    return SourceInfo(
        width=width,
        height=height,
        fps=round(fps, 3),
        video_codec=str(video.get("codec_name") or "unknown"),
        video_profile=str(video.get("profile") or ""),
        video_level=_int(video.get("level")) or 0,
        video_bitrate_kbps=kbps,
        has_audio=audio is not None,
        audio_codec=str(audio.get("codec_name")) if audio is not None else None,
    )


async def probe_json(
    ffprobe: str, target: str | Path, *, timeout: float, formats: str | None = None
) -> dict[str, Any]:
    """ffprobe's `-show_streams -show_format` JSON of a URL or a file; ProbeError otherwise.

    formats: the target is a file on our disk (an upload, a recording), to be opened as a
    file only and with these demuxers only (see process.local_input).
    """
    args = [ffprobe, "-v", "error", "-print_format", "json", "-show_streams", "-show_format"]
    args += local_input(target, formats) if formats is not None else ["-i", str(target)]
    try:
        rc, out, err = await run_captured(args, timeout=timeout)
    except OSError as error:
        raise ProbeError(f"cannot run {ffprobe}: {error}") from error
    except TimeoutError as error:
        raise ProbeError(f"ffprobe timed out after {timeout:g}s") from error
    if rc != 0:
        last = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise ProbeError(f"ffprobe exited {rc}: {last[0]}")
    try:
        data = json.loads(out)
    except ValueError as error:
        raise ProbeError("ffprobe printed no JSON") from error
    if not isinstance(data, dict):
        raise ProbeError("ffprobe printed unexpected JSON")
    return data


async def probe_source(url: str, *, timeout: float, ffprobe: str = "ffprobe") -> SourceInfo:
    """The live source's SourceInfo; ProbeError when it cannot be read in time."""
    return parse_probe(await probe_json(ffprobe, url, timeout=timeout))
