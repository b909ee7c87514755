"""FFmpeg that keeps failing, and a publisher that keeps dropping: bounded, visible, recoverable."""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path

import pytest

from server.settings import Settings
from tests.conftest import (
    ServeProcess,
    create_channel,
    descendants,
    ffmpeg_pids,
    get_json,
    get_text,
    running_nginx,
    stop_process,
    wait_until,
)
from tests.reliability.conftest import metric, open_fds, push_file

pytestmark = [pytest.mark.media, pytest.mark.slow]

LADDER_TIMEOUT = 90.0


async def playable(base: str, slug: str) -> bool:
    """The master playlist and its first variant answer, with at least one segment."""
    status, master = await get_text(f"{base}/hls/{slug}/master.m3u8")
    uris = [ln for ln in master.splitlines() if ln and not ln.startswith("#")]
    if status != 200 or not uris:
        return False
    status, variant = await get_text(f"{base}/hls/{slug}/{uris[0]}")
    return status == 200 and "#EXTINF" in variant


async def is_live(base: str, slug: str) -> bool:
    status, body = await get_json(f"{base}/api/channels/{slug}")
    assert status == 200, body
    return bool(body["live"])


def breakable_ffmpeg(folder: Path) -> tuple[Path, Path]:
    """An `ffmpeg` setting that fails (an option ffmpeg refuses) while a flag file exists."""
    flag = folder / "broken"
    script = folder / "ffmpeg"
    script.write_text(
        "#!/bin/sh\n"
        f'if [ -e "{flag}" ]; then exec ffmpeg -onair-no-such-option "$@"; fi\n'
        'exec ffmpeg "$@"\n'
    )
    script.chmod(0o755)
    flag.touch()
    return script, flag


async def test_ffmpeg_crash_loop_backs_off_gives_up_and_recovers_on_next_publish(
    settings: Settings, serve_process: ServeProcess, tiny_flv: Path, tmp_path: Path
) -> None:
    script, flag = breakable_ffmpeg(tmp_path)
    settings = settings.with_changes(ffmpeg=str(script))
    async with running_nginx(settings):
        server = await serve_process(settings)
        public = f"http://127.0.0.1:{settings.http_port}"
        key = await create_channel(server.url, "crashy")
        url = f"rtmp://127.0.0.1:{settings.rtmp_port}/live/{key}"
        publisher = await push_file(tiny_flv, url)

        async def given_up() -> bool:
            # the ladder's line, logged once its failure is counted (the rung's comes first)
            return "ladder gave up channel=crashy" in server.log()

        await wait_until(given_up, 60, "the supervisor to give up on the channel")
        log = server.log()
        gave_up = next(ln for ln in log.splitlines() if "ffmpeg gave up channel=crashy" in ln)
        assert "reason=crashed" in gave_up and "onair-no-such-option" in gave_up
        rung = re.search(r"rung=(\w+)", gave_up)
        assert rung is not None  # each rung runs (and fails) in its own FFmpeg
        restarts = re.findall(
            rf"ffmpeg restarting channel=crashy rung={rung.group(1)} .*delay=([\d.]+)s", log
        )
        assert [float(d) for d in restarts] == [1.0, 2.0, 4.0, 8.0]  # backoff doubles
        _, metrics = await get_text(f"{server.url}/metrics")
        assert metric(metrics, "onair_transcoder_failed_total", channel="crashy") == 1
        restarted = metric(
            metrics, "onair_transcoder_restarts_total", channel="crashy", rung=rung.group(1)
        )
        assert restarted == 4
        assert not ffmpeg_pids(settings.media_root / "live")
        assert not await playable(public, "crashy")
        # Nobody can watch, so the next update hook (≤10 s) drops the streamer: OBS
        # reconnects by itself, and a new publish starts a fresh ladder.
        await asyncio.wait_for(publisher.wait(), 20)
        assert "publisher dropped channel=crashy reason=transcoder-failed" in server.log()

        # The cause goes away; the streamer reconnects, as OBS does.
        flag.unlink()

        async def offline() -> bool:
            return not await is_live(server.url, "crashy")

        await wait_until(offline, 20, "the channel to go offline")
        publisher = await push_file(tiny_flv, url)

        async def plays() -> bool:
            return await playable(public, "crashy")

        await wait_until(plays, LADDER_TIMEOUT, "the channel to play again")
        await stop_process(publisher, signal.SIGINT)
        assert server.alive


FLAPS = 50


async def test_publisher_flapping_50_times_leaves_no_process_or_fd_behind(
    settings: Settings, serve_process: ServeProcess, tiny_flv: Path
) -> None:
    async with running_nginx(settings) as prefix:
        server = await serve_process(settings)
        nginx_pid = int((prefix / "nginx.pid").read_text())
        public = f"http://127.0.0.1:{settings.http_port}"
        key = await create_channel(server.url, "flappy")
        url = f"rtmp://127.0.0.1:{settings.rtmp_port}/live/{key}"

        async def live() -> bool:
            return await is_live(server.url, "flappy")

        async def offline() -> bool:
            return not await is_live(server.url, "flappy") and not await transcoding()

        async def transcoding() -> bool:
            return bool(ffmpeg_pids(settings.media_root / "live"))

        async def quiet() -> bool:
            # Recorders finish and recordings compress in the background; then nothing runs.
            return not descendants(server.process.pid)

        baseline: dict[str, int] = {}
        for flap in range(FLAPS):
            publisher = await push_file(tiny_flv, url)
            await wait_until(live, 20, f"flap {flap} to go live", interval=0.05)
            if flap == FLAPS // 2:
                # Now and then the drop comes after the ladder started, mid-transcode.
                await wait_until(transcoding, 30, f"flap {flap} to start FFmpeg", interval=0.1)
            await get_text(f"{public}/hls/flappy/master.m3u8")  # a viewer looks in
            # Half leave cleanly, half vanish as a dropped connection does.
            await stop_process(publisher, signal.SIGINT if flap % 2 else signal.SIGKILL)
            await wait_until(offline, 20, f"flap {flap} to end", interval=0.05)
            if flap == 0:
                await wait_until(quiet, 60, "the first flap's children to finish")
                baseline = {"server": open_fds(server.process.pid), "nginx": nginx_fds(nginx_pid)}

        assert not ffmpeg_pids(settings.media_root / "live")
        await wait_until(quiet, 60, "every child of the server to finish")
        # A few descriptors of slack: pools and caches may open one or two more on first use.
        assert open_fds(server.process.pid) <= baseline["server"] + 4, baseline
        assert nginx_fds(nginx_pid) <= baseline["nginx"] + 4, baseline

        # And the channel can still go live and play.
        publisher = await push_file(tiny_flv, url)

        async def plays() -> bool:
            return await playable(public, "flappy")

        await wait_until(plays, LADDER_TIMEOUT, "the channel to play after the flapping")
        await stop_process(publisher, signal.SIGINT)
        await wait_until(offline, 20, "the channel to go offline at the end")
        log = server.log()
        assert not [ln for ln in log.splitlines() if "logger=onair" in ln and "Traceback" in ln]
        assert server.alive


def nginx_fds(master: int) -> int:
    """Descriptors held by nginx's master and its workers together."""
    return open_fds(master) + sum(open_fds(pid) for pid in descendants(master))
