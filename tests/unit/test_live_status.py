"""The live panel's pure parts: nginx-rtmp's stat XML, preset steps, warnings in words."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from server.live.panel import warnings
from server.live.rtmp_stat import Publisher, publishers
from server.live.status import preset_step, rung_preset
from transcoder.live.ladder import LadderConfig, Rendition

# What nginx-rtmp 1.1.4 (Debian 12) answered while FFmpeg published to `panel` and two rungs
# pulled it (trimmed to one puller), plus a stream whose name is not a slug.
STAT = b"""<?xml version="1.0" encoding="utf-8" ?>
<rtmp><nginx_version>1.22.1</nginx_version><bw_in>2189944</bw_in>
<server><application><name>live</name><live>
<stream><name>panel</name><time>11864</time><bw_in>2182608</bw_in><bytes_in>3033595</bytes_in>
<bw_out>4821888</bw_out><bw_audio>69288</bw_audio><bw_video>2113312</bw_video>
<client><id>28</id><address>127.0.0.1</address><active/></client>
<client><id>5</id><address>127.0.0.1</address><flashver>FMLE/3.0 (compatible; Lavf59.27</flashver>
<publishing/><active/></client>
<meta><video><width>640</width><height>360</height><frame_rate>30</frame_rate><codec>H264</codec>
</video></meta><nclients>2</nclients><publishing/><active/></stream>
<stream><name>../etc</name><bw_in>1</bw_in><client><id>7</id><publishing/></client></stream>
</live></application>
<application><name>other</name><live><stream><name>x</name>
<client><id>9</id><publishing/></client></stream></live></application>
</server></rtmp>"""


def test_publishers_and_their_rates_from_rtmp_stat() -> None:
    assert publishers(STAT) == [Publisher("panel", "5", 2183, 2113, 69)]


def test_a_stream_without_rates_reads_as_zero() -> None:
    bare = b"<rtmp><application><name>live</name><stream><name>a</name><bw_in>N/A</bw_in>"
    bare += b"<client><id>1</id><publishing/></client></stream></application></rtmp>"
    assert publishers(bare) == [Publisher("a", "1", 0, 0, 0)]


def rendition(codec: str, copy: bool = False) -> Rendition:
    return Rendition("720p", codec, 1280, 720, 2500, 3750, 5000, 128, copy)  # type: ignore[arg-type]


def test_preset_steps_count_from_the_configured_start() -> None:
    start = LadderConfig(preset="superfast", av1_preset=10)
    now = dataclasses.replace(start, preset="ultrafast", av1_preset=12)
    assert preset_step(rendition("hevc"), now, start) == 1
    assert preset_step(rendition("av1"), now, start) == 2
    assert preset_step(rendition("hevc"), start, start) == 0
    assert preset_step(rendition("h264", copy=True), now, start) == 0
    assert [rung_preset(rendition(c), now) for c in ("hevc", "av1", "h264")] == [
        "ultrafast",
        "12",
        "veryfast",
    ]
    assert rung_preset(rendition("h264", copy=True), now) == "copy"


def rung(name: str, **changes: Any) -> dict[str, Any]:
    return {"name": name, "state": "running", "speed": 1.0, "behind": False, "preset_step": 0,
            **changes}  # fmt: skip


def status(**changes: Any) -> dict[str, Any]:
    ladder = {"rungs": [rung("480p"), rung("360p"), rung("h264")], "shed": []}
    return {"ladder": ladder, "input": {"kbps": 2500, "video_kbps": 2400}, "failed": False,
            **changes}  # fmt: skip


def test_a_healthy_channel_has_no_warnings() -> None:
    assert warnings(status(), live_for_s=600) == []


def test_a_shed_rung_is_said_in_words() -> None:
    shed = status()
    shed["ladder"]["shed"] = ["720p"]
    assert warnings(shed, live_for_s=600) == [
        "The ladder is behind real time: 720p shed (each comes back once the CPU has room for it)."
    ]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"preset_step": 1}, "The box is short of CPU: 480p runs a faster preset than configured"),
        ({"behind": True, "speed": 0.82}, "480p is behind real time (0.82x): its viewers will"),
        ({"state": "backoff"}, "480p is restarting after its FFmpeg ended."),
    ],
)
def test_a_rung_in_trouble_is_named(changes: dict[str, Any], expected: str) -> None:
    troubled = status()
    troubled["ladder"]["rungs"][0] = rung("480p", **changes)
    said = warnings(troubled, live_for_s=600)
    assert len(said) == 1 and said[0].startswith(expected), said


def test_failed_ladders_missing_ladders_and_missing_video() -> None:
    assert warnings(status(failed=True), live_for_s=600)[0].startswith("The ladder gave up")
    assert warnings(status(ladder=None), live_for_s=5) == []  # still probing
    assert warnings(status(ladder=None), live_for_s=60)[0].startswith("No ladder is running")
    quiet = status(input={"kbps": 0, "video_kbps": 0})
    assert warnings(quiet, live_for_s=5) == []  # nginx-rtmp has not averaged yet
    assert warnings(quiet, live_for_s=60) == [
        "No video is arriving from the encoder: check OBS and its network."
    ]
