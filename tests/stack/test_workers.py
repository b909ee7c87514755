"""`onair up --workers 2` end to end: real PostgreSQL, Redis, nginx-rtmp, two servers and FFmpeg.

Chat works through nginx (long-polling sessions stay on their worker). The owner of the host's
hooks and ladders is killed with -9 during a live stream: the other worker takes over, the
ladder writes new segments again with exactly one FFmpeg per rung (the dead owner's are reaped,
the restarted worker starts none), and the publisher stays connected in the same RTMP session.
Then the new owner is stopped gracefully (a rolling restart): the ladder moves again, no
playlist ever ends and the channel stays live in the API. Then Ctrl-C stops everything the
stack started.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import socketio

from bench.harness import ffmpeg_pids
from server.live.rtmp_stat import publishers
from tests.conftest import free_port, open_tempdir
from tests.stack.test_up import Up, alive, descendants

pytestmark = [pytest.mark.slow, pytest.mark.media]

# One cheap HEVC rung under the 240p source, beside the H.264 copy: two FFmpeg rungs.
ENV = {"ONAIR_LADDER_RUNGS": "180:200"}
TAKE_OVER_DEADLINE = 90.0  # generous: the contract is 10 s to take over, then probe and start
READY_DEADLINE = 120.0


def wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll until `condition` holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError):
        return None


def workers(up: Up) -> set[int]:
    """The `onair serve` children of `onair up`."""
    found = set()
    for pid in descendants(up.process.pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if parent(pid) == up.process.pid and b"serve" in argv and alive(pid):
            found.add(pid)
    return found


def segment_runs(rendition: Path) -> set[str]:
    """The FFmpeg runs that wrote segments here (segments are named <run>-<n>.m4s)."""
    return {p.name.rsplit("-", 1)[0] for p in rendition.glob("*.m4s")}


def stat_clients(http_port: int, slug: str) -> list[str]:
    """nginx-rtmp's client ids publishing `slug` now."""
    url = f"http://127.0.0.1:{http_port}/rtmp_stat"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = response.read()
    return [p.client_id for p in publishers(body) if p.slug == slug]


