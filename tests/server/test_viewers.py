"""Playlists through the server and the viewer count they drive."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.settings import Settings
from tests.conftest import wait_until

MASTER = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\n360p/index.m3u8\n"
MEDIA = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg_1.m4s\n"


def write_stream(media_dir: Path, slug: str) -> None:
    folder = media_dir / "live" / slug / "360p"
    folder.mkdir(parents=True)
    (folder.parent / "master.m3u8").write_text(MASTER)
    (folder / "index.m3u8").write_text(MEDIA)


@pytest.fixture
async def short_client(aiohttp_client, settings: Settings) -> TestClient:  # type: ignore[no-untyped-def]
    """An app whose viewer sessions end after 1 s of silence."""
    app: web.Application = create_app(settings.with_changes(viewer_session_seconds=1.0))
    return await aiohttp_client(app)


async def viewers(client: TestClient, slug: str) -> int:
    response = await client.get(f"/api/channels/{slug}")
    assert response.status == 200
    return int((await response.json())["viewers"])


async def test_playlists_are_served_uncached(client: TestClient, media_dir: Path) -> None:
    write_stream(media_dir, "show")
    master = await client.get("/hls/show/master.m3u8")
    assert master.status == 200
    assert await master.text() == MASTER
    assert master.headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert "no-cache" in master.headers["Cache-Control"]
    media = await client.get("/hls/show/360p/index.m3u8")
    assert await media.text() == MEDIA


@pytest.mark.parametrize(
    "path",
    [
        "/hls/../etc/master.m3u8",
        "/hls/%2e%2e/master.m3u8",
        "/hls/..%2f..%2fetc/master.m3u8",
        "/hls/UPPER/master.m3u8",
        "/hls/show/..%2f..%2f/index.m3u8",
        "/hls/show/360P/index.m3u8",
        "/hls/nothing/master.m3u8",
        "/hls/show/720p/index.m3u8",
    ],
)
async def test_bad_or_missing_playlists_are_404(
    client: TestClient, media_dir: Path, path: str
) -> None:
    write_stream(media_dir, "show")
    (media_dir / "secret.m3u8").write_text("#EXTM3U secret")
    response = await client.get(path)
    assert response.status == 404
    assert "secret" not in await response.text()


async def test_viewer_count_rises_and_falls(
    short_client: TestClient, media_dir: Path, admin: dict[str, str]
) -> None:
    client = short_client
    created = await client.post("/api/channels", json={"slug": "show"}, headers=admin)
    assert created.status == 201
    write_stream(media_dir, "show")

    async def wait_for_count(expected: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while (count := await viewers(client, "show")) != expected:
            assert loop.time() < deadline, f"viewers stayed {count}, expected {expected}"
            for player in range(expected):
                headers = {"User-Agent": f"player-{player}"}
                await client.get("/hls/show/360p/index.m3u8", headers=headers)
            await asyncio.sleep(0.2)

    await wait_for_count(3)
    # The players stop fetching: their sessions expire and the count falls to zero.
    await wait_for_count(0)


async def test_viewer_counts_are_shared_through_redis(
    aiohttp_client,  # type: ignore[no-untyped-def]
    settings: Settings,
    media_dir: Path,
    redis_url: str,
    admin: dict[str, str],
) -> None:
    shared = settings.with_changes(redis_url=redis_url, viewer_session_seconds=2.0)
    first = await aiohttp_client(create_app(shared))
    second = await aiohttp_client(create_app(shared))
    assert (await first.post("/api/channels", json={"slug": "show"}, headers=admin)).status == 201
    write_stream(media_dir, "show")

    async def counts_agree(expected: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while True:
            seen = (await viewers(first, "show"), await viewers(second, "show"))
            if seen == (expected, expected):
                return
            assert loop.time() < deadline, f"hosts saw {seen}, expected {expected} on both"
            # Two players on the first host, one on the second.
            if expected:
                for client, player in ((first, "a"), (first, "b"), (second, "c")):
                    await client.get("/hls/show/360p/index.m3u8", headers={"User-Agent": player})
            await asyncio.sleep(0.2)

    await counts_agree(3)
    await counts_agree(0)


def set_mtime(path: Path, mtime_ns: int) -> None:
    os.utime(path, ns=(mtime_ns, mtime_ns))


async def fetch_media(client: TestClient) -> str:
    response = await client.get("/hls/show/360p/index.m3u8")
    assert response.status == 200
    return await response.text()


async def test_a_playlist_replaced_by_rename_is_served_fresh(
    client: TestClient, media_dir: Path
) -> None:
    write_stream(media_dir, "show")
    playlist = media_dir / "live" / "show" / "360p" / "index.m3u8"
    hour_ago = time.time_ns() - 3600 * 10**9
    set_mtime(playlist, hour_ago)  # old enough to be cached
    assert await fetch_media(client) == MEDIA
    assert await fetch_media(client) == MEDIA
    for n in range(2, 5):
        # As the transcoder writes: a temporary file renamed over the playlist. Even with the
        # same size and mtime as before, the new inode tells the server it is new content.
        fresh = MEDIA.replace("seg_1", f"seg_{n}")
        temporary = playlist.with_suffix(".tmp")
        temporary.write_text(fresh)
        set_mtime(temporary, hour_ago)
        temporary.rename(playlist)
        assert await fetch_media(client) == fresh


async def test_a_playlist_rewritten_in_place_is_served_fresh(
    client: TestClient, media_dir: Path
) -> None:
    write_stream(media_dir, "show")
    playlist = media_dir / "live" / "show" / "360p" / "index.m3u8"
    set_mtime(playlist, time.time_ns() - 3600 * 10**9)
    assert await fetch_media(client) == MEDIA
    # Same size, same inode, written now: the new mtime tells.
    playlist.write_text(MEDIA.replace("seg_1", "seg_2"))
    assert await fetch_media(client) == MEDIA.replace("seg_1", "seg_2")
    # Rewritten again within one timestamp tick (same mtime, same size, same inode): a file
    # this recent is never trusted from the cache.
    stamp = playlist.stat().st_mtime_ns
    playlist.write_text(MEDIA.replace("seg_1", "seg_3"))
    set_mtime(playlist, stamp)
    assert await fetch_media(client) == MEDIA.replace("seg_1", "seg_3")


async def test_a_removed_playlist_is_404(client: TestClient, media_dir: Path) -> None:
    write_stream(media_dir, "show")
    playlist = media_dir / "live" / "show" / "360p" / "index.m3u8"
    set_mtime(playlist, time.time_ns() - 3600 * 10**9)
    assert await fetch_media(client) == MEDIA
    playlist.unlink()
    assert (await client.get("/hls/show/360p/index.m3u8")).status == 404


async def test_a_session_counts_only_once_it_keeps_fetching(
    client: TestClient, media_dir: Path, admin: dict[str, str]
) -> None:
    assert (await client.post("/api/channels", json={"slug": "show"}, headers=admin)).status == 201
    write_stream(media_dir, "show")
    # One address inventing a User-Agent per request: every request served, none counted.
    for n in range(200):
        response = await client.get("/hls/show/360p/index.m3u8", headers={"User-Agent": f"ua-{n}"})
        assert response.status == 200
    # A real player elsewhere: the master, then its media playlist again and again.
    player = {"User-Agent": "hls.js", "X-Forwarded-For": "198.51.100.1"}
    assert (await client.get("/hls/show/master.m3u8", headers=player)).status == 200
    for _ in range(3):
        assert (await client.get("/hls/show/360p/index.m3u8", headers=player)).status == 200
    await wait_for_viewers(client, "show", 1)


async def test_one_address_counts_for_a_household_and_is_always_served(
    client: TestClient, media_dir: Path, admin: dict[str, str], settings: Settings
) -> None:
    assert (await client.post("/api/channels", json={"slug": "show"}, headers=admin)).status == 201
    write_stream(media_dir, "show")
    bound = settings.viewer_sessions_per_address
    # Behind one carrier-grade NAT: far more players than the bound, every one served.
    crowd = [{"User-Agent": f"phone-{n}", "X-Forwarded-For": "203.0.113.7"} for n in range(60)]
    # An IPv6 subscriber's addresses are one address: its /64.
    home = [
        {"User-Agent": f"tv-{n}", "X-Forwarded-For": f"2001:db8:7::{n + 1:x}"} for n in range(30)
    ]
    elsewhere = [{"User-Agent": "phone-0", "X-Forwarded-For": "198.51.100.9"}]
    for _ in range(3):
        for headers in crowd + home + elsewhere:
            response = await client.get("/hls/show/360p/index.m3u8", headers=headers)
            assert response.status == 200
    await wait_for_viewers(client, "show", 2 * bound + 1)


async def wait_for_viewers(client: TestClient, slug: str, expected: int) -> None:
    """The count the API shows reaches `expected` (it is refreshed every sweep)."""

    async def shown() -> bool:
        return await viewers(client, slug) == expected

    await wait_until(shown, 10, f"the viewer count to show {expected}")
