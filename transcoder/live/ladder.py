"""The rendition ladder: which rungs to encode for a probed source, and their HLS codecs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from transcoder.ffmpeg.probe import SourceInfo

HevcEncoder = Literal["libx265", "hevc_nvenc", "hevc_vaapi", "hevc_qsv"]
HEVC_ENCODERS: tuple[str, ...] = ("libx265", "hevc_nvenc", "hevc_vaapi", "hevc_qsv")

# H.264 profiles every browser's MSE decodes; anything else (High 10, 4:2:2) is re-encoded.
_AVC_PROFILES: dict[str, str] = {
    "Constrained Baseline": "42E0",
    "Baseline": "4200",
    "Main": "4D40",
    "High": "6400",
}

# HEVC Main tier limits: (general_level_idc, max luma picture size, max luma samples/s, kbit/s)
_HEVC_LEVELS: tuple[tuple[int, int, int, int], ...] = (
    (60, 122_880, 3_686_400, 1_500),
    (63, 245_760, 7_372_800, 3_000),
    (90, 552_960, 16_588_800, 6_000),
    (93, 983_040, 33_177_600, 10_000),
    (120, 2_228_224, 66_846_720, 12_000),
    (123, 2_228_224, 133_693_440, 20_000),
    (150, 8_912_896, 267_386_880, 25_000),
    (153, 8_912_896, 534_773_760, 40_000),
    (156, 8_912_896, 1_069_547_520, 60_000),
)

# H.264 limits: (level_idc, max frame size in macroblocks, max macroblocks/s, kbit/s Main)
_AVC_LEVELS: tuple[tuple[int, int, int, int], ...] = (
    (21, 792, 19_800, 4_000),
    (22, 1_620, 20_250, 4_000),
    (30, 1_620, 40_500, 10_000),
    (31, 3_600, 108_000, 14_000),
    (32, 5_120, 216_000, 20_000),
    (40, 8_192, 245_760, 20_000),
    (41, 8_192, 245_760, 50_000),
    (42, 8_704, 522_240, 50_000),
    (50, 22_080, 589_824, 135_000),
    (51, 36_864, 983_040, 240_000),
)


@dataclass(frozen=True)
class Rung:
    """One configured HEVC rung: a target height and its average video bitrate."""

    height: int
    video_kbps: int


@dataclass(frozen=True)
class LadderConfig:
    """Ladder, encoder and HLS settings; the server builds this from its settings."""

    rungs: tuple[Rung, ...] = field(
        default_factory=lambda: (Rung(720, 2500), Rung(480, 1200), Rung(360, 700))
    )
    hevc_encoder: HevcEncoder = "libx265"
    # x265/qsv preset name; nvenc p1..p7; ignored by vaapi. superfast plus command.py's AQ and
    # lookahead: ~28 % fewer bits than x264 veryfast at equal SSIM (docs/PERFORMANCE.md); a box
    # that cannot keep up steps to ultrafast, then sheds rungs (shedding.catch_up).
    preset: str = "superfast"
    x265_params: str = ""  # extra ":"-separated x265 params appended to ours
    segment_seconds: int = 2
    list_size: int = 6  # segments in the live window
    h264_height: int = 360  # the x264 fallback rung when the source is not H.264
    h264_kbps: int = 800
    h264_preset: str = "veryfast"
    audio_kbps: int = 128
    maxrate_factor: float = 1.5
    bufsize_factor: float = 2.0
    copy_assumed_kbps: int = 6000  # BANDWIDTH of a copied rung whose bitrate probe cannot see
    vaapi_device: str = "/dev/dri/renderD128"

    def __post_init__(self) -> None:
        """Reject settings that would make ffmpeg fail later, naming every bad field."""
        bad: list[str] = []
        if not self.rungs or any(r.height < 2 or r.video_kbps < 1 for r in self.rungs):
            bad.append(f"rungs={self.rungs!r} (need heights >= 2 and kbps >= 1)")
        if self.hevc_encoder not in HEVC_ENCODERS:
            bad.append(f"hevc_encoder={self.hevc_encoder!r} (one of {', '.join(HEVC_ENCODERS)})")
        if not 1 <= self.segment_seconds <= 10:
            bad.append(f"segment_seconds={self.segment_seconds} (1..10)")
        if self.list_size < 3:
            bad.append(f"list_size={self.list_size} (>= 3)")
        if self.h264_height < 2 or self.h264_kbps < 1 or self.audio_kbps < 8:
            bad.append("h264_height/h264_kbps/audio_kbps too small")
        if bad:
            raise ValueError("bad LadderConfig: " + "; ".join(bad))


@dataclass(frozen=True)
class Rendition:
    """One output variant: its folder name, codec, size and rate control."""

    name: str
    codec: Literal["hevc", "h264"]
    width: int
    height: int
    video_kbps: int
    maxrate_kbps: int
    bufsize_kbps: int
    audio_kbps: int
    copy: bool = False  # True: the H.264 source remuxed, not re-encoded

    @property
    def pixels(self) -> int:
        """Luma samples per frame, the encoder's cost measure."""
        return self.width * self.height


def _even(n: float) -> int:
    """Round to the nearest even number >= 2: 4:2:0 chroma needs even dimensions."""
    return max(2, round(n / 2.0) * 2)


