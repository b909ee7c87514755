"""The rendition ladder: which rungs to encode for a probed source, and their HLS codecs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from transcoder.ffmpeg.probe import SourceInfo

HevcEncoder = Literal["libx265", "hevc_nvenc", "hevc_vaapi", "hevc_qsv"]
HEVC_ENCODERS: tuple[str, ...] = ("libx265", "hevc_nvenc", "hevc_vaapi", "hevc_qsv")
# The efficient codec families a ladder may carry beside its one H.264 rung.
Efficient = Literal["hevc", "av1"]
EFFICIENT_CODECS: tuple[str, ...] = ("hevc", "av1")
Codec = Literal["hevc", "av1", "h264"]
# capped: constant quality under the rung's VBV cap (software encoders); average: the rung's
# bitrate as an average under the same cap (every encoder; hardware encoders always).
RateControl = Literal["capped", "average"]
RATE_CONTROLS: tuple[str, ...] = ("capped", "average")
AV1_PRESETS = range(0, 14)  # SVT-AV1 1.4: 0 slowest .. 13 fastest

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

# AV1 levels (Annex A.3): (seq_level_idx, MaxPicSize, MaxDisplayRate, Main tier kbit/s)
_AV1_LEVELS: tuple[tuple[int, int, int, int], ...] = (
    (0, 147_456, 4_423_680, 1_500),
    (1, 278_784, 8_363_520, 3_000),
    (4, 665_856, 19_975_680, 6_000),
    (5, 1_065_024, 31_950_720, 10_000),
    (8, 2_359_296, 70_778_880, 12_000),
    (9, 2_359_296, 141_557_760, 20_000),
    (12, 8_912_896, 267_386_880, 30_000),
    (13, 8_912_896, 534_773_760, 40_000),
    (14, 8_912_896, 1_069_547_520, 60_000),
    (15, 8_912_896, 1_069_547_520, 60_000),
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
    """One configured efficient rung: a target height and its average video bitrate."""

    height: int
    video_kbps: int

    def __str__(self) -> str:
        """HEIGHT:KBPS, as ONAIR_LADDER_RUNGS spells a rung."""
        return f"{self.height}:{self.video_kbps}"


def _default_rungs() -> tuple[Rung, ...]:
    return (Rung(720, 2500), Rung(480, 1200), Rung(360, 700))


@dataclass(frozen=True)
class LadderConfig:
    """Ladder, encoder and HLS settings; the server builds this from its settings."""

    codecs: tuple[Efficient, ...] = ("hevc",)  # efficient families; the H.264 rung is added
    rungs: tuple[Rung, ...] = field(default_factory=_default_rungs)  # HEVC rungs
    av1_rungs: tuple[Rung, ...] = field(default_factory=_default_rungs)
    hevc_encoder: HevcEncoder = "libx265"
    # x265/qsv preset name; nvenc p1..p7; ignored by vaapi. superfast plus command.py's AQ and
    # lookahead: ~28 % fewer bits than x264 veryfast at equal SSIM (docs/PERFORMANCE.md); a box
    # that cannot keep up steps to ultrafast, then sheds rungs (shedding.catch_up).
    preset: str = "superfast"
    av1_preset: int = 12  # SVT-AV1: 0.88 core-s per media s for a 720/480/360 ladder here
    # False: the preset was pinned by the operator; falling behind sheds rungs without first
    # stepping to a faster preset. True ("auto"): the speed feedback may step it.
    hevc_preset_adapts: bool = True
    av1_preset_adapts: bool = True
    x265_params: str = ""  # extra ":"-separated x265 params appended to ours
    # capped: -crf under the VBV cap, ~6-7 % fewer bits than average bitrate at equal SSIM on
    # hard content and a third fewer on talk and slides (bench/rate_control.py); hardware
    # encoders keep their average-bitrate mode either way (not checkable without the GPU).
    rate_control: RateControl = "capped"
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
        known = all(c in EFFICIENT_CODECS for c in self.codecs)
        if not self.codecs or len(set(self.codecs)) != len(self.codecs) or not known:
            bad.append(f"codecs={self.codecs!r} (one or more of {', '.join(EFFICIENT_CODECS)})")
        for name, rungs in (("rungs", self.rungs), ("av1_rungs", self.av1_rungs)):
            if not rungs or any(r.height < 2 or r.video_kbps < 1 for r in rungs):
                bad.append(f"{name}={rungs!r} (need heights >= 2 and kbps >= 1)")
        if self.hevc_encoder not in HEVC_ENCODERS:
            bad.append(f"hevc_encoder={self.hevc_encoder!r} (one of {', '.join(HEVC_ENCODERS)})")
        if self.av1_preset not in AV1_PRESETS:
            bad.append(f"av1_preset={self.av1_preset!r} (0..13)")
        if self.rate_control not in RATE_CONTROLS:
            bad.append(f"rate_control={self.rate_control!r} (one of {', '.join(RATE_CONTROLS)})")
        if not 1 <= self.segment_seconds <= 10:
            bad.append(f"segment_seconds={self.segment_seconds} (1..10)")
        if self.list_size < 3:
            bad.append(f"list_size={self.list_size} (>= 3)")
        if self.h264_height < 2 or self.h264_kbps < 1 or self.audio_kbps < 8:
            bad.append("h264_height/h264_kbps/audio_kbps too small")
        if bad:
            raise ValueError("bad LadderConfig: " + "; ".join(bad))

    def rungs_of(self, codec: Efficient) -> tuple[Rung, ...]:
        """The configured rungs of one efficient codec family."""
        return self.av1_rungs if codec == "av1" else self.rungs


@dataclass(frozen=True)
class Rendition:
    """One output variant: its folder name, codec, size and rate control."""

    name: str
    codec: Codec
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
    codec: Codec,
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


def rendition_name(codec: Efficient, height: int) -> str:
    """A rung's folder name: "720p" for HEVC (as before AV1 existed), "720av1" for AV1."""
    return f"{height}p" if codec == "hevc" else f"{height}av1"


