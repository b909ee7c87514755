"""The supervisor with real ffmpeg: ladder output, kill -9 of one rung, stall, stop, orphans."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from tests.conftest import ffmpeg_pids, wait_until
from transcoder.ffmpeg.probe import SourceInfo, probe_source
from transcoder.ffmpeg.process import reap_orphans
from transcoder.layout import MediaLayout
from transcoder.live.command import TranscodeJob
from transcoder.live.ladder import LadderConfig, Rung, choose_ladder, codecs_string
from transcoder.live.pool import LadderPool
from transcoder.live.supervisor import Supervisor, SupervisorOptions
from transcoder.live.window import parse_media

pytestmark = pytest.mark.media

# Tiny and fast: a 240p source gives one HEVC rung plus the copied H.264 rung.
CONFIG = LadderConfig(preset="ultrafast", list_size=10)
OPTIONS = SupervisorOptions(backoff_initial_s=0.2, stall_timeout_s=3.0, stop_grace_s=5.0)
LOOP_INPUT = ("-re", "-stream_loop", "-1")  # a file played at live speed, forever


@pytest.fixture(scope="module")
def source_flv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An OBS-like FLV: H.264 with a 2 s GOP plus AAC, 426x240 at 30 fps."""
    path = tmp_path_factory.mktemp("src") / "src.flv"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
         "-f", "lavfi", "-i", "testsrc2=size=426x240:rate=30",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
         "-t", "6", "-c:v", "libx264", "-preset", "ultrafast", "-g", "60", "-keyint_min", "60",
         "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", str(path)],
        check=True,
        timeout=60,
    )  # fmt: skip
    yield path


def segments(playlist: Path) -> list[str]:
    try:
        return [ln for ln in playlist.read_text().splitlines() if ln.endswith(".m4s")]
    except FileNotFoundError:
        return []


def exits(reason: str) -> float:
    return REGISTRY.get_sample_value("onair_transcoder_exits_total", {"reason": reason}) or 0.0


def ffprobe_video(init: Path, segment: Path, scratch: Path) -> dict[str, object]:
    """The video stream of init + segment, as a player would decode it."""
    scratch.write_bytes(init.read_bytes() + segment.read_bytes())
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", str(scratch)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    streams = json.loads(out.stdout)["streams"]
    return next(s for s in streams if s["codec_type"] == "video")  # type: ignore[no-any-return]


async def make_supervisor(tmp_path: Path, flv: Path) -> tuple[Supervisor, SourceInfo]:
    source = await probe_source(str(flv), timeout=10)
    out = tmp_path / "live" / "demo"
    renditions = choose_ladder(source, CONFIG)
    for r in renditions:
        (out / r.name).mkdir(parents=True)
    job = TranscodeJob(
        input_url=str(flv),
        output_dir=out,
        renditions=tuple(renditions),
        config=CONFIG,
        fps=source.fps,
        has_audio=source.has_audio,
        segment_prefix="t1",
        input_options=LOOP_INPUT,
    )
    return Supervisor("demo", job, source, run_dir=tmp_path / "run", options=OPTIONS), source


