"""Relays against a real "platform" (a second nginx-rtmp) and a real FFmpeg publisher."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any

import aiohttp
import pytest

from bench.harness import ffmpeg_pids, wait_until
from bench.rtmp_platform import Platform
from server.channels.store import CHANNELS
from tests.conftest import ADMIN, LiveStack, get_text

pytestmark = [pytest.mark.media]

LIVE_TIMEOUT = 60.0  # publish, the relay's probe of the source, the platform's handshake
KEY = "yt-AbC1-dEf2_gHi3.jKl4"  # what a platform's stream key looks like


async def call(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, json=body, headers=ADMIN) as response,
    ):
        text = await response.text()
        return response.status, json.loads(text) if text else None


async def add(base: str, slug: str, name: str, server: str, key: str = KEY) -> dict[str, Any]:
    """A destination through the API at `base` (the server's address)."""
    status, made = await call(
        "POST",
        f"{base}/api/channels/{slug}/destinations",
        {"name": name, "server": server, "key": key},
    )
    assert status == 201, made
    return dict(made)


async def destination(base: str, slug: str, destination_id: int) -> dict[str, Any]:
    status, found = await call("GET", f"{base}/api/channels/{slug}/destinations")
    assert status == 200, found
    return next(d for d in found if d["id"] == destination_id)


async def wait_state(
    base: str, slug: str, destination_id: int, state: str, timeout: float = LIVE_TIMEOUT
) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def reached() -> bool:
        nonlocal seen
        seen = await destination(base, slug, destination_id)
        return seen["state"] == state

    await wait_until(reached, timeout, f"destination {destination_id} {state} (last: {seen})")
    return seen


async def probe(url: str) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        "ffprobe", "-v", "error", "-rw_timeout", "15000000", "-show_streams",
        "-of", "json", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-500:]
    return dict(json.loads(out))


async def process_list_of_another_user() -> str:
    """Every process's full command line as user nobody reads them (`ps` reads /proc)."""
    drop = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    proc = await asyncio.create_subprocess_exec(
        *(drop if os.geteuid() == 0 else []), "ps", "-eww", "-o", "args=",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    return out.decode(errors="replace")


def relay_pids(slug: str) -> list[int]:
    return ffmpeg_pids(f"onair-relay-{slug}-")


async def test_a_live_channel_reaches_the_platform_with_its_key_and_source_untouched(
    live_stack: LiveStack, platform: Platform, publish, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    stack = live_stack
    _, stream_key = await stack.app[CHANNELS].create("relayed", "Relayed")
    made = await add(stack.http, "relayed", "YouTube", platform.server())
    assert made["key"] == "****jKl4" and made["state"] == "idle" and made["enabled"] is True

    await publish(stack.rtmp(stream_key), size="640x360", fps=30)
    live = await wait_state(stack.http, "relayed", made["id"], "live")
    assert live["last_error"] is None

    # The platform receives the stream under the key, as the streamer typed it.
    async def arrived() -> bool:
        return KEY in await platform.streams()

    await wait_until(arrived, LIVE_TIMEOUT, "the stream on the platform under its key")
    streams = (await probe(platform.play_url(KEY)))["streams"]
    video = next(s for s in streams if s["codec_type"] == "video")
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 640, 360)
    assert video["r_frame_rate"] in ("30/1", "60/2")
    assert any(s["codec_type"] == "audio" and s["codec_name"] == "aac" for s in streams)

    # Bytes are counted, in the API and the metrics; the relay is up.
    await wait_until(
        lambda: _grew(stack.http, "relayed", made["id"]), 30, "bytes_sent to grow past 100 kB"
    )
    _, metrics = await get_text(f"http://127.0.0.1:{stack.settings.server_port}/metrics")
    up = f'onair_relay_up{{channel="relayed",destination="{made["id"]}"}} 1.0'
    assert up in metrics
    sent = f'onair_relay_sent_bytes_total{{channel="relayed",destination="{made["id"]}"}}'
    assert sent in metrics

    # The key is nowhere: not in the process list as another local user sees it, the
    # metrics, the API or the log.
    assert len(relay_pids("relayed")) == 1
    processes = await process_list_of_another_user()
    assert "onair-relay-relayed-" in processes  # the relay is in the list...
    assert KEY not in processes  # ...without its key
    assert KEY not in metrics
    _, listed = await call("GET", f"{stack.http}/api/channels/relayed/destinations")
    assert KEY not in json.dumps(listed)
    assert KEY not in caplog.text
    assert stream_key not in caplog.text


async def _grew(base: str, slug: str, destination_id: int) -> bool:
    return (await destination(base, slug, destination_id))["bytes_sent"] > 100_000


def playlists(stack: LiveStack, slug: str) -> dict[str, str]:
    """Every rung's media playlist of the channel, as on disk."""
    folder = stack.settings.media_root / "live" / slug
    return {p.parent.name: p.read_text() for p in folder.glob("*/index.m3u8")}


async def test_a_dead_platform_fails_alone_and_is_rejoined_while_hls_and_recording_go_on(
    live_stack: LiveStack, platform: Platform, platforms, publish
) -> None:  # type: ignore[no-untyped-def]
    stack = live_stack
    second_platform = await platforms()
    _, stream_key = await stack.app[CHANNELS].create("steady", "Steady")
    dies = await add(stack.http, "steady", "Dies", platform.server())
    stays = await add(stack.http, "steady", "Stays", second_platform.server(), key="second-key-42")
    await publish(stack.rtmp(stream_key), size="640x360", fps=30)
    await wait_state(stack.http, "steady", dies["id"], "live")
    await wait_state(stack.http, "steady", stays["id"], "live")

    async def rungs_playing() -> bool:
        found = playlists(stack, "steady")
        return len(found) >= 2 and all(text.count("#EXTINF") >= 2 for text in found.values())

    await wait_until(rungs_playing, 120, "every rung's playlist with segments")
    recordings = stack.settings.media_root / "recordings" / "steady"
    before_outage = (await second_platform.streams())["second-key-42"]

    await platform.kill()
    failing = await wait_state(stack.http, "steady", dies["id"], "failing")
    assert failing["last_error"], failing
    assert KEY not in failing["last_error"]

    # The other destination keeps receiving while the first one is down.
    async def second_still_receives() -> bool:
        return (await second_platform.streams()).get("second-key-42", 0) > before_outage + 50_000

    await wait_until(second_still_receives, 30, "the second platform to keep receiving")
    assert (await destination(stack.http, "steady", stays["id"]))["state"] == "live"

    await platform.start()  # the platform is back, on the same address
    back = await wait_state(stack.http, "steady", dies["id"], "live", timeout=90)
    assert back["since"] > failing["since"]

    async def arrived_again() -> bool:
        return KEY in await platform.streams()

    await wait_until(arrived_again, 30, "the stream on the platform again")
    # Meanwhile viewers noticed nothing: no rung restarted, the recording is still one part.
    for rung, text in playlists(stack, "steady").items():
        assert "#EXT-X-DISCONTINUITY" not in text.splitlines(), rung
    assert [p.name for p in recordings.glob("*/part-*.ts")] == ["part-0001.ts"]
    assert len(relay_pids("steady")) == 2