def _efficient_rungs(
    source: SourceInfo, config: LadderConfig, codec: Efficient, audio: int
) -> list[Rendition]:
    """One family's rungs at or below the source height (never upscale), tallest first."""
    configured = config.rungs_of(codec)
    rungs = sorted(
        {r.height: r for r in configured if r.height <= source.height}.values(),
        key=lambda r: r.height,
        reverse=True,
    )
    out = [
        _encoded(
            rendition_name(codec, r.height),
            codec,
            scaled_size(source, r.height),
            r.video_kbps,
            config,
            audio,
        )
        for r in rungs
    ]
    if not out:
        # Source below the lowest rung: one rung at source height, rate scaled by area.
        lowest = min(configured, key=lambda r: r.height)
        size = scaled_size(source, source.height)
        ratio = (size[0] * size[1]) / (scaled_size(source, lowest.height)[0] * _even(lowest.height))
        kbps = max(100, int(lowest.video_kbps * ratio))
        out.append(_encoded(rendition_name(codec, size[1]), codec, size, kbps, config, audio))
    return out


def choose_ladder(source: SourceInfo, config: LadderConfig) -> list[Rendition]:
    """Each efficient family's rungs (never upscaled), in config order, plus one H.264 rung."""
    audio = config.audio_kbps if source.has_audio else 0
    out = [r for codec in config.codecs for r in _efficient_rungs(source, config, codec, audio)]
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


# CPU per luma sample relative to SVT-AV1 at preset 12 (bench/transcode.py, this machine:
# x265 superfast 2.11, SVT-AV1 p12 0.88 core-s per media s for the same 720/480/360 ladder).
# A hardware HEVC encoder costs the CPU only the scaling.
_CPU_WEIGHT = {"libx265": 2.4, "av1": 1.0, "hardware": 0.1}


def cpu_cost(rendition: Rendition, config: LadderConfig) -> float:
    """A rung's relative CPU cost, to shed the costliest first; 0 for the copied H.264 rung."""
    if rendition.copy or rendition.codec == "h264":
        return 0.0
    if rendition.codec == "av1":
        weight = _CPU_WEIGHT["av1"]
    else:
        weight = _CPU_WEIGHT["libx265" if config.hevc_encoder == "libx265" else "hardware"]
    return rendition.pixels * weight


