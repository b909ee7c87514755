"""Ladder choice, never-upscale, codecs strings, bandwidth and the shedding policy."""

from __future__ import annotations

import dataclasses

import pytest

from transcoder.ffmpeg.probe import SourceInfo
from transcoder.live.encoders import (
    PRESETS,
    effective_preset,
    faster_preset,
    ladder_preset_index,
    preset_index,
    presets_label,
)
from transcoder.live.ladder import (
    LadderConfig,
    Rendition,
    Rung,
    av1_level,
    avc_level,
    bandwidth,
    choose_ladder,
    codecs_string,
    hevc_level,
    shed_rung,
)
from transcoder.live.shedding import (
    CpuReading,
    RestoreTimer,
    ShedPolicy,
    catch_up,
    predicted_speed,
)
from transcoder.schedule import CpuSample

H264_1080 = SourceInfo(1920, 1080, 30.0, "h264", "High", 42, 6000, True, "aac")
CONFIG = LadderConfig()


def sizes(ladder: list[Rendition]) -> list[tuple[str, str, int, int, bool]]:
    return [(r.name, r.codec, r.width, r.height, r.copy) for r in ladder]


def test_1080p_h264_source_gets_three_hevc_rungs_and_a_copied_h264_rung() -> None:
    assert sizes(choose_ladder(H264_1080, CONFIG)) == [
        ("720p", "hevc", 1280, 720, False),
        ("480p", "hevc", 854, 480, False),
        ("360p", "hevc", 640, 360, False),
        ("h264", "h264", 1920, 1080, True),
    ]


def test_480p_source_never_upscales_to_720p() -> None:
    src = dataclasses.replace(H264_1080, width=854, height=480, video_bitrate_kbps=None)
    ladder = choose_ladder(src, CONFIG)
    assert [r.name for r in ladder] == ["480p", "360p", "h264"]
    assert all(r.height <= 480 for r in ladder)
    assert ladder[-1].video_kbps == CONFIG.copy_assumed_kbps  # bitrate unknown to probe


def test_source_below_lowest_rung_gets_one_hevc_rung_at_source_height() -> None:
    src = dataclasses.replace(H264_1080, width=426, height=240)
    ladder = choose_ladder(src, CONFIG)
    assert sizes(ladder) == [("240p", "hevc", 426, 240, False), ("h264", "h264", 426, 240, True)]
    assert 100 <= ladder[0].video_kbps < 700


def test_hevc_source_gets_a_low_x264_rung_not_a_copy() -> None:
    src = dataclasses.replace(H264_1080, video_codec="hevc", video_profile="Main", video_level=123)
    ladder = choose_ladder(src, CONFIG)
    assert sizes(ladder)[-1] == ("h264", "h264", 640, 360, False)
    assert ladder[-1].video_kbps == CONFIG.h264_kbps


def test_h264_high10_is_reencoded_because_browsers_cannot_decode_it() -> None:
    src = dataclasses.replace(H264_1080, video_profile="High 10")
    assert choose_ladder(src, CONFIG)[-1].copy is False


def test_odd_and_portrait_sources_give_even_sizes_with_the_aspect_kept() -> None:
    src = dataclasses.replace(H264_1080, width=1080, height=1920)
    ladder = choose_ladder(src, CONFIG)
    assert (ladder[0].width, ladder[0].height) == (404, 720)  # 405 rounded to even
    odd = dataclasses.replace(H264_1080, width=333, height=201)
    assert all(
        r.width % 2 == 0 and r.height % 2 == 0 for r in choose_ladder(odd, CONFIG) if not r.copy
    )


def test_no_audio_means_no_audio_bitrate() -> None:
    src = dataclasses.replace(H264_1080, has_audio=False, audio_codec=None)
    assert {r.audio_kbps for r in choose_ladder(src, CONFIG)} == {0}


