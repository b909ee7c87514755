"""The live path end to end: OBS-style RTMP push → nginx-rtmp → hooks → FFmpeg ladder → HLS."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from pathlib import Path

import aiohttp
import pytest

from server.channels.store import CHANNELS
from server.live.streams import STREAMS
from tests.conftest import LiveStack, ffmpeg_pids, wait_until

pytestmark = [pytest.mark.media, pytest.mark.slow]

LADDER_TIMEOUT = 120.0  # the H.265 ladder runs slower than real time on 2 shared cores


async def fetch(stack: LiveStack, path: str) -> tuple[int, bytes, dict[str, str]]:
    async with aiohttp.ClientSession() as session, session.get(stack.http + path) as response:
        return response.status, await response.read(), dict(response.headers)


def variants(master: str) -> list[tuple[dict[str, str], str]]:
    """(attributes, uri) per #EXT-X-STREAM-INF."""
    lines = master.splitlines()
    out = []
    for i, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            attrs = dict(
                (m.group(1), m.group(2).strip('"'))
                for m in re.finditer(r'([A-Z-]+)=("[^"]*"|[^,]*)', line.split(":", 1)[1])
            )
            out.append((attrs, lines[i + 1]))
    return out


async def ffprobe_video(data: bytes, tmp: Path) -> tuple[str, int]:
    """Codec name and height of the first video stream in init + segment bytes."""
    path = tmp / "probe.mp4"
    path.write_bytes(data)
    proc = await asyncio.create_subprocess_exec(
        "ffprobe",
        "-v",
        "error",
        "-select_streams",
        "v:0",
        "-show_entries",
        "stream=codec_name,height",
        "-of",
        "json",
        str(path),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    stream = json.loads(out)["streams"][0]
    return stream["codec_name"], int(stream["height"])


async def new_channel(stack: LiveStack, slug: str) -> str:
    _, key = await stack.app[CHANNELS].create(slug, slug.title())
    return key


async def wait_master(stack: LiveStack, slug: str, count: int) -> list[tuple[dict[str, str], str]]:
    found: list[tuple[dict[str, str], str]] = []

    async def ready() -> bool:
        nonlocal found
        status, body, _ = await fetch(stack, f"/hls/{slug}/master.m3u8")
        if status != 200:
            return False
        found = variants(body.decode())
        if len(found) != count:
            return False
        for _, uri in found:
            status, playlist, _ = await fetch(stack, f"/hls/{slug}/{uri}")
            if status != 200 or b"#EXTINF" not in playlist:
                return False
        return True

    await wait_until(ready, LADDER_TIMEOUT, f"a master playlist with {count} playable variants")
    return found


async def test_720p_push_gives_three_hevc_rungs_and_one_h264(
    live_stack: LiveStack,
    publish,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    key = await new_channel(live_stack, "main")
    await publish(live_stack.rtmp(key), size="1280x720")
    found = await wait_master(live_stack, "main", 4)

    codecs = sorted(attrs["CODECS"].split(",")[0].split(".")[0] for attrs, _ in found)
    assert codecs == ["avc1", "hvc1", "hvc1", "hvc1"]
    for attrs, uri in found:
        for name in ("BANDWIDTH", "RESOLUTION", "CODECS", "FRAME-RATE"):
            assert name in attrs, (name, attrs)
        declared_height = int(attrs["RESOLUTION"].split("x")[1])
        folder = uri.rsplit("/", 1)[0]
        _, playlist, headers = await fetch(live_stack, f"/hls/main/{uri}")
        assert "no-cache" in headers["Cache-Control"]
        text = playlist.decode()
        assert "#EXT-X-PROGRAM-DATE-TIME" in text
        init_name = re.search(r'#EXT-X-MAP:URI="([^"]+)"', text)
        assert init_name is not None
        segment = next(ln for ln in text.splitlines() if ln and not ln.startswith("#"))
        status, init, init_headers = await fetch(
            live_stack, f"/hls/main/{folder}/{init_name.group(1)}"
        )
        assert status == 200
        assert "immutable" in init_headers["Cache-Control"]  # each run names its own init
        status, media, _ = await fetch(live_stack, f"/hls/main/{folder}/{segment}")
        assert status == 200
        codec, height = await ffprobe_video(init + media, tmp_path)
        expected = "hevc" if attrs["CODECS"].startswith("hvc1") else "h264"
        assert (codec, height) == (expected, declared_height)
    assert live_stack.app[STREAMS].started_at("main") is not None


async def test_small_source_is_never_upscaled(
    live_stack: LiveStack,
    publish,  # type: ignore[no-untyped-def]
) -> None:
    key = await new_channel(live_stack, "small")
    await publish(live_stack.rtmp(key), size="854x480")
    found = await wait_master(live_stack, "small", 3)
    heights = sorted(int(a["RESOLUTION"].split("x")[1]) for a, _ in found)
    assert max(heights) <= 480
    assert 720 not in heights


async def test_wrong_key_and_second_publisher_are_rejected(
    live_stack: LiveStack,
    publish,  # type: ignore[no-untyped-def]
) -> None:
    key = await new_channel(live_stack, "solo")
    wrong = await publish(live_stack.rtmp("definitely-not-a-key"), size="320x240")
    assert await asyncio.wait_for(wrong.process.wait(), 30) != 0
    assert not (live_stack.settings.media_root / "live" / "definitely-not-a-key").exists()
    assert list((live_stack.settings.media_root / "live").iterdir()) == []

    first = await publish(live_stack.rtmp(key), size="320x240")

    async def is_live() -> bool:
        return live_stack.app[STREAMS].started_at("solo") is not None

    await wait_until(is_live, 30, "the channel to go live")
    second = await publish(live_stack.rtmp(key), size="320x240")
    assert await asyncio.wait_for(second.process.wait(), 30) != 0
    assert first.process.returncode is None


async def test_rotate_key_drops_publisher_and_leaving_ends_playlists(
    live_stack: LiveStack,
    publish,
    admin: dict[str, str],  # type: ignore[no-untyped-def]
) -> None:
    key = await new_channel(live_stack, "rotate")
    publisher = await publish(live_stack.rtmp(key), size="320x240")
    await wait_master(live_stack, "rotate", 2)
    media_dir = live_stack.settings.media_root
    assert ffmpeg_pids(media_dir)

    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{live_stack.http}/api/channels/rotate/rotate-key", headers=admin
        ) as response,
    ):
        assert response.status == 200
    # nginx re-checks the key every 10 s: the publisher is dropped within 15 s.
    await asyncio.wait_for(publisher.process.wait(), 15)

    async def offline_and_ended() -> bool:
        if live_stack.app[STREAMS].started_at("rotate") is not None or ffmpeg_pids(media_dir):
            return False
        playlists = list((media_dir / "live" / "rotate").glob("*/index.m3u8"))
        return bool(playlists) and all(
            p.read_text().rstrip().endswith("#EXT-X-ENDLIST") for p in playlists
        )

    await wait_until(offline_and_ended, 30, "ENDLIST, offline and no FFmpeg")


