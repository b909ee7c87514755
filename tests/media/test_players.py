"""Players nobody here wrote -- FFmpeg's HLS demuxer and GStreamer's hlsdemux2 -- play the live
master through a preset change, two shed rungs and a kill -9 of one rung's FFmpeg.

Each rung runs its own FFmpeg on the source's timestamps (-copyts), so a restart is one
rung's discontinuity -- with a new init segment named after its run and a timeline that goes
on -- and the other rungs see nothing. (Before, one FFmpeg made every rung: each restart
was a discontinuity everywhere, and each run's fMP4 timeline started near 0, which GStreamer
dropped as "decreasing timestamp".)

GStreamer 1.22 is given a connection speed that keeps it on the lowest HEVC rung, the one
shedding never removes: its hlsdemux2 switches variants by bandwidth alone, also to the H.264
copy (decodebin3 cannot change codec in the middle: not-negotiated), and ends at a shed rung's
EXT-X-ENDLIST instead of moving to another variant. FFmpeg's demuxer reads every variant.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest

from server.live.ladders import LADDERS
from server.settings import Settings
from tests.conftest import LiveStack, wait_until
from tests.media.test_live_path import new_channel, wait_master
from transcoder.live.ladder import Rung

pytestmark = [pytest.mark.media, pytest.mark.slow]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Three small HEVC rungs, so there is something to shed from a 320x240 source.

    BANDWIDTH: 240p 589 kbit/s, 180p 436, 144p 360; the copied H.264 rung 9.3 Mbit/s."""
    return settings.with_changes(ladder_rungs=(Rung(240, 300), Rung(180, 200), Rung(144, 150)))


@dataclass
class Player:
    """A player process, its output lines as they come, and a figure that grows while it plays."""

    name: str
    process: asyncio.subprocess.Process
    pattern: re.Pattern[bytes]  # a line with a growing number, or a line per frame
    lines: list[str] = field(default_factory=list)
    progress: float = 0.0

    async def read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            found = self.pattern.search(line)
            if found and found.groups():
                self.progress = max(self.progress, float(found.group(1)))
            elif found:
                self.progress += 1  # one more frame reached the sink
                continue  # one line per frame: not worth keeping
            self.lines.append(line.decode(errors="replace").rstrip())

    def tail(self) -> str:
        """The last lines, for an assertion message."""
        return "\n".join(self.lines[-25:])

    def errors(self) -> list[str]:
        return [ln for ln in self.lines if re.search(r"\berror\b|ERROR", ln, re.I)]


@pytest.fixture
def readers() -> Iterator[list[asyncio.Task[None]]]:
    started: list[asyncio.Task[None]] = []
    yield started
    for task in started:
        task.cancel()


@pytest.fixture
async def players() -> AsyncIterator[list[Player]]:
    started: list[Player] = []
    yield started
    for player in started:
        if player.process.returncode is None:
            os.killpg(player.process.pid, signal.SIGKILL)
        await player.process.wait()


async def start_player(
    name: str, args: list[str], pattern: bytes
) -> tuple[Player, asyncio.Task[None]]:
    process = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    player = Player(name, process, re.compile(pattern))
    assert process.stdout is not None
    return player, asyncio.create_task(player.read(process.stdout))


async def keeps_playing(players: list[Player], seconds: float) -> None:
    """Every player's progress grows over the next `seconds`, and none has exited."""
    before = [p.progress for p in players]

    async def grew() -> bool:
        for player in players:
            assert player.process.returncode is None, (player.name, player.tail())
        return all(p.progress > b for p, b in zip(players, before, strict=True))

    await wait_until(grew, seconds, "every player making progress")


async def test_ffmpeg_and_gstreamer_play_the_master_through_restarts_sheds_and_a_kill_9(
    live_stack: LiveStack,
    publish,  # type: ignore[no-untyped-def]
    players: list[Player],
    readers: list[asyncio.Task[None]],
) -> None:
    pool = live_stack.app[LADDERS]
    # -re caps the ladder at 1.0x, so asking for 1.5x makes it step its preset, then shed
    pool.options = dataclasses.replace(
        pool.options, shed_window_s=6.0, shed_min_speed=1.5, restore_after_s=3600.0
    )
    key = await new_channel(live_stack, "players")
    await publish(live_stack.rtmp(key), size="320x240")
    await wait_master(live_stack, "players", 4)
    master = f"{live_stack.http}/hls/players/master.m3u8"
    sup = pool.supervisor("players")
    assert sup is not None

    for name, args, pattern in (
        (
            "ffmpeg",
            ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-nostats",
             "-progress", "pipe:1", "-i", master, "-map", "0:v", "-f", "null", "-"],
            rb"out_time_us=(\d+)",
        ),
        (
            "gstreamer",
            ["gst-launch-1.0", "-v", "playbin3", f"uri={master}", "connection-speed=300",
             "video-sink=fakesink sync=true silent=false", "audio-sink=fakesink sync=true"],
            rb"last-message = chain",
        ),
    ):  # fmt: skip
        player, reader = await start_player(name, args, pattern)
        players.append(player)
        readers.append(reader)
    await keeps_playing(players, 30)
    copy_pid = sup.pids["h264"]

    async def shed_twice() -> bool:
        return [r.name for r in sup.renditions] == ["144p", "h264"] and sup.state == "running"

    await wait_until(shed_twice, 90, "a faster preset, then 240p and 180p shed")
    await keeps_playing(players, 30)
    assert sup.pids["h264"] == copy_pid  # the copy never restarted: not its preset, not shed

    first = sup.pids["144p"]
    assert first is not None
    os.kill(first, signal.SIGKILL)

    async def restarted() -> bool:
        return sup.pids["144p"] not in (None, first) and sup.state == "running"

    await wait_until(restarted, 30, "a new FFmpeg for 144p after kill -9")
    await keeps_playing(players, 30)
    await keeps_playing(players, 30)  # and on: not just what was buffered before the kill
    for player in players:
        assert player.errors() == [], (player.name, player.errors()[:10])
    assert sup.pids["h264"] == copy_pid
    # GStreamer played the rung that was killed (144p is 192x144), not one beside it
    gstreamer = "\n".join(players[1].lines)
    assert "video/x-h265" in gstreamer and "width=(int)192" in gstreamer
    assert "width=(int)240" not in gstreamer and "width=(int)320" not in gstreamer