def shed_rung(renditions: list[Rendition], config: LadderConfig) -> list[Rendition] | None:
    """Drop the costliest efficient rung; None when nothing may go.

    The H.264 rung always stays (every player decodes it), and so does the last HEVC rung
    (Safari and iOS need HEVC or H.264, and HEVC is the smaller); in a ladder without HEVC
    the last AV1 rung stays.
    """
    hevc = [r for r in renditions if r.codec == "hevc"]
    av1 = [r for r in renditions if r.codec == "av1"]
    candidates = (hevc if len(hevc) > 1 else []) + (av1 if hevc or len(av1) > 1 else [])
    if not candidates:
        return None
    costliest = max(candidates, key=lambda r: (cpu_cost(r, config), r.video_kbps))
    return [r for r in renditions if r is not costliest]


def hevc_level(width: int, height: int, fps: float, maxrate_kbps: int) -> int:
    """The lowest HEVC Main-tier general_level_idc (30 x level) that fits the rung."""
    luma, rate = width * height, width * height * fps
    for idc, max_ps, max_sr, max_kbps in _HEVC_LEVELS:
        if luma <= max_ps and rate <= max_sr and maxrate_kbps <= max_kbps:
            return idc
    return _HEVC_LEVELS[-1][0]


def av1_level(width: int, height: int, fps: float, maxrate_kbps: int) -> int:
    """The lowest AV1 seq_level_idx (Main tier) that fits the rung, as SVT-AV1 signals it."""
    luma, rate = width * height, width * height * fps
    for idx, max_ps, max_rate, max_kbps in _AV1_LEVELS:
        if luma <= max_ps and rate <= max_rate and maxrate_kbps <= max_kbps:
            return idx
    return _AV1_LEVELS[-1][0]


def avc_level(width: int, height: int, fps: float, maxrate_kbps: int) -> int:
    """The lowest H.264 level_idc (10 x level) that fits the rung."""
    mbs = ((width + 15) // 16) * ((height + 15) // 16)
    for idc, max_fs, max_mbps, max_kbps in _AVC_LEVELS:
        if mbs <= max_fs and mbs * fps <= max_mbps and maxrate_kbps <= max_kbps:
            return idc
    return _AVC_LEVELS[-1][0]


def codecs_string(rendition: Rendition, source: SourceInfo) -> str:
    """The RFC 6381 CODECS value for the master playlist, e.g. "hvc1.1.6.L93.B0,mp4a.40.2".

    For AV1 the value is what SVT-AV1 writes in the init segment's av1C box
    (tests/media/test_av1_ladder.py reads it back).
    """
    w, h, fps = rendition.width, rendition.height, source.fps
    if rendition.codec == "hevc":
        # Main profile (1), compatibility flags 0x6 (Main + Main10), Main tier, no constraints
        video = f"hvc1.1.6.L{hevc_level(w, h, fps, rendition.maxrate_kbps)}.B0"
    elif rendition.codec == "av1":
        # av01.<profile>.<level><tier>.<bit depth>: Main profile (0), Main tier, 8 bit
        video = f"av01.0.{av1_level(w, h, fps, rendition.maxrate_kbps):02d}M.08"
    elif rendition.copy:
        level = source.video_level or avc_level(w, h, fps, rendition.maxrate_kbps)
        video = f"avc1.{_AVC_PROFILES.get(source.video_profile, '6400')}{level:02X}"
    else:
        video = f"avc1.4D40{avc_level(w, h, fps, rendition.maxrate_kbps):02X}"
    return f"{video},mp4a.40.2" if source.has_audio else video


# SVT-AV1 1.4 does not hold its max rate: one-second peaks 1.27-1.31x the cap in average-bitrate
# mode on the cartoon (bench/rate_control.py), and capped CRF 23 averaged 1.27x the cap on
# testsrc2 at 360p; x264 and x265 hold theirs.
_CAP_OVERSHOOT = {"av1": 1.3}


def bandwidth(rendition: Rendition) -> int:
    """Peak bits/s for BANDWIDTH: the VBV max rate (with the encoder's overshoot) plus audio
    (fMP4 overhead is ~2 %)."""
    video = rendition.maxrate_kbps * _CAP_OVERSHOOT.get(rendition.codec, 1.0)
    return int((video + rendition.audio_kbps) * 1000 * 1.02)


def average_bandwidth(rendition: Rendition) -> int:
    """Mean bits/s for AVERAGE-BANDWIDTH: the rung's rate plus audio. Under capped quality the
    CRF is chosen so hard content averages about that rate (easier content less), so it is
    an upper estimate, known before the first segment as a live master needs."""
    return int((rendition.video_kbps + rendition.audio_kbps) * 1000 * 1.02)