def scaled_size(source: SourceInfo, height: int) -> tuple[int, int]:
    """The (width, height) of a rung at height that keeps the source's aspect ratio."""
    h = _even(height)
    return _even(source.width * h / source.height), h


def _encoded(
    name: str,
    codec: Literal["hevc", "h264"],
    size: tuple[int, int],
    kbps: int,
    c: LadderConfig,
    audio_kbps: int,
) -> Rendition:
    return Rendition(
        name=name,
        codec=codec,
        width=size[0],
        height=size[1],
        video_kbps=kbps,
        maxrate_kbps=int(kbps * c.maxrate_factor),
        bufsize_kbps=int(kbps * c.bufsize_factor),
        audio_kbps=audio_kbps,
    )


def choose_ladder(source: SourceInfo, config: LadderConfig) -> list[Rendition]:
    """HEVC rungs at or below the source height (never upscale) plus exactly one H.264 rung."""
    rungs = sorted(
        {r.height: r for r in config.rungs if r.height <= source.height}.values(),
        key=lambda r: r.height,
        reverse=True,
    )
    audio = config.audio_kbps if source.has_audio else 0
    out = [
        _encoded(f"{r.height}p", "hevc", scaled_size(source, r.height), r.video_kbps, config, audio)
        for r in rungs
    ]
    if not out:
        # Source below the lowest rung: one HEVC rung at source height, rate scaled by area.
        lowest = min(config.rungs, key=lambda r: r.height)
        size = scaled_size(source, source.height)
        ratio = (size[0] * size[1]) / (scaled_size(source, lowest.height)[0] * _even(lowest.height))
        kbps = max(100, int(lowest.video_kbps * ratio))
        out.append(_encoded(f"{size[1]}p", "hevc", size, kbps, config, audio))
    if source.video_codec == "h264" and source.video_profile in _AVC_PROFILES:
        kbps = source.video_bitrate_kbps or config.copy_assumed_kbps
        out.append(
            Rendition(
                name="h264",
                codec="h264",
                width=source.width,
                height=source.height,
                video_kbps=kbps,
                maxrate_kbps=int(kbps * config.maxrate_factor),
                bufsize_kbps=int(kbps * config.bufsize_factor),
                audio_kbps=audio,
                copy=True,
            )
        )
    else:
        size = scaled_size(source, min(config.h264_height, source.height))
        out.append(_encoded("h264", "h264", size, config.h264_kbps, config, audio))
    return out


def shed_rung(renditions: list[Rendition]) -> list[Rendition] | None:
    """Drop the costliest HEVC rung; None when only one HEVC rung is left to keep."""
    hevc = [r for r in renditions if r.codec == "hevc"]
    if len(hevc) <= 1:
        return None
    costliest = max(hevc, key=lambda r: (r.pixels, r.video_kbps))
    return [r for r in renditions if r is not costliest]


def hevc_level(width: int, height: int, fps: float, maxrate_kbps: int) -> int:
    """The lowest HEVC Main-tier general_level_idc (30 x level) that fits the rung."""
    luma, rate = width * height, width * height * fps
    for idc, max_ps, max_sr, max_kbps in _HEVC_LEVELS:
        if luma <= max_ps and rate <= max_sr and maxrate_kbps <= max_kbps:
            return idc
    return _HEVC_LEVELS[-1][0]


def avc_level(width: int, height: int, fps: float, maxrate_kbps: int) -> int:
    """The lowest H.264 level_idc (10 x level) that fits the rung."""
    mbs = ((width + 15) // 16) * ((height + 15) // 16)
    for idc, max_fs, max_mbps, max_kbps in _AVC_LEVELS:
        if mbs <= max_fs and mbs * fps <= max_mbps and maxrate_kbps <= max_kbps:
            return idc
    return _AVC_LEVELS[-1][0]


def codecs_string(rendition: Rendition, source: SourceInfo) -> str:
    """The RFC 6381 CODECS value for the master playlist, e.g. "hvc1.1.6.L93.B0,mp4a.40.2"."""
    w, h, fps = rendition.width, rendition.height, source.fps
    if rendition.codec == "hevc":
        # Main profile (1), compatibility flags 0x6 (Main + Main10), Main tier, no constraints
        video = f"hvc1.1.6.L{hevc_level(w, h, fps, rendition.maxrate_kbps)}.B0"
    elif rendition.copy:
        level = source.video_level or avc_level(w, h, fps, rendition.maxrate_kbps)
        video = f"avc1.{_AVC_PROFILES.get(source.video_profile, '6400')}{level:02X}"
    else:
        video = f"avc1.4D40{avc_level(w, h, fps, rendition.maxrate_kbps):02X}"
    return f"{video},mp4a.40.2" if source.has_audio else video


def bandwidth(rendition: Rendition) -> int:
    """Peak bits/s for BANDWIDTH: the VBV max rate plus audio (fMP4 overhead is ~2 %)."""
    return int((rendition.maxrate_kbps + rendition.audio_kbps) * 1000 * 1.02)


def average_bandwidth(rendition: Rendition) -> int:
    """Mean bits/s for AVERAGE-BANDWIDTH: target video rate plus audio."""
    return int((rendition.video_kbps + rendition.audio_kbps) * 1000 * 1.02)