async def test_killed_ffmpeg_comes_back_and_playlist_continues(
    live_stack: LiveStack,
    publish,  # type: ignore[no-untyped-def]
) -> None:
    key = await new_channel(live_stack, "phoenix")
    await publish(live_stack.rtmp(key), size="320x240")
    found = await wait_master(live_stack, "phoenix", 2)
    media_dir = live_stack.settings.media_root
    uri = found[0][1]
    rung = uri.split("/", 1)[0]
    channel_dir = media_dir / "live" / "phoenix"
    pids = ffmpeg_pids(media_dir)
    assert len(pids) == len(found)  # one FFmpeg per rung
    # Each runs in its own rendition folder, so nothing it writes leaves the channel's tree.
    cwd = {Path(os.readlink(f"/proc/{p}/cwd")): p for p in pids}
    assert {folder.parent for folder in cwd} == {channel_dir}
    pid = cwd[channel_dir / rung]
    _, before, _ = await fetch(live_stack, f"/hls/phoenix/{uri}")
    before_segments = [ln for ln in before.decode().splitlines() if ln and not ln.startswith("#")]

    os.kill(pid, signal.SIGKILL)

    async def back_and_growing() -> bool:
        now = ffmpeg_pids(media_dir)
        if len(now) != len(pids) or pid in now:
            return False
        _, after, _ = await fetch(live_stack, f"/hls/phoenix/{uri}")
        text = after.decode()
        segments = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
        return "#EXT-X-DISCONTINUITY" in text and segments[-1] not in before_segments

    await wait_until(back_and_growing, LADDER_TIMEOUT, "a new FFmpeg and new segments")


async def test_no_stream_key_anywhere_after_a_session(
    live_stack: LiveStack,
    publish,
    caplog,  # type: ignore[no-untyped-def]
) -> None:
    caplog.set_level("DEBUG")
    key = await new_channel(live_stack, "secret")
    publisher = await publish(live_stack.rtmp(key), size="320x240")
    await wait_master(live_stack, "secret", 2)
    await publisher.stop()

    async def offline() -> bool:
        return live_stack.app[STREAMS].started_at("secret") is None

    await wait_until(offline, 30, "the channel to go offline")
    assert key not in caplog.text
    for path in live_stack.settings.media_root.rglob("*"):
        assert key not in str(path)
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path
    _, metrics, _ = await fetch(live_stack, "/metrics")
    assert key.encode() not in metrics
    assert key.encode() not in (live_stack.nginx_prefix / "nginx-error.log").read_bytes()
