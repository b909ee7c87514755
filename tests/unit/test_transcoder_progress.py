"""Parsing real `-progress pipe:1` output of ffmpeg 5.1, and classifying stderr lines."""

from __future__ import annotations

import logging

import pytest

from transcoder.ffmpeg.progress import ProgressParser, classify_stderr, parse_all

# Captured from the supervisor's own command (two video rungs + copy) and from a short encode.
CAPTURED = """\
frame=2
fps=0.00
stream_0_0_q=0.0
stream_0_2_q=-1.0
bitrate=N/A
total_size=N/A
out_time_us=121354
out_time_ms=121354
out_time=00:00:00.121354
dup_frames=1
drop_frames=0
speed=1.16x
progress=continue
frame=48
fps=29.41
stream_0_0_q=30.9
stream_0_2_q=-1.0
bitrate= 812.3kbits/s
total_size=168448
out_time_us=1654362
out_time_ms=1654362
out_time=00:00:01.654362
dup_frames=1
drop_frames=3
speed=1.01x
progress=continue
frame=36
fps=0.00
stream_0_0_q=-1.0
bitrate=N/A
total_size=N/A
out_time_us=N/A
out_time_ms=N/A
out_time=N/A
dup_frames=0
drop_frames=0
speed=N/A
progress=end
"""


def test_parses_every_block() -> None:
    first, second, last = parse_all(CAPTURED)
    assert (first.frame, first.fps, first.speed, first.out_time_s) == (2, 0.0, 1.16, 0.121354)
    assert first.bitrate_kbps is None and first.total_size is None and not first.ended
    assert second.bitrate_kbps == pytest.approx(812.3)
    assert (second.total_size, second.dup_frames, second.drop_frames) == (168448, 1, 3)
    assert last.ended and last.speed is None and last.out_time_s is None


def test_partial_block_waits_for_its_progress_line() -> None:
    parser = ProgressParser()
    assert parser.feed("frame=1\n") is None
    assert parser.feed("out_time_us=-23220\n") is None
    assert parser.feed("garbage without equals\n") is None
    block = parser.feed("progress=continue\n")
    assert block is not None and block.frame == 1 and block.out_time_s is None  # negative: none


@pytest.mark.parametrize(
    ("line", "level"),
    [
        ("[hls @ 0x55d] [error] failed to rename file x.tmp", logging.ERROR),
        ("[rtmp @ 0x55d] [warning] Unknown metadata", logging.WARNING),
        (
            "[mp4 @ 0x55e] [warning] Packet duration: -8 / dts: 100472 is out of range",
            logging.DEBUG,
        ),
        ("[fatal] Conversion failed!", logging.CRITICAL),
        ("  Stream #0:0 -> #0:0 (h264 (native) -> hevc (libx265))", logging.INFO),
    ],
)
def test_classify_stderr(line: str, level: int) -> None:
    assert classify_stderr(line) == level
