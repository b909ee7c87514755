"""transcoder/vod.py: which uploads we take, the VOD ladder, and its exact ffmpeg argv."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from transcoder.ffmpeg.probe import SourceInfo
from transcoder.live.command import build_args
from transcoder.live.ladder import LadderConfig
from transcoder.vod import (
    Rejected,
    check_upload,
    ladder_args,
    poster_args,
    progress_fraction,
    vod_config,
    vod_ladder,
)

PHONE_4K = SourceInfo(3840, 2160, 30.0, "h264", "High", 51, 40000, True, "aac")
SMALL = SourceInfo(854, 480, 30.0, "h264", "High", 30, 1500, True, "aac")
SILENT_HEVC = SourceInfo(1280, 720, 25.0, "hevc", "Main", 93, None, False, None)
CONFIG = vod_config(LadderConfig(), "medium")


MP4 = "mov,mp4,m4a,3gp,3g2,mj2"


def probe(fmt: str = MP4, codec: str = "h264", **video: Any) -> dict[str, Any]:
    return {
        "format": {"format_name": fmt, "duration": "12.5"},
        "streams": [
            {"codec_type": "video", "codec_name": codec, "width": 1920, "height": 1080,
             "avg_frame_rate": "30000/1001", "profile": "High", "level": 40, **video},
            {"codec_type": "audio", "codec_name": "aac"},
        ],
    }  # fmt: skip


def test_accepts_common_containers_and_codecs() -> None:
    for fmt, codec in [("mov,mp4,m4a,3gp,3g2,mj2", "hevc"), ("matroska,webm", "vp9"),
                       ("mpegts", "h264"), ("avi", "mpeg4")]:  # fmt: skip
        accepted = check_upload(probe(fmt, codec))
        assert accepted.duration_s == 12.5
        assert (accepted.source.width, accepted.source.height) == (1920, 1080)
        assert accepted.source.fps == pytest.approx(29.97, abs=0.01)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ({}, "not a media file"),
        (probe("image2"), "container image2 is not accepted"),
        (probe("gif"), "container gif is not accepted"),
        (probe(codec="png"), "video codec png is not accepted"),
        ({"format": {"format_name": "mp3"}, "streams": [{"codec_type": "audio"}]}, "container"),
        (
            {
                "format": {"format_name": "mp4", "duration": "3"},
                "streams": [{"codec_type": "audio", "codec_name": "aac"}],
            },
            "no video stream",
        ),
        (probe(disposition={"attached_pic": 1}), "no video stream"),  # cover art only
        (probe(width=0), "unreadable video stream"),
        (probe(width=10000, height=10000), "at most 8192"),
        ({**probe(), "format": {"format_name": "mp4", "duration": "0"}}, "no duration"),
    ],
)
def test_rejects_what_is_not_a_video(data: dict[str, Any], why: str) -> None:
    with pytest.raises(Rejected, match=why):
        check_upload(data)


def test_ladder_never_upscales_and_always_encodes_h264() -> None:
    names = [(r.name, r.codec, r.width, r.height, r.copy) for r in vod_ladder(PHONE_4K, CONFIG)]
    assert names == [
        ("720p", "hevc", 1280, 720, False),
        ("480p", "hevc", 854, 480, False),
        ("360p", "hevc", 640, 360, False),
        ("h264", "h264", 640, 360, False),  # live would copy a 40 Mbit/s 4K source here
    ]
    assert [r.name for r in vod_ladder(SMALL, CONFIG)] == ["480p", "360p", "h264"]
    silent = vod_ladder(SILENT_HEVC, CONFIG)
    assert [r.name for r in silent] == ["720p", "480p", "360p", "h264"]
    assert {r.audio_kbps for r in silent} == {0}


def test_vod_config_keeps_the_live_rungs() -> None:
    live = LadderConfig(hevc_encoder="hevc_nvenc")
    config = vod_config(live, "slow")
    assert (config.segment_seconds, config.preset) == (6, "slow")
    assert config.rungs == live.rungs and config.hevc_encoder == "hevc_nvenc"


def test_vod_argv_is_the_live_argv_with_a_finished_playlist() -> None:
    out = Path("/media/videos/demo/0190a1b2c3d4e5f6a7b8")
    args = ladder_args(Path("/media/uploads/x/data"), out, vod_ladder(SMALL, CONFIG), SMALL, CONFIG)
    assert args[args.index("-i") + 1] == "/media/uploads/x/data"
    assert "-rw_timeout" not in args  # a file, not RTMP
    assert args[args.index("-hls_list_size") + 1] == "0"
    assert args[args.index("-hls_playlist_type") + 1] == "vod"
    assert args[args.index("-hls_flags") + 1] == "independent_segments+temp_file"
    assert args[args.index("-hls_time") + 1] == "6"
    assert args[args.index("-force_key_frames:v:0") + 1].startswith("expr:if(isnan(prev_forced_t)")
    assert "floor(t/6)" in args[args.index("-force_key_frames:v:0") + 1]
    assert args[args.index("-g:v:0") + 1] == "180"  # 6 s at 30 fps: keyframes on segment edges
    assert args[args.index("-preset:v:0") + 1] == "medium"
    assert args[args.index("-c:v:2") + 1] == "libx264"
    assert args[args.index("-var_stream_map") + 1] == (
        "v:0,a:0,name:480p v:1,a:1,name:360p v:2,a:2,name:h264"
    )
    assert args[-1] == f"{out}/%v/index.m3u8"
    for live_only in ("omit_endlist", "delete_segments", "append_list", "program_date_time"):
        assert live_only not in " ".join(args)


def test_live_argv_is_unchanged_by_the_vod_mode() -> None:
    from tests.unit.test_transcoder_command import job

    live = build_args(job())
    assert "-hls_playlist_type" not in live
    vod = build_args(dataclasses.replace(job(), vod=True))
    assert vod[vod.index("-hls_list_size") + 1] == "0"


def test_poster_argv() -> None:
    assert poster_args("ffmpeg", Path("/u/data"), Path("/v/poster.jpg"), 3.0) == [
        "ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+error",
        "-progress", "pipe:1", "-y",
        "-ss", "0.300",
        "-protocol_whitelist", "file",
        "-format_whitelist", "mov,mp4,matroska,webm,avi,flv,mpegts,mpeg,asf",
        "-i", "/u/data", "-frames:v", "1",
        "-vf", "scale=-2:'min(360,ih)'", "-q:v", "4", "/v/poster.jpg",
    ]  # fmt: skip
    long = poster_args("ffmpeg", Path("a"), Path("b"), 3600.0)
    assert long[long.index("-ss") + 1] == "5.000"


def test_progress_fraction() -> None:
    assert progress_fraction(None, 10) == 0.0
    assert progress_fraction(5.0, 10) == 0.5
    assert progress_fraction(12.0, 10) == 0.99  # only "ready" says 1
    assert progress_fraction(1.0, 0) == 0.0