async def test_ladder_survives_kill_9_and_ends_cleanly(tmp_path: Path, source_flv: Path) -> None:
    sup, source = await make_supervisor(tmp_path, source_flv)
    out = tmp_path / "live" / "demo"
    assert [(r.name, r.codec, r.height, r.copy) for r in sup.renditions] == [
        ("240p", "hevc", 240, False),
        ("h264", "h264", 240, True),
    ]
    crashed, stopped = exits("crashed"), exits("stopped")
    await sup.start()
    try:
        pids = sup.pids
        assert None not in pids.values() and len(set(pids.values())) == 2  # a process per rung
        assert all((tmp_path / "run" / f"demo.{r}.pid").exists() for r in ("240p", "h264"))
        first_pid = pids["240p"]

        async def master_listed() -> bool:
            if not (out / "master.m3u8").exists():
                return False
            # written only once every rung it names has two segments: no variant 404s
            assert all(len(segments(out / r.name / "index.m3u8")) >= 2 for r in sup.renditions)
            return True

        await wait_until(master_listed, 30, "the master, once each rung has two segments")
        for r, codec in (("240p", "hevc"), ("h264", "h264")):
            first = parse_media((out / r / "index.m3u8").read_text()).segments[0]
            video = ffprobe_video(out / r / first.init, out / r / first.uri, tmp_path / f"{r}.mp4")
            assert (video["codec_name"], video["height"]) == (codec, 240)
            if codec == "hevc":
                assert video["codec_tag_string"] == "hvc1"
                declared = codecs_string(sup.renditions[0], source)
                assert f".L{video['level']}." in declared  # CODECS matches the bitstream

        before_text = (out / "240p" / "index.m3u8").read_text()
        before = segments(out / "240p" / "index.m3u8")
        copy_before = parse_media((out / "h264" / "index.m3u8").read_text())
        assert first_pid is not None
        os.kill(first_pid, signal.SIGKILL)

        async def restarted() -> bool:
            return sup.pids["240p"] not in (None, first_pid) and sup.state == "running"

        await wait_until(restarted, 15, "a new ffmpeg after kill -9")

        async def grew() -> bool:
            now = segments(out / "240p" / "index.m3u8")
            return len(set(now) - set(before)) >= 2

        await wait_until(grew, 30, "new segments after the restart")
        text = (out / "240p" / "index.m3u8").read_text()
        # At the restart: a DISCONTINUITY, then at once a MAP naming the new run's own init.
        tail = text.split(before[-1])[-1]
        new_init = re.search(
            r'^#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="(init-[0-9a-f]+\.mp4)"', tail.lstrip(), re.M
        )
        assert new_init is not None, text
        old, now = parse_media(before_text), parse_media(text)
        old_init = old.segments[-1].init
        assert new_init.group(1) != old_init
        # Segments of the killed run keep their init (still on disk) and their numbers.
        numbered = {s.uri: old.sequence + i for i, s in enumerate(old.segments)}
        for i, segment in enumerate(now.segments):
            assert segment.init == (old_init if segment.uri in numbered else new_init.group(1))
            assert numbered.get(segment.uri, now.sequence + i) == now.sequence + i
        assert all((out / "240p" / s.init).exists() for s in now.segments)
        assert len(set(segments(out / "240p" / "index.m3u8"))) == len(now.segments)
        assert exits("crashed") == crashed + 1
        assert [(e.kind, e.rung) for e in sup.events] == [("restart", "240p")]
        assert next(iter(sup.events)).detail.startswith("crashed, again in ")
        # The other rung never noticed: same process, one init, consecutive sequence numbers.
        assert sup.pids["h264"] == pids["h264"]
        copy_now = parse_media((out / "h264" / "index.m3u8").read_text())
        assert {s.init for s in copy_now.segments} == {copy_before.segments[0].init}
        assert {s.cc for s in copy_now.segments} == {0}
        numbers = {s.uri: copy_before.sequence + i for i, s in enumerate(copy_before.segments)}
        for i, segment in enumerate(copy_now.segments):
            assert numbers.get(segment.uri, copy_now.sequence + i) == copy_now.sequence + i
    finally:
        await sup.stop()
    assert sup.state == "stopped" and exits("stopped") == stopped + 2  # one per rung
    for r in ("240p", "h264"):
        assert (out / r / "index.m3u8").read_text().rstrip().endswith("#EXT-X-ENDLIST")
    assert ffmpeg_pids(out) == []
    assert list((tmp_path / "run").glob("demo*.pid")) == []