def test_codecs_strings_follow_rfc6381_with_levels_per_resolution() -> None:
    ladder = choose_ladder(H264_1080, CONFIG)
    assert [codecs_string(r, H264_1080) for r in ladder] == [
        "hvc1.1.6.L93.B0,mp4a.40.2",  # 720p30 -> level 3.1
        "hvc1.1.6.L90.B0,mp4a.40.2",  # 480p30 -> level 3
        "hvc1.1.6.L63.B0,mp4a.40.2",  # 360p30 -> level 2.1
        "avc1.64002A,mp4a.40.2",  # the source's own High@4.2, copied
    ]
    hevc_src = dataclasses.replace(H264_1080, video_codec="hevc", has_audio=False)
    x264 = choose_ladder(hevc_src, CONFIG)[-1]
    assert codecs_string(x264, hevc_src) == "avc1.4D401E"  # Main@3.0


def test_levels_grow_with_size_and_frame_rate() -> None:
    assert hevc_level(1920, 1080, 30, 4500) == 120
    assert hevc_level(1920, 1080, 60, 6000) == 123
    assert hevc_level(1280, 720, 60, 4000) == 120
    assert avc_level(1280, 720, 30, 3000) == 31
    assert avc_level(1920, 1080, 60, 6000) == 42


def test_bandwidth_is_peak_and_covers_audio() -> None:
    top = choose_ladder(H264_1080, CONFIG)[0]
    assert bandwidth(top) == int((3750 + 128) * 1000 * 1.02)
    # SVT-AV1 overshoots its cap (bench/rate_control.py): the master declares what it sends
    av1_top = choose_ladder(H264_1080, dataclasses.replace(CONFIG, codecs=("av1",)))[0]
    assert av1_top.maxrate_kbps == 3750
    assert bandwidth(av1_top) == int((3750 * 1.3 + 128) * 1000 * 1.02)


