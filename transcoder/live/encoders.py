"""Each video encoder's flags and presets: x264 for the H.264 rung, the HEVC encoders, SVT-AV1.

Rate control and the GOP are the same for every encoder (keyframes on segment edges on
every rung); what differs is how each is asked for them, its presets, and the filters its
input needs (VAAPI encodes GPU surfaces, QSV takes NV12).
"""

from __future__ import annotations

from collections.abc import Sequence

from transcoder.live.ladder import (
    AV1_PRESETS,
    LadderConfig,
    Rendition,
    avc_level,
    hevc_level,
)

# Each encoder's presets, slowest first; stepping right trades compression for speed.
PRESETS: dict[str, tuple[str, ...]] = {
    "libx265": (
        "placebo", "veryslow", "slower", "slow", "medium",
        "fast", "faster", "veryfast", "superfast", "ultrafast",
    ),
    "hevc_qsv": ("veryslow", "slower", "slow", "medium", "fast", "faster", "veryfast"),
    "hevc_nvenc": ("p7", "p6", "p5", "p4", "p3", "p2", "p1"),
    "hevc_vaapi": (),  # no presets: a VAAPI encoder can only shed
}  # fmt: skip


# SVT-AV1 for a live edge. libsvtav1 (FFmpeg 5.1, SVT-AV1 1.4) ignores forced keyframes, so
# the fixed GOP (-g: intra period = GOP - 1) alone puts keyframes on segment edges.
SVT_AV1_LIVE_PARAMS = (
    "irefresh-type=2",  # closed GOPs (key frames, not forward keyframes): segments stand alone
    "scd=0",  # no scene-change keyframes between segment edges
)
# Not set: lookahead. With temporal filtering on (its default, worth its bits) SVT-AV1 1.4
# forces at least 20 frames of lookahead whatever is asked, plus a 16-frame mini-GOP:
# ~1.2 s of encoder delay at 30 fps, within one 2 s segment (bench/latency.py measures it).


def effective_preset(encoder: str, preset: str) -> str:
    """The preset ffmpeg gets: nvenc runs p4 for a non-pN name, QSV veryfast for x265's faster."""
    if encoder == "hevc_nvenc" and not preset.startswith("p"):
        return "p4"
    if encoder == "hevc_qsv" and preset in ("superfast", "ultrafast"):
        return "veryfast"  # QSV's fastest; it has no superfast or ultrafast
    return preset


def preset_index(encoder: str, preset: str) -> int:
    """Steps between the preset and the encoder's fastest (0 = fastest); -1 when unknown."""
    names = PRESETS.get(encoder, ())
    preset = effective_preset(encoder, preset)
    return len(names) - 1 - names.index(preset) if preset in names else -1


def faster_preset(encoder: str, preset: str) -> str | None:
    """The next faster preset of the encoder; None at the fastest or for an unknown name."""
    index = preset_index(encoder, preset)
    return PRESETS[encoder][-index] if index > 0 else None


def presets_label(config: LadderConfig, renditions: Sequence[Rendition]) -> str:
    """The presets a ladder runs with, for logs: "superfast", "av1:12" or "superfast/av1:12"."""
    codecs = {r.codec for r in renditions if not r.copy}
    parts = []
    if "hevc" in codecs:
        parts.append(effective_preset(config.hevc_encoder, config.preset))
    if "av1" in codecs:
        parts.append(f"av1:{config.av1_preset}")
    return "/".join(parts) or "copy"


def ladder_preset_index(config: LadderConfig, renditions: Sequence[Rendition]) -> int:
    """Preset steps left before the ladder can only shed: the HEVC steps plus the AV1 ones
    (0 = every family at its fastest, or pinned). Steps of a pinned family do not count."""
    codecs = {r.codec for r in renditions if not r.copy}
    steps = 0
    if "hevc" in codecs and config.hevc_preset_adapts:
        steps += max(0, preset_index(config.hevc_encoder, config.preset))
    if "av1" in codecs and config.av1_preset_adapts:
        steps += max(AV1_PRESETS) - config.av1_preset
    return steps


def encoder_of(c: LadderConfig, r: Rendition) -> str:
    """The FFmpeg encoder an encoded rung runs."""
    return {"av1": "libsvtav1", "h264": "libx264"}.get(r.codec, c.hevc_encoder)


def hw_filter(config: LadderConfig, rendition: Rendition) -> str:
    """Per-rung filters after scaling: upload for VAAPI, NV12 for QSV, 8-bit 4:2:0 otherwise."""
    encoder = encoder_of(config, rendition)
    if encoder == "hevc_vaapi":
        return "format=nv12,hwupload"  # VAAPI encodes from GPU surfaces only
    if encoder == "hevc_qsv":
        return "format=nv12"  # QSV's native input; it uploads system frames itself
    return "format=yuv420p"  # Main / High profile: 8-bit 4:2:0 whatever the source is


def keyframes_by_time(segment_seconds: int) -> str:
    """A keyframe at the first frame, then at the first frame past each multiple of the segment
    length on the source's clock: live rungs run in separate processes on the source's
    timestamps (-copyts), so they cut their segments at the same instants whenever each started.
    (n_forced * S would force every frame until it caught up with a clock that starts late.)"""
    s = segment_seconds
    return f"expr:if(isnan(prev_forced_t),1,gte(floor(t/{s}),floor(prev_forced_t/{s})+1))"


