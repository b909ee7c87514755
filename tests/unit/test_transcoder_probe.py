"""Parsing ffprobe JSON into SourceInfo (the real output of ffprobe 5.1 on an FLV)."""

from __future__ import annotations

from typing import Any

import pytest

from transcoder.ffmpeg.probe import ProbeError, SourceInfo, parse_probe, probe_source

FLV: dict[str, Any] = {
    "streams": [
        {
            "index": 0,
            "codec_name": "h264",
            "profile": "Constrained Baseline",
            "codec_type": "video",
            "width": 426,
            "height": 240,
            "level": 21,
            "r_frame_rate": "30/1",
            "avg_frame_rate": "30/1",
        },
        {
            "index": 1,
            "codec_name": "aac",
            "profile": "LC",
            "codec_type": "audio",
            "sample_rate": "48000",
            "bit_rate": "96000",
        },
    ],
    "format": {
        "format_name": "flv",
        "tags": {"encoder": "obs-output module", "videodatarate": "2500"},
    },
}


def test_parse_flv_from_obs() -> None:
    assert parse_probe(FLV) == SourceInfo(
        width=426,
        height=240,
        fps=30.0,
        video_codec="h264",
        video_profile="Constrained Baseline",
        video_level=21,
        video_bitrate_kbps=2500,
        has_audio=True,
        audio_codec="aac",
    )


def test_ntsc_rate_and_unknown_rate() -> None:
    video = {**FLV["streams"][0], "avg_frame_rate": "30000/1001"}
    assert parse_probe({"streams": [video]}).fps == pytest.approx(29.97)
    unknown = {**FLV["streams"][0], "avg_frame_rate": "0/0", "r_frame_rate": "0/0"}
    info = parse_probe({"streams": [unknown]})
    assert info.fps == 30.0 and not info.has_audio and info.video_bitrate_kbps is None


def test_no_video_is_an_error() -> None:
    with pytest.raises(ProbeError, match="no video"):
        parse_probe({"streams": [FLV["streams"][1]]})


async def test_missing_ffprobe_is_a_probe_error() -> None:
    with pytest.raises(ProbeError, match="cannot run"):
        await probe_source("x.flv", timeout=1, ffprobe="/nonexistent/ffprobe")
