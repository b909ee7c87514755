"""Media input faults: garbage on the RTMP port, nginx reloaded mid-stream, a big fast source."""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import socket
from pathlib import Path

import pytest

from server.ops import nginx
from server.settings import Settings
from tests.conftest import (
    ServeProcess,
    create_channel,
    ffmpeg_pids,
    get_json,
    get_text,
    running_nginx,
    stop_process,
    wait_until,
)
from tests.reliability.conftest import push_file
from tests.reliability.test_transcoder_faults import LADDER_TIMEOUT, playable

pytestmark = [pytest.mark.media, pytest.mark.slow]


async def segments(base: str, slug: str) -> list[str]:
    """Segment names of the channel's first variant playlist (empty when none)."""
    status, master = await get_text(f"{base}/hls/{slug}/master.m3u8")
    uris = [ln for ln in master.splitlines() if ln and not ln.startswith("#")]
    if status != 200 or not uris:
        return []
    status, variant = await get_text(f"{base}/hls/{slug}/{uris[0]}")
    return [ln for ln in variant.splitlines() if ln and not ln.startswith("#")]


async def reload_nginx(prefix: Path) -> None:
    """`nginx -s reload`: new workers with the same config, old ones finish their connections."""
    layout = nginx.NginxLayout(prefix)
    reload = await asyncio.create_subprocess_exec(
        nginx.nginx_binary(), "-p", str(prefix), "-c", str(layout.conf), "-s", "reload",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert await reload.wait() == 0


async def test_rtmp_garbage_then_a_real_stream_that_outlives_an_nginx_reload(
    settings: Settings, serve_process: ServeProcess, tiny_flv: Path, tmp_path: Path
) -> None:
    async with running_nginx(settings) as prefix:
        server = await serve_process(settings)
        public = f"http://127.0.0.1:{settings.http_port}"
        key = await create_channel(server.url, "noise")
        rng = random.Random(1935)

        def spray(payload: bytes) -> None:
            with socket.create_connection(("127.0.0.1", settings.rtmp_port), timeout=5) as sock:
                try:
                    sock.sendall(payload)
                    sock.settimeout(1)
                    sock.recv(4096)
                except OSError:
                    pass  # nginx may hang up on us: that is the point

        # Pure noise; a valid RTMP C0 version byte followed by noise; a huge chunk.
        payloads = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 5000)))
                    for _ in range(30)]  # fmt: skip
        payloads += [b"\x03" + bytes(rng.randrange(256) for _ in range(3072)) for _ in range(10)]
        payloads.append(b"\x03" + b"\x00" * 1536 + b"\xff" * 200_000)
        await asyncio.gather(*(asyncio.to_thread(spray, p) for p in payloads))

        # A publisher with a valid key whose stream is garbage: not FLV, just noise.
        garbage = tmp_path / "garbage.flv"
        garbage.write_bytes(b"FLV\x01\x05\x00\x00\x00\x09" + os.urandom(300_000))
        junk = await asyncio.create_subprocess_exec(
            "ffmpeg", "-hide_banner", "-loglevel", "quiet", "-nostdin",
            "-f", "data", "-i", str(garbage), "-map", "0", "-c", "copy",
            "-f", "flv", f"rtmp://127.0.0.1:{settings.rtmp_port}/live/{key}",
        )  # fmt: skip
        await asyncio.wait_for(junk.wait(), 60)

        async def offline_and_idle() -> bool:
            _, body = await get_json(f"{server.url}/api/channels/noise")
            return body["live"] is False and not ffmpeg_pids(settings.media_root / "live")

        await wait_until(offline_and_idle, 60, "the garbage session to end")
        # Then a real stream on the same channel plays.
        publisher = await push_file(tiny_flv, f"rtmp://127.0.0.1:{settings.rtmp_port}/live/{key}")

        async def plays() -> bool:
            return await playable(public, "noise")

        await wait_until(plays, LADDER_TIMEOUT, "a real stream to play after the noise")

        # nginx reloaded mid-stream (a config change, a certificate renewal).
        before = await segments(public, "noise")
        await reload_nginx(prefix)

        async def grew_twice() -> bool:
            now = await segments(public, "noise")
            return len([s for s in now if s not in before]) >= 2

        await wait_until(grew_twice, 30, "two new segments after the reload")
        assert publisher.returncode is None
        _, body = await get_json(f"{server.url}/api/channels/noise")
        assert body["live"] is True
        await stop_process(publisher, signal.SIGINT)
        assert server.alive
        log = server.log()
        assert not [ln for ln in log.splitlines() if "logger=onair" in ln and "Traceback" in ln]


async def test_1080p60_source_gets_every_rung_up_to_720p_and_none_above(
    settings: Settings, serve_process: ServeProcess, publish
) -> None:  # type: ignore[no-untyped-def]
    async with running_nginx(settings):
        server = await serve_process(settings)
        public = f"http://127.0.0.1:{settings.http_port}"
        key = await create_channel(server.url, "big")
        await publish(f"rtmp://127.0.0.1:{settings.rtmp_port}/live/{key}", size="1920x1080", fps=60)

        master = ""

        async def has_master() -> bool:
            nonlocal master
            status, master = await get_text(f"{public}/hls/big/master.m3u8")
            return status == 200 and "#EXT-X-STREAM-INF" in master

        await wait_until(has_master, LADDER_TIMEOUT, "the master playlist")
        heights = sorted(int(h) for h in re.findall(r"RESOLUTION=\d+x(\d+)", master))
        rates = {float(r) for r in re.findall(r"FRAME-RATE=([\d.]+)", master)}
        # Three HEVC rungs, capped at 720p, and the H.264 rung (the 1080p source remuxed).
        assert heights == [360, 480, 720, 1080], master
        assert max(rates) <= 60.0 and min(rates) > 0, master
        assert server.alive
