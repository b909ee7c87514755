"""build_args: the exact ffmpeg argv for a few ladders, so a flag change is a reviewed diff."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from transcoder.ffmpeg.probe import SourceInfo
from transcoder.live.command import TranscodeJob, build_args, filter_graph, working_dir
from transcoder.live.ladder import LadderConfig, choose_ladder

H264_1080 = SourceInfo(1920, 1080, 30.0, "h264", "High", 42, 6000, True, "aac")
HEVC_1080 = dataclasses.replace(H264_1080, video_codec="hevc", video_profile="Main")
OUT = Path("/media/live/demo")
URL = "rtmp://127.0.0.1:1935/live/demo"


def job(source: SourceInfo = H264_1080, config: LadderConfig | None = None) -> TranscodeJob:
    config = config or LadderConfig()
    return TranscodeJob(
        input_url=URL,
        output_dir=OUT,
        renditions=tuple(choose_ladder(source, config)),
        config=config,
        fps=source.fps,
        has_audio=source.has_audio,
        segment_prefix="s1",
    )


# The first frame, then the first past each multiple of the segment length on the source clock
KEYFRAMES = "expr:if(isnan(prev_forced_t),1,gte(floor(t/{s}),floor(prev_forced_t/{s})+1))"


def after(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_1080p_h264_ladder_argv() -> None:
    x265 = (
        "keyint=60:min-keyint=60:scenecut=0:open-gop=0:level-idc={}:log-level=error"
        ":aq-mode=2:aq-strength=1.0:rc-lookahead=20"
    )
    gop = ["-g:v:{k}", "60", "-keyint_min:v:{k}", "60"]
    kf = ["-force_key_frames:v:{k}", KEYFRAMES.format(s=2)]

    def hevc(k: int, level: str, kbps: int) -> list[str]:
        return [
            f"-c:v:{k}", "libx265", f"-preset:v:{k}", "superfast",
            f"-x265-params:v:{k}", x265.format(level), f"-forced-idr:v:{k}", "1",
            f"-tag:v:{k}", "hvc1",
            f"-crf:v:{k}", "21", f"-maxrate:v:{k}", f"{kbps * 3 // 2}k",
            f"-bufsize:v:{k}", f"{kbps * 2}k",
            *(a.format(k=k) for a in gop), *(a.format(k=k) for a in kf),
        ]  # fmt: skip

    assert build_args(job()) == [
        "ffmpeg", "-hide_banner", "-nostdin", "-nostats",
        "-loglevel", "level+warning", "-progress", "pipe:1",
        "-rw_timeout", "10000000", "-copyts", "-i", URL,
        "-filter_complex",
        "[0:v:0]scale=1280:720,split=2[s0_0][c0];[s0_0]format=yuv420p[v0];"
        "[c0]scale=854:480,split=2[s1_0][c1];[s1_0]format=yuv420p[v1];"
        "[c1]scale=640:360[s2_0];[s2_0]format=yuv420p[v2]",
        "-map", "[v0]", "-map", "0:a:0",
        "-map", "[v1]", "-map", "0:a:0",
        "-map", "[v2]", "-map", "0:a:0",
        "-map", "0:v:0", "-map", "0:a:0",
        *hevc(0, "3.1", 2500), *hevc(1, "3.0", 1200), *hevc(2, "2.1", 700),
        "-c:v:3", "copy",
        "-c:a", "aac", "-b:a", "128k", "-ac", "2",
        "-max_muxing_queue_size", "1024",
        "-f", "hls", "-hls_time", "2", "-hls_segment_type", "fmp4",
        "-hls_fmp4_init_filename", "../%v/init-s1.mp4",  # this run's own init
        "-hls_list_size", "6", "-hls_delete_threshold", "3",
        "-hls_flags",
        "independent_segments+program_date_time+temp_file+omit_endlist+delete_segments",
        "-hls_segment_filename", "/media/live/demo/%v/s1-%d.m4s",
        "-var_stream_map",
        "v:0,a:0,name:720p v:1,a:1,name:480p v:2,a:2,name:360p v:3,a:3,name:h264",
        "/media/live/demo/%v/run.m3u8",  # FFmpeg's; window.py writes index.m3u8
    ]  # fmt: skip


def test_a_live_rung_alone_keeps_the_source_clock_and_a_vod_ladder_does_not() -> None:
    """The supervisor runs each rung in its own process: the job of one rendition."""
    full = job()
    rung = dataclasses.replace(full, renditions=full.renditions[1:2])
    args = build_args(rung)
    assert args[args.index("-i") - 1] == "-copyts"  # one timeline across rungs and runs
    assert after(args, "-filter_complex") == "[0:v:0]scale=854:480[s0_0];[s0_0]format=yuv420p[v0]"
    assert "-var_stream_map" not in args  # one variant: plain paths in its own folder
    assert after(args, "-hls_fmp4_init_filename") == "init-s1.mp4"  # beside its playlist
    assert after(args, "-hls_segment_filename") == "/media/live/demo/480p/s1-%d.m4s"
    assert args[-1] == "/media/live/demo/480p/run.m3u8"
    assert working_dir(rung) == OUT / "480p"
    assert "-copyts" not in build_args(dataclasses.replace(full, vod=True))


def test_480p_source_has_no_720p_and_never_writes_a_master() -> None:
    src = dataclasses.replace(H264_1080, width=854, height=480)
    args = build_args(job(src))
    assert after(args, "-var_stream_map") == "v:0,a:0,name:480p v:1,a:1,name:360p v:2,a:2,name:h264"
    assert "scale=1280:720" not in after(args, "-filter_complex")
    assert "-master_pl_name" not in args  # we write master.m3u8 ourselves


def test_hevc_source_gets_x264_rung_sharing_the_360p_scale() -> None:
    args = build_args(job(HEVC_1080))
    graph = after(args, "-filter_complex")
    assert graph.count("scale=640:360") == 1  # scaled once, split for both 360p rungs
    assert "[c1]scale=640:360,split=2[s2_0][s2_1]" in graph
    assert "copy" not in args
    i = args.index("-c:v:3")
    assert args[i : i + 12] == [
        "-c:v:3", "libx264", "-preset:v:3", "veryfast", "-profile:v:3", "main",
        "-level:v:3", "3.0", "-sc_threshold:v:3", "0", "-forced-idr:v:3", "1",
    ]  # fmt: skip
    # capped quality under the rung's own cap
    assert after(args, "-crf:v:3") == "20" and after(args, "-maxrate:v:3") == "1200k"
    assert "-b:v:3" not in args


def test_source_without_audio_maps_no_audio() -> None:
    src = dataclasses.replace(H264_1080, width=640, height=360, has_audio=False, audio_codec=None)
    args = build_args(job(src))
    assert "0:a:0" not in args and "-c:a" not in args
    assert after(args, "-var_stream_map") == "v:0,name:360p v:1,name:h264"


def test_file_input_for_tests_gets_input_options_and_no_rtmp_timeout() -> None:
    j = dataclasses.replace(job(), input_url="/tmp/src.flv", input_options=("-re",))
    args = build_args(j)
    assert "-rw_timeout" not in args
    assert args[args.index("-i") - 1 : args.index("-i") + 2] == ["-re", "-i", "/tmp/src.flv"]


def test_gop_follows_frame_rate_and_segment_length() -> None:
    src = dataclasses.replace(H264_1080, fps=59.94)
    args = build_args(job(src, LadderConfig(segment_seconds=4)))
    assert after(args, "-g:v:0") == "240"
    assert after(args, "-force_key_frames:v:0") == KEYFRAMES.format(s=4)
    assert after(args, "-hls_time") == "4"


@pytest.mark.parametrize(
    ("encoder", "expected"),
    [
        (
            "hevc_nvenc",
            ["-c:v:0", "hevc_nvenc", "-preset:v:0", "p4", "-rc:v:0", "vbr", "-level:v:0", "3.1",
             "-no-scenecut:v:0", "1", "-forced-idr:v:0", "1", "-tag:v:0", "hvc1"],
        ),
        (
            "hevc_vaapi",
            ["-c:v:0", "hevc_vaapi", "-rc_mode:v:0", "VBR", "-level:v:0", "93",
             "-bf:v:0", "0", "-tag:v:0", "hvc1"],
        ),
        (
            "hevc_qsv",
            ["-c:v:0", "hevc_qsv", "-preset:v:0", "veryfast", "-level:v:0", "93",
             "-forced_idr:v:0", "1", "-tag:v:0", "hvc1"],
        ),
    ],
)  # fmt: skip
def test_hardware_encoders(encoder: str, expected: list[str]) -> None:
    config = LadderConfig(hevc_encoder=encoder)  # type: ignore[arg-type]
    args = build_args(job(HEVC_1080, config))
    i = args.index("-c:v:0")
    assert args[i : i + len(expected)] == expected
    # hardware encoders keep their average-bitrate mode; the CPU's x264 rung runs capped CRF
    assert after(args, "-b:v:0") == "2500k" and after(args, "-g:v:0") == "60"
    assert "-crf:v:0" not in args
    assert after(args, "-c:v:3") == "libx264"  # the fallback rung stays on the CPU
    assert after(args, "-crf:v:3") == "20"
    graph = after(args, "-filter_complex")
    if encoder == "hevc_vaapi":
        assert args[args.index("-vaapi_device") + 1] == "/dev/dri/renderD128"
        assert args.index("-vaapi_device") < args.index("-i")
        assert "[s0_0]format=nv12,hwupload[v0]" in graph
        assert "[s2_1]format=yuv420p[v3]" in graph  # x264 gets system memory frames
    else:
        assert "-vaapi_device" not in args
    if encoder == "hevc_qsv":
        assert "[s0_0]format=nv12[v0]" in graph


def test_graph_scales_each_size_once_from_the_next_larger() -> None:
    graph = filter_graph(job())
    assert graph.labels == {"720p": "v0", "480p": "v1", "360p": "v2"}
    assert [c.split("]")[0] for c in graph.chains if "scale=" in c] == ["[0:v:0", "[c0", "[c1"]


def test_build_args_is_pure() -> None:
    j = job()
    assert build_args(j) == build_args(j)


def test_configured_x265_params_come_after_ours_so_they_win() -> None:
    config = LadderConfig(preset="ultrafast", x265_params="rc-lookahead=5:sao=1")
    args = build_args(job(config=config))
    assert after(args, "-preset:v:0") == "ultrafast"
    assert after(args, "-x265-params:v:0").endswith(":rc-lookahead=20:rc-lookahead=5:sao=1")


def test_ffmpeg_starts_in_a_rendition_folder_so_the_init_folder_stays_in_the_tree() -> None:
    j = job()
    init = after(build_args(j), "-hls_fmp4_init_filename")
    assert init == "../%v/init-s1.mp4"
    cwd = working_dir(j)
    # hlsenc makes the init file's folder relative to its working directory.
    made = (cwd / init.replace("%v", j.renditions[-1].name)).parent.resolve()
    assert made == OUT / j.renditions[-1].name


def test_av1_rungs_use_svt_av1_with_the_shared_gop_and_rate_control() -> None:
    config = LadderConfig(codecs=("av1", "hevc"), av1_preset=11)
    args = build_args(job(config=config))
    assert after(args, "-c:v:0") == "libsvtav1" and after(args, "-c:v:3") == "libx265"
    assert args[args.index("-c:v:0") : args.index("-c:v:1")] == [
        "-c:v:0", "libsvtav1", "-preset:v:0", "11",
        "-svtav1-params:v:0", "irefresh-type=2:scd=0",
        "-crf:v:0", "23", "-maxrate:v:0", "3750k", "-bufsize:v:0", "5000k",
        "-g:v:0", "60", "-keyint_min:v:0", "60",
        "-force_key_frames:v:0", KEYFRAMES.format(s=2),
    ]  # fmt: skip
    # AV1 and HEVC rungs of one size share one scaler: the source is decoded and scaled once
    assert after(args, "-filter_complex").count("scale=1280:720") == 1
    assert after(args, "-var_stream_map").split() == [
        "v:0,a:0,name:720av1", "v:1,a:1,name:480av1", "v:2,a:2,name:360av1",
        "v:3,a:3,name:720p", "v:4,a:4,name:480p", "v:5,a:5,name:360p", "v:6,a:6,name:h264",
    ]  # fmt: skip


@pytest.mark.parametrize("source", [H264_1080, HEVC_1080])
def test_average_rate_control_asks_every_encoder_for_the_rungs_rate(source: SourceInfo) -> None:
    config = LadderConfig(codecs=("av1", "hevc"), rate_control="average")
    args = build_args(job(source, config))
    assert not [a for a in args if a.startswith("-crf")]
    rungs = [r for r in choose_ladder(source, config) if not r.copy]
    for k, r in enumerate(rungs):
        assert after(args, f"-b:v:{k}") == f"{r.video_kbps}k"
        assert after(args, f"-maxrate:v:{k}") == f"{r.maxrate_kbps}k"


def test_rate_control_must_be_capped_or_average() -> None:
    with pytest.raises(ValueError, match="rate_control='crf'"):
        LadderConfig(rate_control="crf")  # type: ignore[arg-type]