def test_bad_config_names_every_bad_field() -> None:
    with pytest.raises(ValueError, match=r"hevc_encoder.*segment_seconds"):
        LadderConfig(hevc_encoder="x265", segment_seconds=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rungs"):
        LadderConfig(rungs=(Rung(0, 100),))


def test_shed_drops_the_costliest_hevc_rung_and_keeps_one_hevc_and_h264() -> None:
    ladder = choose_ladder(H264_1080, CONFIG)
    once = shed_rung(ladder, CONFIG)
    assert once is not None and [r.name for r in once] == ["480p", "360p", "h264"]
    twice = shed_rung(once, CONFIG)
    assert twice is not None and [r.name for r in twice] == ["360p", "h264"]
    assert shed_rung(twice, CONFIG) is None


def test_shed_policy_fires_only_after_a_full_slow_window() -> None:
    policy = ShedPolicy(window_s=20, min_speed=0.95)
    policy.reset(0.0)
    for t in range(0, 40):  # encodes 0.8 s of media per second: falling behind
        policy.observe(float(t), t * 0.8)
        assert policy.should_shed(float(t)) is (t >= 20)
    assert policy.speed() == pytest.approx(0.8)


def test_shed_policy_ignores_a_slow_start_and_keeps_quiet_at_live_speed() -> None:
    policy = ShedPolicy(window_s=20, min_speed=0.95)
    policy.reset(0.0)
    # RTMP connect: nothing for 4 s, then real time -- ffmpeg's lifetime speed reads 0.8
    for t in range(4, 60):
        policy.observe(float(t), float(t - 4))
        assert not policy.should_shed(float(t))
    assert policy.speed() == pytest.approx(1.0)


def test_shed_policy_recovers_when_speed_comes_back() -> None:
    policy = ShedPolicy(window_s=10, min_speed=0.95)
    policy.reset(0.0)
    media = 0.0
    for t in range(0, 30):
        media += 0.5 if t < 8 else 1.0
        policy.observe(float(t), media)
    assert not policy.should_shed(29.0)


def test_x265_presets_step_one_at_a_time_to_ultrafast_and_stop() -> None:
    assert faster_preset("libx265", "veryfast") == "superfast"
    assert faster_preset("libx265", "superfast") == "ultrafast"
    assert faster_preset("libx265", "ultrafast") is None
    assert faster_preset("libx265", "bogus") is None  # unknown: shed rather than guess
    assert [preset_index("libx265", p) for p in ("medium", "superfast", "ultrafast")] == [5, 1, 0]


def test_hardware_presets_step_too_and_vaapi_can_only_shed() -> None:
    assert faster_preset("hevc_nvenc", "p4") == "p3"
    assert faster_preset("hevc_nvenc", "veryfast") == "p3"  # build_args runs p4 for it
    assert effective_preset("hevc_nvenc", "veryfast") == "p4"
    assert faster_preset("hevc_nvenc", "p1") is None
    assert faster_preset("hevc_qsv", "medium") == "fast"
    assert faster_preset("hevc_qsv", "veryfast") is None
    assert effective_preset("hevc_qsv", "superfast") == "veryfast"  # our x265 default
    assert faster_preset("hevc_vaapi", "veryfast") is None and PRESETS["hevc_vaapi"] == ()
    assert preset_index("hevc_vaapi", "veryfast") == -1


def test_catch_up_steps_the_preset_before_shedding_any_rung() -> None:
    ladder = choose_ladder(H264_1080, CONFIG)
    config = dataclasses.replace(CONFIG, preset="superfast")
    step = catch_up(config, ladder)
    assert step is not None and step.action == "preset" and step.config.preset == "ultrafast"
    assert list(step.renditions) == ladder  # every rung kept, nothing else rewritten
    assert step.config == dataclasses.replace(config, preset="ultrafast")
    fastest = step.config
    shed = catch_up(fastest, ladder)
    assert shed is not None and shed.action == "shed" and shed.config.preset == "ultrafast"
    assert [r.name for r in shed.renditions] == ["480p", "360p", "h264"]
    last = catch_up(fastest, [r for r in ladder if r.name in ("360p", "h264")])
    assert last is None  # one HEVC rung at the fastest preset: nothing left to give


def test_catch_up_sheds_at_once_when_the_encoder_has_no_presets() -> None:
    config = dataclasses.replace(CONFIG, hevc_encoder="hevc_vaapi")
    step = catch_up(config, choose_ladder(H264_1080, config))
    assert step is not None and step.action == "shed" and len(step.renditions) == 3


BOTH = LadderConfig(codecs=("av1", "hevc"))


def test_av1_and_hevc_ladder_has_both_families_and_one_h264_rung() -> None:
    assert sizes(choose_ladder(H264_1080, BOTH)) == [
        ("720av1", "av1", 1280, 720, False),
        ("480av1", "av1", 854, 480, False),
        ("360av1", "av1", 640, 360, False),
        ("720p", "hevc", 1280, 720, False),
        ("480p", "hevc", 854, 480, False),
        ("360p", "hevc", 640, 360, False),
        ("h264", "h264", 1920, 1080, True),
    ]
    own_rates = dataclasses.replace(BOTH, av1_rungs=(Rung(540, 1500), Rung(270, 400)))
    av1 = [r for r in choose_ladder(H264_1080, own_rates) if r.codec == "av1"]
    assert [(r.name, r.width, r.video_kbps) for r in av1] == [
        ("540av1", 960, 1500),
        ("270av1", 480, 400),
    ]


def test_av1_codecs_strings_name_the_level_svt_av1_signals() -> None:
    # seq_level_idx as SVT-AV1 1.4 writes it in av1C for these sizes at 30 fps
    assert av1_level(1280, 720, 30, 3750) == 5  # level 3.1
    assert av1_level(854, 480, 30, 1800) == 4  # level 3.0
    assert av1_level(640, 360, 30, 1050) == 1  # level 2.1
    assert av1_level(1920, 1080, 60, 9000) == 9  # level 4.1
    ladder = choose_ladder(H264_1080, BOTH)
    assert codecs_string(ladder[0], H264_1080) == "av01.0.05M.08,mp4a.40.2"
    silent = dataclasses.replace(H264_1080, has_audio=False, audio_codec=None)
    assert codecs_string(ladder[2], silent) == "av01.0.01M.08"


def test_shedding_a_mixed_ladder_keeps_h264_and_one_hevc_rung() -> None:
    ladder = choose_ladder(H264_1080, BOTH)
    names = [r.name for r in ladder]
    shed: list[str] = []
    while (smaller := shed_rung(ladder, BOTH)) is not None:
        shed += [r.name for r in ladder if r not in smaller]
        ladder = smaller
    # x265 costs ~2.4x SVT-AV1 per pixel: HEVC 720p goes before AV1 720p
    assert shed == ["720p", "480p", "720av1", "480av1", "360av1"]
    assert [r.name for r in ladder] == ["360p", "h264"] and names[-1] == "h264"
    av1_only = LadderConfig(codecs=("av1",))
    last = [r for r in choose_ladder(H264_1080, av1_only) if r.name in ("360av1", "h264")]
    assert shed_rung(last, av1_only) is None  # the last AV1 rung of an AV1 ladder stays


def test_catch_up_steps_hevc_then_av1_presets_and_pinned_presets_never_step() -> None:
    ladder = choose_ladder(H264_1080, BOTH)
    assert presets_label(BOTH, ladder) == "superfast/av1:12"
    assert ladder_preset_index(BOTH, ladder) == 1 + 1
    step = catch_up(BOTH, ladder)
    assert step is not None and step.config.preset == "ultrafast"
    step = catch_up(step.config, ladder)
    assert step is not None and step.action == "preset" and step.config.av1_preset == 13
    assert ladder_preset_index(step.config, ladder) == 0
    step = catch_up(step.config, ladder)
    assert step is not None and step.action == "shed"
    pinned = dataclasses.replace(BOTH, hevc_preset_adapts=False, av1_preset_adapts=False)
    step = catch_up(pinned, ladder)
    assert step is not None and step.action == "shed" and step.config == pinned
    assert ladder_preset_index(pinned, ladder) == 0


def test_bad_codecs_and_av1_presets_are_named() -> None:
    with pytest.raises(ValueError, match=r"codecs.*av1_preset"):
        LadderConfig(codecs=("vp9",), av1_preset=14)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="codecs"):
        LadderConfig(codecs=("hevc", "hevc"))