async def test_stall_is_killed_and_restarted(tmp_path: Path, source_flv: Path) -> None:
    sup, _ = await make_supervisor(tmp_path, source_flv)
    stalled = exits("stalled")
    await sup.start()
    try:
        rung = sup.rungs["240p"]

        async def progressing() -> bool:
            return rung.last_progress is not None and rung.last_progress.out_time_s is not None

        await wait_until(progressing, 20, "first progress")
        frozen = rung.pid
        assert frozen is not None
        os.kill(frozen, signal.SIGSTOP)  # alive but making no progress: a hung input

        async def replaced() -> bool:
            return rung.pid not in (None, frozen) and sup.state == "running"

        await wait_until(replaced, 15, "a restart after the stall")
        assert exits("stalled") == stalled + 1
        assert frozen not in ffmpeg_pids(tmp_path)
    finally:
        await sup.stop()
    assert ffmpeg_pids(tmp_path) == []


async def test_reap_orphans_kills_only_a_verified_leftover_ffmpeg(tmp_path: Path) -> None:
    run_dir, out = tmp_path / "run", tmp_path / "live" / "gone"
    (out / "x").mkdir(parents=True)
    run_dir.mkdir()
    orphan = await asyncio.create_subprocess_exec(
        "ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi",
        "-i", "testsrc2=size=64x36:rate=10", "-f", "hls", str(out / "x" / "index.m3u8"),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    bystander = await asyncio.create_subprocess_exec("sleep", "30", start_new_session=True)
    try:
        (run_dir / "gone.pid").write_text(f"{orphan.pid}\n{out}\n")
        (run_dir / "other.pid").write_text(f"{bystander.pid}\n{out}\n")  # not an ffmpeg
        (run_dir / "junk.pid").write_text("not a pid\n")
        assert await reap_orphans(run_dir) == [orphan.pid]
        assert await asyncio.wait_for(orphan.wait(), 5) == -signal.SIGKILL
        assert bystander.returncode is None
        assert list(run_dir.iterdir()) == []
    finally:
        for proc in (orphan, bystander):
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def test_live_transcoders_start_is_idempotent_and_stop_ends(
    tmp_path: Path, source_flv: Path
) -> None:
    live = LadderPool(
        MediaLayout(tmp_path), CONFIG, probe_timeout=10, options=OPTIONS, input_options=LOOP_INPUT
    )
    with pytest.raises(ValueError):
        await live.start("../etc", str(source_flv))
    await live.start("demo", str(source_flv))
    try:
        sup = live.supervisor("demo")
        assert sup is not None and live.running() == {"demo"}
        pids = sup.pids
        await live.start("demo", str(source_flv))  # already live: nothing new
        assert live.supervisor("demo") is sup and sup.pids == pids
        assert (tmp_path / "run" / "demo.240p.pid").exists()

        async def playing() -> bool:
            return (tmp_path / "live" / "demo" / "master.m3u8").exists()

        await wait_until(playing, 30, "the master once the rungs have segments")
        master = (tmp_path / "live" / "demo" / "master.m3u8").read_text()
        assert master.count("#EXT-X-STREAM-INF") == 2 and 'CODECS="hvc1.1.6.L60.B0' in master
    finally:
        await live.close()
    assert live.running() == set()
    assert segments(tmp_path / "live" / "demo" / "240p" / "index.m3u8")
    assert (
        (tmp_path / "live" / "demo" / "h264" / "index.m3u8")
        .read_text()
        .endswith("#EXT-X-ENDLIST\n")
    )
    assert ffmpeg_pids(tmp_path) == []


def sample(name: str, channel: str = "demo") -> float | None:
    return REGISTRY.get_sample_value(name, {"channel": channel})


async def test_falling_behind_steps_the_preset_sheds_the_top_hevc_rungs_then_restores(
    tmp_path: Path, source_flv: Path
) -> None:
    config = LadderConfig(
        preset="superfast", rungs=(Rung(240, 300), Rung(180, 200), Rung(120, 150))
    )
    # -re caps speed at 1.0, so demanding 1.5 makes the policy see a channel falling behind
    options = SupervisorOptions(shed_window_s=3.0, shed_min_speed=1.5, backoff_initial_s=0.2)
    live = LadderPool(
        MediaLayout(tmp_path), config, probe_timeout=10, options=options, input_options=LOOP_INPUT
    )
    out = tmp_path / "live" / "demo"
    await live.start("demo", str(source_flv))
    try:
        sup = live.supervisor("demo")
        assert sup is not None and [r.name for r in sup.renditions] == [
            "240p",
            "180p",
            "120p",
            "h264",
        ]

        assert sup.preset == "superfast" and sample("onair_transcoder_preset_index") == 1
        changes = sample("onair_transcoder_preset_changes_total") or 0.0
        restored = sample("onair_transcoder_restored_total") or 0.0
        copy_pid = sup.pids["h264"]

        slower = sup.pids

        async def faster_first() -> bool:
            hevc = [sup.pids[r] for r in ("240p", "180p", "120p")]
            restarted = all(
                pid not in (None, slower[r])
                for r, pid in zip(("240p", "180p", "120p"), hevc, strict=True)
            )
            return sup.preset == "ultrafast" and restarted and sup.state == "running"

        await wait_until(faster_first, 20, "a faster preset before any shedding")
        assert len(sup.renditions) == 4  # every rung kept: only the preset changed
        assert sample("onair_transcoder_preset_changes_total") == changes + 1
        kept_pid = sup.pids["120p"]  # restarted once, for the preset

        async def shed_twice() -> bool:
            return [r.name for r in sup.renditions] == ["120p", "h264"] and sup.state == "running"

        await wait_until(shed_twice, 40, "two rungs shed")
        master = (out / "master.m3u8").read_text()
        assert re.findall(r"^\S+/index\.m3u8$", master, re.M) == [
            "120p/index.m3u8",
            "h264/index.m3u8",
        ]
        for shed in ("240p", "180p"):  # ended, and still served for players on them
            assert (out / shed / "index.m3u8").read_text().endswith("#EXT-X-ENDLIST\n")
        assert sup.preset == "ultrafast" and sample("onair_transcoder_preset_index") == 0

        async def still_playing() -> bool:
            return len(segments(out / "120p" / "index.m3u8")) >= 2

        await wait_until(still_playing, 20, "segments on the kept rung")
        # Only the HEVC rungs restarted for the preset, and the sheds stopped only the shed.
        assert sup.pids["h264"] == copy_pid and sup.pids["120p"] == kept_pid
        kept = parse_media((out / "120p" / "index.m3u8").read_text())

        # Room again (nothing asks for 1.5x any more): the last shed rung comes back first.
        sup.options = dataclasses.replace(options, shed_min_speed=0.5, restore_after_s=4.0)

        async def restored_180p() -> bool:
            return "180p/index.m3u8" in (out / "master.m3u8").read_text()

        await wait_until(restored_180p, 60, "180p back in the master")
        back = parse_media((out / "180p" / "index.m3u8").read_text())
        assert not back.ended and len(back.segments) >= 2  # a fresh playlist, playable
        assert sample("onair_transcoder_restored_total") == restored + 1
        assert sup.pids["h264"] == copy_pid and sup.pids["120p"] == kept_pid
        # What the dashboard's live panel lists, in order.
        told = [(e.kind, e.rung) for e in sup.events]
        assert told[0][0] == "preset", told  # a faster preset first, then sheds
        assert [t for t in told if t[0] in ("shed", "restore")] == [
            ("shed", "240p"),
            ("shed", "180p"),
            ("restore", "180p"),
        ], told
        now = parse_media((out / "120p" / "index.m3u8").read_text())
        assert {s.cc for s in now.segments} == {kept.segments[-1].cc}  # no discontinuity
    finally:
        await live.close()
    assert ffmpeg_pids(tmp_path) == []
