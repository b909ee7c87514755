"""Finalize and compress with real FFmpeg: playable VOD; a smaller HEVC or AV1 copy with a small
H.264 rendition beside it under one master, verified before it replaces the original."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.recordings.conftest import decodes, duration, make_part
from transcoder.ffmpeg.progress import Progress
from transcoder.recordings import media
from transcoder.recordings.clock import CLOCK, PartClock, part_clock, read_clock
from transcoder.recordings.compress import CompressOptions, compress

# testsrc2 at 320x240 under x265 ultrafast CRF 26: measured ~0.98; a broken encode is < 0.5.
SSIM_BOUND = 0.95


def tools(tmp: Path) -> media.Tools:
    return media.Tools(run_dir=tmp / "run")


async def test_parts_become_one_vod_and_mp4(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    rec.mkdir()
    await make_part(rec / "part-0001.ts", 6)
    await make_part(rec / "part-0002.ts", 4, offset=100)  # a restart: timestamps jump
    (rec / "part-0003.ts").write_bytes(b"")  # a run that got no packet

    info = await media.finalize(rec, tools(tmp_path), "test")

    assert sorted(p.name for p in rec.iterdir()) == [media.PLAYLIST, media.ORIGINAL]
    assert 9.5 <= info.duration_s <= 10.5
    assert info.video_codec == "h264" and info.audio_codec == "aac"
    playlist = (rec / media.PLAYLIST).read_text()
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in playlist and playlist.rstrip().endswith("#EXT-X-ENDLIST")
    assert f'#EXT-X-MAP:URI="{media.ORIGINAL}"' in playlist
    assert await decodes(rec / media.PLAYLIST)
    assert await decodes(rec / media.ORIGINAL)
    # Running it again (a crash after the remux) changes nothing.
    again = await media.finalize(rec, tools(tmp_path), "test")
    assert again == info


async def test_each_parts_wall_clock_start_becomes_the_recordings_clock(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    rec.mkdir()
    await make_part(rec / "part-0001.ts", 6)
    await make_part(rec / "part-0002.ts", 4, offset=100)  # restarted 30 s later on the wall
    await make_part(rec / "part-0003.ts", 3, offset=200)  # its start never estimated
    part_clock(rec / "part-0001.ts").write_text("1700000000.000\n")
    part_clock(rec / "part-0002.ts").write_text("1700000036.500\n")

    await media.finalize(rec, tools(tmp_path), "test")

    assert sorted(p.name for p in rec.iterdir()) == [CLOCK, media.PLAYLIST, media.ORIGINAL]
    clock = read_clock(rec)
    assert clock is not None and len(clock) == 2 and clock[0] == (0.0, 1700000000.0)
    at, wall = clock[1]
    assert 5.8 <= at <= 6.2 and wall == 1700000036.5  # part 2 starts where part 1 ended


def test_a_parts_start_is_the_earliest_now_minus_out_time(tmp_path: Path) -> None:
    part = tmp_path / "part-0001.ts"
    now = iter([1000.0, 1000.5, 1001.0, 1001.5])
    clock = PartClock(part, now=lambda: next(now))
    # nginx's buffered GOP comes in a burst (out_time runs ahead), then frames in real time
    for out in (0.4, 2.1, 2.4, 2.9):
        clock.observe(Progress(None, None, None, out, None, None, 0, 0, False))
    assert part_clock(part).read_text().strip() == "998.400"  # 1000.5 - 2.1


@pytest.mark.parametrize(
    ("options", "codec", "tag"),
    [
        (CompressOptions(preset="ultrafast"), "hevc", "hvc1.1.6.L"),
        (CompressOptions(codec="av1", av1_preset=12), "av1", "av01.0."),
    ],
)
async def test_compression_is_smaller_decodes_and_looks_the_same(
    tmp_path: Path, options: CompressOptions, codec: str, tag: str
) -> None:
    rec = tmp_path / "rec"
    rec.mkdir()
    await make_part(rec / "part-0001.ts", 8)
    before = await media.finalize(rec, tools(tmp_path), "test")
    reference = tmp_path / "reference.mp4"
    reference.write_bytes((rec / media.ORIGINAL).read_bytes())

    result = await compress(rec, tools(tmp_path), options, "test")

    assert result is not None
    _, after = result
    name = media.compressed_name(codec)
    assert after.video_codec == codec
    efficient = (rec / name).stat().st_size
    assert efficient < before.bytes / 2, (efficient, before.bytes)
    # with the H.264 rendition (here as tall as this 240p source) still smaller than before
    assert after.bytes == efficient + (rec / media.FALLBACK).stat().st_size < before.bytes
    assert sorted(p.name for p in rec.iterdir()) == sorted(
        [media.PLAYLIST, name, media.media_playlist(name), media.FALLBACK,
         media.media_playlist(media.FALLBACK)]
    )  # fmt: skip
    # The master: the efficient rendition first, then H.264 at 240p (the source is below 360p)
    master = (rec / media.PLAYLIST).read_text()
    variants = re.findall(r'RESOLUTION=(\d+x\d+),CODECS="([^"]+)"\n(\S+)', master)
    assert [(v[0], v[1].split(".")[0], v[2]) for v in variants] == [
        ("320x240", tag.split(".")[0], media.media_playlist(name)),
        ("320x240", "avc1", media.media_playlist(media.FALLBACK)),
    ]
    assert variants[0][1].startswith(tag) and variants[0][1].endswith(",mp4a.40.2")
    assert media.media_name(rec) == name
    for rendition in (name, media.FALLBACK):
        playlist = (rec / media.media_playlist(rendition)).read_text()
        assert f'#EXT-X-MAP:URI="{rendition}"' in playlist
        assert abs(await duration(rec / rendition) - before.duration_s) < 0.5
        assert await decodes(rec / media.media_playlist(rendition))
        score = await media.ssim(reference, rec / rendition)
        assert score > SSIM_BOUND, (rendition, score)


async def test_failed_compression_keeps_the_original(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    rec.mkdir()
    await make_part(rec / "part-0001.ts", 3)
    await media.finalize(rec, tools(tmp_path), "test")
    original = (rec / media.ORIGINAL).read_bytes()
    broken = media.Tools(ffmpeg="false", run_dir=tmp_path / "run")  # encoder exits 1

    try:
        await compress(rec, broken, CompressOptions(preset="ultrafast"), "test")
    except media.MediaError:
        pass
    else:
        raise AssertionError("a failing encoder must raise")
    assert (rec / media.ORIGINAL).read_bytes() == original
    assert sorted(p.name for p in rec.iterdir()) == [media.PLAYLIST, media.ORIGINAL]
