"""The master playlist we write ourselves, its variant order, and finishing playlists."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from transcoder.ffmpeg.probe import SourceInfo
from transcoder.live.ladder import LadderConfig, choose_ladder
from transcoder.live.playlist import append_endlist, master_text, order_variants, write_master

H264_1080 = SourceInfo(1920, 1080, 30.0, "h264", "High", 40, 6000, True, "aac")


def test_master_for_a_1080p_h264_source() -> None:
    ladder = choose_ladder(H264_1080, LadderConfig())
    assert master_text(ladder, H264_1080) == (
        "#EXTM3U\n"
        "#EXT-X-VERSION:7\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=1966560,AVERAGE-BANDWIDTH=1354560,"
        'RESOLUTION=854x480,CODECS="hvc1.1.6.L90.B0,mp4a.40.2",FRAME-RATE=30.000\n'
        "480p/index.m3u8\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=3955560,AVERAGE-BANDWIDTH=2680560,"
        'RESOLUTION=1280x720,CODECS="hvc1.1.6.L93.B0,mp4a.40.2",FRAME-RATE=30.000\n'
        "720p/index.m3u8\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=1201560,AVERAGE-BANDWIDTH=844560,"
        'RESOLUTION=640x360,CODECS="hvc1.1.6.L63.B0,mp4a.40.2",FRAME-RATE=30.000\n'
        "360p/index.m3u8\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=9310560,AVERAGE-BANDWIDTH=6250560,"
        'RESOLUTION=1920x1080,CODECS="avc1.640028,mp4a.40.2",FRAME-RATE=30.000\n'
        "h264/index.m3u8\n"
    )


def test_order_starts_mid_ladder_and_puts_h264_last() -> None:
    ladder = choose_ladder(H264_1080, LadderConfig())
    assert [r.name for r in order_variants(ladder)] == ["480p", "720p", "360p", "h264"]
    small = dataclasses.replace(H264_1080, width=426, height=240)
    assert [r.name for r in order_variants(choose_ladder(small, LadderConfig()))] == [
        "240p",
        "h264",
    ]


def test_order_puts_av1_first_then_hevc_then_h264_each_from_a_mid_rung() -> None:
    ladder = choose_ladder(H264_1080, LadderConfig(codecs=("hevc", "av1")))
    assert [r.name for r in order_variants(ladder)] == [
        "480av1", "720av1", "360av1", "480p", "720p", "360p", "h264",
    ]  # fmt: skip
    master = master_text(ladder, H264_1080)
    assert 'CODECS="av01.0.04M.08,mp4a.40.2"' in master.splitlines()[3]


def test_write_master_is_atomic_and_rewritable(tmp_path: Path) -> None:
    ladder = choose_ladder(H264_1080, LadderConfig())
    path = write_master(tmp_path, ladder, H264_1080)
    assert path == tmp_path / "master.m3u8" and "720p/index.m3u8" in path.read_text()
    write_master(tmp_path, ladder[1:], H264_1080)  # after shedding 720p
    assert "720p" not in path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["master.m3u8"]  # no temp files left
    assert path.stat().st_mode & 0o777 == 0o644


def test_append_endlist_once(tmp_path: Path) -> None:
    playlist = tmp_path / "index.m3u8"
    assert append_endlist(playlist) is False
    playlist.write_text("#EXTM3U\n#EXTINF:2.0,\ns-0.m4s\n")
    assert append_endlist(playlist) and append_endlist(playlist)
    assert playlist.read_text() == "#EXTM3U\n#EXTINF:2.0,\ns-0.m4s\n#EXT-X-ENDLIST\n"