# Capped quality: each software encoder's CRF whose SSIM matches average bitrate at the
# rung's rate on the hard clip (Big Buck Bunny 720p at 2500 kbit/s; bench/rate_control.py,
# 2026-12-04), so hard content averages about the rung's rate, easier content spends less,
# and the VBV cap bounds every peak (BANDWIDTH holds; SVT-AV1 overshoots it in average mode).
CAPPED_CRF = {"libx264": 20, "libx265": 21, "libsvtav1": 23}


def rate_args(c: LadderConfig, s: str, r: Rendition) -> list[str]:
    """Rate control of one output stream: capped CRF or average bitrate, under the VBV cap."""
    encoder = encoder_of(c, r)
    if c.rate_control == "capped" and encoder in CAPPED_CRF:
        target = [f"-crf{s}", str(CAPPED_CRF[encoder])]
    else:
        target = [f"-b{s}", f"{r.video_kbps}k"]  # hardware encoders: their average mode
    return [
        *target,
        f"-maxrate{s}", f"{r.maxrate_kbps}k",  # VBV cap so BANDWIDTH in the master holds
        f"-bufsize{s}", f"{r.bufsize_kbps}k",
    ]  # fmt: skip


def video_args(c: LadderConfig, k: int, r: Rendition, fps: float, gop: int) -> list[str]:
    """Encoder flags for output video stream k: rate control, GOP, profile and level."""
    s = f":v:{k}"
    if r.copy:
        return [f"-c{s}", "copy"]  # the H.264 source as is: no decode cost, best quality
    rate = [
        *rate_args(c, s, r),
        f"-g{s}", str(gop),  # fixed GOP: one keyframe per segment on every rung
        f"-keyint_min{s}", str(gop),
        f"-force_key_frames{s}", keyframes_by_time(c.segment_seconds),
    ]  # fmt: skip
    if r.codec == "av1":
        return [
            f"-c{s}", "libsvtav1",
            f"-preset{s}", str(c.av1_preset),
            f"-svtav1-params{s}", ":".join(SVT_AV1_LIVE_PARAMS),
            *rate,
        ]  # fmt: skip
    if r.codec == "h264":
        level = avc_level(r.width, r.height, fps, r.maxrate_kbps)
        return [
            f"-c{s}", "libx264",
            f"-preset{s}", c.h264_preset,
            f"-profile{s}", "main",  # every browser decodes Main
            f"-level{s}", f"{level / 10:.1f}",  # matches the avc1 CODECS we declare
            f"-sc_threshold{s}", "0",  # no scene-cut keyframes between segment edges
            f"-forced-idr{s}", "1",  # a segment must start with an IDR to stand alone
            *rate,
        ]  # fmt: skip
    level = hevc_level(r.width, r.height, fps, r.maxrate_kbps)
    tag = [f"-tag{s}", "hvc1"]  # hvc1, not hev1: Apple players refuse hev1 in fMP4
    if c.hevc_encoder == "hevc_nvenc":
        return [
            f"-c{s}", "hevc_nvenc",
            f"-preset{s}", effective_preset(c.hevc_encoder, c.preset),  # p4 for an x265 name
            f"-rc{s}", "vbr",
            f"-level{s}", f"{level / 30:.1f}".removesuffix(".0"),  # matches declared CODECS
            f"-no-scenecut{s}", "1",  # keyframes only where we force them
            f"-forced-idr{s}", "1",  # forced keyframes as IDR so segments stand alone
            *tag, *rate,
        ]  # fmt: skip
    if c.hevc_encoder == "hevc_vaapi":
        return [
            f"-c{s}", "hevc_vaapi",
            f"-rc_mode{s}", "VBR",
            f"-level{s}", str(level),  # general_level_idc, matches declared CODECS
            f"-bf{s}", "0",  # B-frames are unsupported or buggy on many VAAPI drivers
            *tag, *rate,
        ]  # fmt: skip
    if c.hevc_encoder == "hevc_qsv":
        return [
            f"-c{s}", "hevc_qsv",
            f"-preset{s}", effective_preset(c.hevc_encoder, c.preset),  # veryfast for superfast
            f"-level{s}", str(level),  # general_level_idc, matches declared CODECS
            f"-forced_idr{s}", "1",  # forced keyframes as IDR so segments stand alone
            *tag, *rate,
        ]  # fmt: skip
    x265 = [
        f"keyint={gop}",
        f"min-keyint={gop}",
        "scenecut=0",  # no extra keyframes: they would break cross-rung alignment
        "open-gop=0",  # closed GOPs: a segment decodes without its predecessor
        f"level-idc={level / 30:.1f}",  # signal the level we declare in CODECS (x265 wants 3.1)
        "log-level=error",  # x265 prints a banner per rung at info
        # superfast/ultrafast turn AQ off (aq-strength=0): restoring it bought ~2-3 % fewer bits
        # at equal SSIM on real content; slower presets already run exactly this.
        "aq-mode=2",
        "aq-strength=1.0",
        # superfast looks 10 frames ahead, ultrafast 5: 20 (medium's) lets cu-tree and rate
        # control see a segment's worth of motion, ~2 % fewer bits for ~0.7 s of encoder delay.
        "rc-lookahead=20",
    ]
    if c.x265_params:
        x265.append(c.x265_params)
    return [
        f"-c{s}", "libx265",
        f"-preset{s}", c.preset,
        f"-x265-params{s}", ":".join(x265),
        f"-forced-idr{s}", "1",  # forced keyframes as IDR, not CRA
        *tag, *rate,
    ]  # fmt: skip