def cpu(box_busy: int, box_total: int, rungs: dict[int, int]) -> CpuReading:
    return CpuReading(CpuSample(box_busy, box_total), rungs)


def test_restoring_a_rung_is_predicted_from_what_the_box_and_the_ladder_used() -> None:
    # 2 CPUs for 10 s (2000 jiffies): the ladder used 600, the rest of the box 200.
    before = cpu(0, 0, {11: 0, 12: 0})
    after = cpu(800, 2000, {11: 500, 12: 100})
    # Room: 2000 - 200 = 1800; a rung costing half the running ones needs 900 -> 2.0x
    assert predicted_speed(before, after, cost_now=2.0, cost_added=1.0) == pytest.approx(2.0)
    # A busier box (the rest used 1400): 600 of room for 900 needed
    busy = cpu(2000, 2000, {11: 500, 12: 100})
    assert predicted_speed(before, busy, 2.0, 1.0) == pytest.approx(600 / 900)
    # A rung restarted in between (another pid): the interval tells nothing
    assert predicted_speed(before, cpu(800, 2000, {11: 500, 13: 100}), 2.0, 1.0) is None


def test_a_shed_rung_waits_for_room_that_lasts() -> None:
    timer = RestoreTimer(hold_s=120.0, floor=1.2)
    timer.observe(0.0, 1.5)
    timer.observe(60.0, 1.3)
    assert not timer.ready(100.0)
    timer.observe(115.0, 1.1)  # one short interval starts the wait over
    timer.observe(120.0, 1.4)
    assert not timer.ready(200.0) and timer.ready(240.0)
    timer.observe(241.0, None)  # unknown (a restart) counts as no room
    assert not timer.ready(400.0)
