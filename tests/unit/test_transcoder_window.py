"""window.py: the public media playlist across FFmpeg runs, and when the master is listed."""

from __future__ import annotations

from pathlib import Path

from transcoder.ffmpeg.probe import SourceInfo
from transcoder.live.ladder import LadderConfig, choose_ladder
from transcoder.live.window import (
    RUN_PLAYLIST,
    ChannelPlaylists,
    RungWindow,
    parse_media,
)

SOURCE = SourceInfo(640, 360, 30.0, "h264", "High", 30, 1500, True, "aac")


def run_playlist(run: str, first: int, last: int, sequence: int | None = None) -> str:
    """What hlsenc writes for one run: its own numbering, one MAP, dates on every segment."""
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        "#EXT-X-TARGETDURATION:2",
        f"#EXT-X-MEDIA-SEQUENCE:{first if sequence is None else sequence}",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        f'#EXT-X-MAP:URI="../360p/init-{run}.mp4"',
    ]
    for n in range(first, last + 1):
        lines += [
            f"#EXT-X-PROGRAM-DATE-TIME:2026-12-03T10:00:{n:02d}.000+0000",
            "#EXTINF:2.000000,",
            f"{run}-{n}.m4s",
        ]
    return "\n".join(lines) + "\n"


def feed(folder: Path, text: str, window: RungWindow) -> bool:
    (folder / RUN_PLAYLIST).write_text(text)
    return window.merge(parse_media(text))


def touch(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).write_bytes(b"x")


def test_a_restart_continues_the_sequence_with_a_discontinuity_and_the_new_init(
    tmp_path: Path,
) -> None:
    window = RungWindow(tmp_path, list_size=4, target=2)
    assert not feed(tmp_path, run_playlist("a", 0, -1), window)  # nothing yet: no playlist
    assert not (tmp_path / "index.m3u8").exists()
    feed(tmp_path, run_playlist("a", 0, 2), window)
    feed(tmp_path, run_playlist("b", 0, 0), window)  # FFmpeg restarted: its own numbering
    text = (tmp_path / "index.m3u8").read_text()
    assert text == (
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
        "#EXT-X-DISCONTINUITY-SEQUENCE:0\n#EXT-X-INDEPENDENT-SEGMENTS\n"
        '#EXT-X-MAP:URI="init-a.mp4"\n'
        "#EXT-X-PROGRAM-DATE-TIME:2026-12-03T10:00:00.000+0000\n#EXTINF:2.000000,\na-0.m4s\n"
        "#EXT-X-PROGRAM-DATE-TIME:2026-12-03T10:00:01.000+0000\n#EXTINF:2.000000,\na-1.m4s\n"
        "#EXT-X-PROGRAM-DATE-TIME:2026-12-03T10:00:02.000+0000\n#EXTINF:2.000000,\na-2.m4s\n"
        "#EXT-X-DISCONTINUITY\n"
        '#EXT-X-MAP:URI="init-b.mp4"\n'
        "#EXT-X-PROGRAM-DATE-TIME:2026-12-03T10:00:00.000+0000\n#EXTINF:2.000000,\nb-0.m4s\n"
    )
    # The window slides past the boundary: the discontinuity sequence counts it, the top MAP
    # names run b's init, and nothing of run a is listed under it.
    feed(tmp_path, run_playlist("b", 0, 3), window)
    later = parse_media((tmp_path / "index.m3u8").read_text())
    assert later.sequence == 3 and [s.uri for s in later.segments] == [
        "b-0.m4s",
        "b-1.m4s",
        "b-2.m4s",
        "b-3.m4s",
    ]
    text = (tmp_path / "index.m3u8").read_text()
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:1\n" in text and "init-a" not in text


def test_files_of_earlier_runs_go_once_unlisted_for_a_while_and_the_current_run_is_ffmpegs(
    tmp_path: Path,
) -> None:
    window = RungWindow(tmp_path, list_size=2, target=2)
    touch(tmp_path, "init-a.mp4", "a-0.m4s", "a-1.m4s", "init-b.mp4")
    feed(tmp_path, run_playlist("a", 0, 1), window)
    for n in range(0, 6):
        touch(tmp_path, f"b-{n}.m4s")
        feed(tmp_path, run_playlist("b", 0, n), window)
    # a-0, a-1 and b-0..b-3 left the window; the 3 most recent of them are kept for slow players
    assert not (tmp_path / "a-0.m4s").exists() and not (tmp_path / "a-1.m4s").exists()
    assert not (tmp_path / "init-a.mp4").exists()  # no segment of run a is left
    assert all((tmp_path / f"b-{n}.m4s").exists() for n in range(6))  # FFmpeg deletes its own
    assert (tmp_path / "init-b.mp4").exists()


