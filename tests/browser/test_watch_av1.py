"""An AV1 ladder from settings: the FFmpeg the server runs, what it writes, and Chromium on it.

The ladder comes from a TOML [ladder] table with one value overridden by the environment,
as an operator would configure it; nothing here builds a LadderConfig by hand.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, Request

from server.settings import Settings, load_settings
from tests.browser.conftest import ARTIFACTS, new_channel, open_page
from tests.browser.test_watch_live import wait_playing
from tests.conftest import LiveStack, ffmpeg_pids
from tests.media.test_live_path import fetch, ffprobe_video, wait_master

pytestmark = [pytest.mark.media, pytest.mark.slow]

LADDER_TOML = """
[ladder]
codecs = ["av1"]
rungs = "720:2500,480:1200,360:700"
av1_preset = 11
segment_seconds = 1

[ladder.av1]
rungs = ["720:1800", "480:900", "360:500"]
"""


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """The test stack's settings with the ladder an operator's onair.toml + env ask for."""
    path = tmp_path / "onair.toml"
    path.write_text(LADDER_TOML)
    configured = load_settings(path, {"ONAIR_AV1_PRESET": "12"})  # the environment wins
    return settings.with_changes(
        ladder_codecs=configured.ladder_codecs,
        ladder_rungs=configured.ladder_rungs,
        av1_rungs=configured.av1_rungs,
        av1_preset=configured.av1_preset,
        segment_seconds=configured.segment_seconds,
    )


def av1_codec_from_init(init: bytes) -> str:
    """av01.P.LLT.DD from the av1C box SVT-AV1 wrote (AV1 ISOBMFF binding, section 2.3)."""
    at = init.index(b"av1C") + 4
    marker_version, profile_level, flags = init[at], init[at + 1], init[at + 2]
    assert marker_version == 0x81, hex(marker_version)
    profile, level = profile_level >> 5, profile_level & 0x1F
    tier = "H" if flags & 0x80 else "M"
    depth = 12 if flags & 0x20 else 10 if flags & 0x40 else 8
    return f"av01.{profile}.{level:02d}{tier}.{depth:02d}"


def argv_of(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


async def test_av1_ladder_from_settings_plays_in_chromium_on_an_av1_rung(
    live_stack: LiveStack,
    publish,  # type: ignore[no-untyped-def]
    browser: Browser,
    tmp_path: Path,
) -> None:
    key = await new_channel(live_stack, "anime")
    # 15 fps: three SVT-AV1 rungs, the publisher's encoder and Chromium's software AV1
    # decoder share 2 cores; at 30 fps the ladder ran at 0.62x and shed its 720p rung before
    # the page read the Quality menu (seen in CI), which this test needs to see.
    await publish(live_stack.rtmp(key), size="1280x720", fps=15)
    found = await wait_master(live_stack, "anime", 4)

    # The FFmpeg the server runs is the one the settings describe.
    pids = ffmpeg_pids(live_stack.settings.media_root / "live" / "anime")
    assert len(pids) == 4, pids  # one FFmpeg per rung
    argvs = [argv_of(pid) for pid in pids]
    av1 = [argv for argv in argvs if "libsvtav1" in argv]
    assert len(av1) == 3 and not any("libx265" in argv for argv in argvs)
    assert {argv[argv.index("-preset:v:0") + 1] for argv in av1} == {"12"}
    # capped quality under each rung's cap, 1.5x the [ladder.av1] rates (not [ladder] rates)
    assert {argv[argv.index("-crf:v:0") + 1] for argv in av1} == {"23"}
    assert sorted(argv[argv.index("-maxrate:v:0") + 1] for argv in av1) == [
        "1350k",
        "2700k",
        "750k",
    ]
    assert {argv[argv.index("-hls_time") + 1] for argv in argvs} == {"1"}

    codecs = sorted(attrs["CODECS"].split(",")[0].split(".")[0] for attrs, _ in found)
    assert codecs == ["av01", "av01", "av01", "avc1"]
    for attrs, uri in found:
        folder = uri.rsplit("/", 1)[0]
        _, body, _ = await fetch(live_stack, f"/hls/anime/{uri}")
        playlist = body.decode()
        durations = [float(d) for d in re.findall(r"#EXTINF:([\d.]+),", playlist)]
        init_uri = re.search(r'#EXT-X-MAP:URI="([^"]+)"', playlist)
        segment = next(ln for ln in playlist.splitlines() if ln and not ln.startswith("#"))
        assert init_uri is not None
        _, init, _ = await fetch(live_stack, f"/hls/anime/{folder}/{init_uri.group(1)}")
        _, media, _ = await fetch(live_stack, f"/hls/anime/{folder}/{segment}")
        codec, height = await ffprobe_video(init + media, tmp_path)
        declared = attrs["CODECS"].split(",")[0]
        if declared.startswith("av01"):
            assert max(durations) <= 1.1, durations  # one-second segments, from [ladder]
            assert declared == av1_codec_from_init(init), folder
            assert (codec, height) == ("av1", int(attrs["RESOLUTION"].split("x")[1]))
        else:
            assert codec == "h264"

    av1_segments: list[str] = []

    def note(request: Request) -> None:
        if re.search(r"/hls/anime/\d+av1/[^/]+\.m4s$", request.url):
            av1_segments.append(request.url)

    watched = await open_page(browser, f"{live_stack.http}/watch/anime")
    watched.page.on("request", note)
    await wait_playing(watched.page)
    codec_attr = await watched.page.get_attribute("#player", "data-codec")
    assert codec_attr is not None and codec_attr.startswith("av01"), codec_attr
    assert av1_segments, "the player fetched no segment from an AV1 rung"
    quality = watched.page.get_by_label("Quality", exact=True)
    options = await quality.locator("option").all_inner_texts()
    # the copied H.264 rung is 720p too: the menu tells the two apart by codec
    assert {"720p AV1", "720p H.264", "480p", "360p"} <= set(options), options
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await quality.select_option(label="360p")  # a rung picked by hand stays on AV1
    await wait_playing(watched.page)
    assert await watched.page.get_attribute("#player", "data-height") == "360"
    codec_attr = await watched.page.get_attribute("#player", "data-codec")
    assert codec_attr is not None and codec_attr.startswith("av01"), codec_attr
    await watched.page.screenshot(path=ARTIFACTS / "watch-av1.png")
    # The channel list's still comes from the cheapest variant, an AV1 one here.
    listing = await open_page(browser, f"{live_stack.http}/")
    await listing.page.wait_for_function(
        "() => document.querySelector('#channel-list img').naturalWidth > 0", timeout=20_000
    )
    for page in (watched, listing):
        assert await page.problems() == []