def processes_naming(text: str) -> list[tuple[int, str]]:
    """Live processes whose command line mentions `text` (the stack's data folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in argv and alive(int(entry.name)):
            found.append((int(entry.name), argv[:200]))
    return found


async def chat_through_nginx(http_port: int) -> None:
    """Two chatters through nginx's /socket.io/: one on HTTP long-polling only (every poll must
    reach the worker that holds its session), one as a browser starts (polling, then the
    websocket upgrade); a message from one reaches the other."""
    url = f"http://127.0.0.1:{http_port}"
    ann, bob = socketio.AsyncClient(reconnection=False), socketio.AsyncClient(reconnection=False)
    heard = asyncio.Event()

    async def on_message(payload: dict[str, str]) -> None:
        if payload["text"] == "through nginx":
            heard.set()

    bob.on("message", on_message)
    try:
        await ann.connect(url, transports=["polling"], wait_timeout=10)
        await bob.connect(url, wait_timeout=10)
        assert (await ann.call("join", {"channel": "demo", "name": "Ann"}, timeout=10))["ok"]
        assert (await bob.call("join", {"channel": "demo", "name": "Bob"}, timeout=10))["ok"]
        ack = await ann.call("message", {"channel": "demo", "text": "through nginx"}, timeout=10)
        assert ack["ok"], ack
        await asyncio.wait_for(heard.wait(), 10)
    finally:
        for client in (ann, bob):
            if client.connected:
                await client.disconnect()


@pytest.fixture
def data_dir() -> Iterator[Path]:
    root = open_tempdir("onair-workers-")
    yield root / "data"
    subprocess.run(["rm", "-rf", str(root)], check=False)


def test_owner_killed_during_a_live_stream_then_ctrl_c(data_dir: Path) -> None:
    http_port, rtmp_port = free_port(), free_port()
    up = Up(data_dir, http_port, rtmp_port, "--workers", "2", env=ENV)
    publisher: subprocess.Popen[bytes] | None = None
    try:
        up.wait_for(r"^Onair is up\.$")
        key = up.wait_for(r"Stream key:\s+(\S+)").group(1)
        assert len(workers(up)) == 2
        asyncio.run(chat_through_nginx(http_port))
        channel = data_dir / "media" / "live" / "demo"
        publisher = subprocess.Popen(
            ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
             "-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15",
             "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
             "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
             "-g", "30", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k",
             "-f", "flv", f"rtmp://127.0.0.1:{rtmp_port}/live/{key}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

        # The ladder runs: master.m3u8 is written once every rung has segments.
        wait(lambda: (channel / "master.m3u8").exists(), READY_DEADLINE, "the ladder")
        renditions = sorted(p for p in channel.iterdir() if (p / "index.m3u8").exists())
        assert len(renditions) == 2, renditions
        ladder = ffmpeg_pids(channel)
        assert all(len(ffmpeg_pids(r)) == 1 for r in renditions), ladder  # one FFmpeg per rung
        (owner,) = {parent(pid) for pid in ladder}
        assert owner in workers(up)
        before = {r.name: segment_runs(r) for r in renditions}
        (session,) = stat_clients(http_port, "demo")

        taken = up.output.count("owner lock taken")
        os.kill(owner, signal.SIGKILL)
        killed_at = time.monotonic()
        # The other worker takes the lock (the contract: within 10 s; generous here).
        wait(lambda: up.output.count("owner lock taken") > taken, 30, "a worker to take over")
        print(f"owner lock taken {time.monotonic() - killed_at:.1f} s after the kill")

        def resumed() -> bool:
            pids = ffmpeg_pids(channel)
            fresh = [r for r in renditions if segment_runs(r) - before[r.name]]
            return (
                len(fresh) == len(renditions)
                and all(len(ffmpeg_pids(r)) == 1 for r in renditions)
                and not set(pids) & set(ladder)  # the dead owner's were reaped
                and {parent(pid) for pid in pids} <= workers(up) - {owner}
            )

        wait(resumed, TAKE_OVER_DEADLINE, "new segments from a new owner's ladder")
        print(f"ladder resumed {time.monotonic() - killed_at:.1f} s after the kill")
        # The publisher never noticed: same FFmpeg, same RTMP session.
        assert publisher.poll() is None
        assert stat_clients(http_port, "demo") == [session]

        # onair up starts the dead worker again; it must not start a second ladder.
        up.wait_for("exited with code -9; starting it again", timeout=30)
        wait(lambda: len(workers(up)) == 2, 60, "the killed worker to run again")
        new_owner = {parent(pid) for pid in ffmpeg_pids(channel)}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            # A rung may be between two runs (the speed feedback restarts it with a faster
            # preset), never run twice, and only ever in the new owner.
            for rendition in renditions:
                assert len(ffmpeg_pids(rendition)) <= 1, rendition.name
            assert {parent(pid) for pid in ffmpeg_pids(channel)} <= new_owner
            time.sleep(0.2)
        assert publisher.poll() is None
        assert stat_clients(http_port, "demo") == [session]

        # A rolling restart: the owner stops gracefully (SIGTERM, as `systemctl restart`
        # does). The other worker takes the ladder over and appends to its playlists, which
        # never end meanwhile (a player that saw ENDLIST would stop).
        (owner,) = new_owner
        assert owner is not None
        before = {r.name: segment_runs(r) for r in renditions}
        ladder = ffmpeg_pids(channel)
        ended: set[str] = set()
        os.kill(owner, signal.SIGTERM)

        offline: list[object] = []

        def handed_over() -> bool:
            for rendition in renditions:
                if "#EXT-X-ENDLIST" in (rendition / "index.m3u8").read_text():
                    ended.add(rendition.name)
            # Whichever worker nginx asks, the channel stays live.
            status, listed = up.get("/api/channels")
            if status != 200 or not listed[0]["live"]:  # type: ignore[index]
                offline.append((status, listed))
            return resumed()

        wait(handed_over, TAKE_OVER_DEADLINE, "the ladder in the other worker")
        assert ended == set()
        assert offline == []
        assert publisher.poll() is None
        assert stat_clients(http_port, "demo") == [session]
        children = descendants(up.process.pid)
    finally:
        # Ctrl-C, as at the terminal.
        up.process.send_signal(signal.SIGINT)
        code = up.process.wait(timeout=90)
        up.reader.join(timeout=5)
        if publisher is not None:
            publisher.kill()
            publisher.wait()
    assert code == 0, up.output[-3000:]
    assert "onair up: stopping" in up.output
    assert [pid for pid in children if alive(pid)] == []
    # Nothing of that stack runs any more: no server, FFmpeg, nginx, PostgreSQL or Redis.
    assert processes_naming(str(data_dir)) == []
    assert ffmpeg_pids(data_dir) == []