def test_a_server_restart_picks_up_the_public_playlist_and_continues_it(tmp_path: Path) -> None:
    first = RungWindow(tmp_path, list_size=6, target=2)
    feed(tmp_path, run_playlist("a", 5, 9), first)
    assert parse_media((tmp_path / "index.m3u8").read_text()).sequence == 0
    ended = (tmp_path / "index.m3u8").read_text() + "#EXT-X-ENDLIST\n"
    (tmp_path / "index.m3u8").write_text(ended)
    again = RungWindow(tmp_path, list_size=6, target=2)  # a new server process
    assert not again.sync()  # the killed run's playlist holds nothing new
    feed(tmp_path, run_playlist("c", 0, 1), again)
    now = parse_media((tmp_path / "index.m3u8").read_text())
    assert not now.ended  # the stream goes on
    assert [s.uri for s in now.segments] == [f"a-{n}.m4s" for n in (6, 7, 8, 9)] + [
        "c-0.m4s",
        "c-1.m4s",
    ]
    assert now.sequence == 1 and [s.cc for s in now.segments] == [0, 0, 0, 0, 1, 1]


def test_sync_reads_the_run_playlist_only_when_it_changed(tmp_path: Path) -> None:
    window = RungWindow(tmp_path, list_size=6, target=2)
    assert not window.sync()  # FFmpeg has written nothing yet
    (tmp_path / RUN_PLAYLIST).write_text(run_playlist("a", 0, 1))
    assert window.sync() and not window.sync()
    (tmp_path / RUN_PLAYLIST).write_text(run_playlist("a", 0, 2))
    assert window.sync() and len(window.segments) == 3


def test_the_master_waits_for_two_segments_on_every_rung_and_a_shed_rung_ends(
    tmp_path: Path,
) -> None:
    ladder = choose_ladder(SOURCE, LadderConfig())
    assert [r.name for r in ladder] == ["360p", "h264"]
    for r in ladder:
        (tmp_path / r.name).mkdir()
    playlists = ChannelPlaylists(tmp_path, ladder, SOURCE, list_size=6, target=2)
    (tmp_path / "360p" / RUN_PLAYLIST).write_text(run_playlist("a", 0, 1))
    (tmp_path / "h264" / RUN_PLAYLIST).write_text(run_playlist("a", 0, 0))
    playlists.sync(now=0.0)
    assert not (tmp_path / "master.m3u8").exists()  # h264 has one segment: not yet
    (tmp_path / "h264" / RUN_PLAYLIST).write_text(run_playlist("a", 0, 1))
    playlists.sync(now=1.0)
    assert "h264/index.m3u8" in (tmp_path / "master.m3u8").read_text()

    playlists.shed([r for r in ladder if r.name == "h264"], now=10.0)
    master = (tmp_path / "master.m3u8").read_text()
    assert "360p/index.m3u8" not in master and "h264/index.m3u8" in master
    assert (tmp_path / "360p" / "index.m3u8").read_text().endswith("#EXT-X-ENDLIST\n")
    playlists.sync(now=69.0)
    assert (tmp_path / "360p" / "index.m3u8").exists()  # still served for a minute
    playlists.sync(now=70.5)
    assert not (tmp_path / "360p").exists()
    playlists.end()
    assert (tmp_path / "h264" / "index.m3u8").read_text().endswith("#EXT-X-ENDLIST\n")


def test_a_restored_rung_starts_fresh_and_joins_the_master_once_playable(tmp_path: Path) -> None:
    ladder = choose_ladder(SOURCE, LadderConfig())
    hevc, copy = ladder
    for r in ladder:
        (tmp_path / r.name).mkdir()
    playlists = ChannelPlaylists(tmp_path, ladder, SOURCE, list_size=6, target=2)
    for r in ladder:
        (tmp_path / r.name / RUN_PLAYLIST).write_text(run_playlist("a", 0, 1))
    playlists.sync(now=0.0)
    playlists.shed([copy], now=1.0)

    playlists.restore(hevc)  # back within the minute its ended playlist is still served
    assert list((tmp_path / "360p").iterdir()) == []  # a fresh folder: no ENDLIST, no old run
    assert "360p/index.m3u8" not in (tmp_path / "master.m3u8").read_text()
    (tmp_path / "360p" / RUN_PLAYLIST).write_text(run_playlist("b", 0, 0))
    playlists.sync(now=2.0)
    assert "360p/index.m3u8" not in (tmp_path / "master.m3u8").read_text()  # one segment
    (tmp_path / "360p" / RUN_PLAYLIST).write_text(run_playlist("b", 0, 1))
    playlists.sync(now=3.0)
    assert "360p/index.m3u8" in (tmp_path / "master.m3u8").read_text()
    back = parse_media((tmp_path / "360p" / "index.m3u8").read_text())
    assert [s.uri for s in back.segments] == ["b-0.m4s", "b-1.m4s"] and not back.ended
    playlists.sync(now=120.0)
    assert (tmp_path / "360p" / "index.m3u8").exists()  # the old retirement was cancelled
