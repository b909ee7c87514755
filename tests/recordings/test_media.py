"""Finalize and compress with real FFmpeg: playable VOD, smaller H.265, verified before replace."""

from __future__ import annotations

from pathlib import Path

from tests.recordings.conftest import decodes, duration, make_part
from transcoder.recordings import media

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


async def test_compression_is_smaller_decodes_and_looks_the_same(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    rec.mkdir()
    await make_part(rec / "part-0001.ts", 8)
    before = await media.finalize(rec, tools(tmp_path), "test")
    reference = tmp_path / "reference.mp4"
    reference.write_bytes((rec / media.ORIGINAL).read_bytes())

    result = await media.compress(
        rec, tools(tmp_path), media.CompressOptions(preset="ultrafast"), "test"
    )

    assert result is not None
    _, after = result
    assert after.video_codec == "hevc"
    assert after.bytes < before.bytes / 2, (after.bytes, before.bytes)
    assert sorted(p.name for p in rec.iterdir()) == [media.PLAYLIST, media.COMPRESSED]
    assert f'#EXT-X-MAP:URI="{media.COMPRESSED}"' in (rec / media.PLAYLIST).read_text()
    assert abs(await duration(rec / media.COMPRESSED) - before.duration_s) < 0.5
    assert await decodes(rec / media.PLAYLIST)
    score = await media.ssim(reference, rec / media.COMPRESSED)
    assert score > SSIM_BOUND, score


async def test_failed_compression_keeps_the_original(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    rec.mkdir()
    await make_part(rec / "part-0001.ts", 3)
    await media.finalize(rec, tools(tmp_path), "test")
    original = (rec / media.ORIGINAL).read_bytes()
    broken = media.Tools(ffmpeg="false", run_dir=tmp_path / "run")  # encoder exits 1

    try:
        await media.compress(rec, broken, media.CompressOptions(preset="ultrafast"), "test")
    except media.MediaError:
        pass
    else:
        raise AssertionError("a failing encoder must raise")
    assert (rec / media.ORIGINAL).read_bytes() == original
    assert sorted(p.name for p in rec.iterdir()) == [media.PLAYLIST, media.ORIGINAL]
