"""tus 1.0 against the real app: creation, offsets, termination, expiry, and every rejection
(too big, not a video, wrong token, no room) leaving nothing behind."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from server.settings import Settings
from tests.conftest import wait_until
from tests.recordings.conftest import tmpfs

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {**TUS, "Content-Type": "application/offset+octet-stream"}


async def channel_with_token(
    client: TestClient, admin: dict[str, str], slug: str
) -> dict[str, str]:
    """A channel and headers carrying its upload token."""
    response = await client.post("/api/channels", json={"slug": slug, "title": slug}, headers=admin)
    assert response.status == 201
    response = await client.post(f"/api/channels/{slug}/upload-token", headers=admin)
    assert response.status == 201
    return {**TUS, "Authorization": f"Bearer {(await response.json())['token']}"}


async def create(client: TestClient, slug: str, headers: dict[str, str], length: int) -> str:
    name = base64.b64encode(b"clip.mp4").decode()
    response = await client.post(
        f"/api/channels/{slug}/uploads",
        headers={**headers, "Upload-Length": str(length), "Upload-Metadata": f"filename {name}"},
    )
    assert response.status == 201, await response.text()
    assert response.headers["Tus-Resumable"] == "1.0.0"
    return response.headers["Location"]


def leftovers(settings: Settings) -> list[str]:
    """Anything left on the media volume under uploads/ and videos/."""
    root = settings.media_root
    return [str(p.relative_to(root)) for p in (root / "uploads").rglob("*")] + [
        str(p.relative_to(root)) for p in (root / "videos").rglob("*")
    ]


async def test_discovery_offsets_and_termination(
    client: TestClient, admin: dict[str, str], settings: Settings
) -> None:
    auth = await channel_with_token(client, admin, "disc")
    response = await client.options("/api/channels/disc/uploads")
    assert response.status == 204
    assert response.headers["Tus-Version"] == "1.0.0"
    assert "termination" in response.headers["Tus-Extension"]
    assert response.headers["Tus-Max-Size"] == str(1024 * 1024)

    url = await create(client, "disc", auth, 1000)
    response = await client.head(url, headers=auth)
    assert (response.status, response.headers["Upload-Offset"]) == (200, "0")
    assert response.headers["Upload-Length"] == "1000"
    assert response.headers["Cache-Control"] == "no-store"

    def at(offset: int | str) -> dict[str, str]:
        return {**OCTETS, **auth, "Upload-Offset": str(offset)}

    response = await client.patch(url, data=b"x" * 300, headers=at(0))
    assert response.status == 204
    assert response.headers["Upload-Offset"] == "300"
    assert "Upload-Expires" in response.headers
    # A stale offset (a client that missed our answer) is told where we are.
    response = await client.patch(url, data=b"y" * 10, headers=at(0))
    assert response.status == 409
    assert response.headers["Upload-Offset"] == "300"
    # Wrong body type, missing version, bad offset, past the end: 4xx, nothing written.
    response = await client.patch(url, data=b"z", headers={**at(300), "Content-Type": "text/plain"})
    assert response.status == 415
    response = await client.patch(url, data=b"z", headers={**at(300), "Tus-Resumable": "0.2"})
    assert response.status == 412 and response.headers["Tus-Version"] == "1.0.0"
    response = await client.patch(url, data=b"z", headers=at(-1))
    assert response.status == 400
    response = await client.patch(url, data=b"z" * 701, headers=at(300))
    assert response.status == 413
    response = await client.head(url, headers=auth)
    assert response.headers["Upload-Offset"] == "300"

    response = await client.get("/api/channels/disc/uploads", headers=auth)
    listing = await response.json()
    assert [(u["state"], u["received"], u["filename"]) for u in listing] == [
        ("receiving", 300, "clip.mp4")
    ]

    # Termination: the bytes go, the URL is gone.
    response = await client.delete(url, headers=auth)
    assert response.status == 204
    assert (await client.head(url, headers=auth)).status == 410
    assert (await client.patch(url, data=b"z", headers=at(300))).status == 410
    assert leftovers(settings) == []


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A 1 MiB upload limit, expiry after 2 s of silence, no recording reserve."""
    return settings.with_changes(
        upload_max_bytes=1024 * 1024, upload_expiry_s=2.0, recording_reserve_bytes=0
    )


async def test_oversize_is_refused_before_a_byte(
    client: TestClient, admin: dict[str, str], settings: Settings
) -> None:
    auth = await channel_with_token(client, admin, "big")
    response = await client.post(
        "/api/channels/big/uploads", headers={**auth, "Upload-Length": str(1024 * 1024 + 1)}
    )
    assert response.status == 413
    assert response.headers["Tus-Max-Size"] == str(1024 * 1024)
    assert "larger than the limit" in (await response.json())["error"]
    for bad in ("", "-5", "1e3", "0", "x" * 30):
        response = await client.post(
            "/api/channels/big/uploads", headers={**auth, "Upload-Length": bad}
        )
        assert response.status == 400, bad
    assert leftovers(settings) == []
    response = await client.get("/api/channels/big/uploads", headers=auth)
    assert await response.json() == []


async def test_wrong_token_is_refused(
    client: TestClient, admin: dict[str, str], settings: Settings
) -> None:
    auth = await channel_with_token(client, admin, "mine")
    other = await channel_with_token(client, admin, "other")
    wrong = {**TUS, "Authorization": "Bearer not-the-token-at-all"}
    for headers in (wrong, TUS, other):
        response = await client.post(
            "/api/channels/mine/uploads", headers={**headers, "Upload-Length": "10"}
        )
        assert response.status == 401
    url = await create(client, "mine", auth, 10)
    for headers in (wrong, other):
        response = await client.patch(
            url, data=b"0123456789", headers={**OCTETS, **headers, "Upload-Offset": "0"}
        )
        assert response.status == 401
        assert (await client.head(url, headers=headers)).status == 401
        assert (await client.delete(url, headers=headers)).status == 401
    response = await client.head(url, headers=auth)
    assert response.headers["Upload-Offset"] == "0"
    # The admin token works everywhere; a new upload token replaces the old one.
    admin_tus = {**TUS, **admin}
    assert (await client.head(url, headers=admin_tus)).status == 200
    await client.post("/api/channels/mine/upload-token", headers=admin)
    assert (await client.head(url, headers=auth)).status == 401
    assert (await client.delete(url, headers=admin_tus)).status == 204
    assert leftovers(settings) == []


async def test_non_video_is_rejected_and_deleted(
    client: TestClient, admin: dict[str, str], settings: Settings
) -> None:
    auth = await channel_with_token(client, admin, "junk")
    url = await create(client, "junk", auth, 100_000)
    response = await client.patch(
        url, data=os.urandom(100_000), headers={**OCTETS, **auth, "Upload-Offset": "0"}
    )
    assert response.status == 415
    assert "not a video file" in (await response.json())["error"]
    assert leftovers(settings) == []
    assert (await client.head(url, headers=auth)).status == 410
    response = await client.get("/api/channels/junk/uploads", headers=auth)
    (upload,) = await response.json()
    assert upload["state"] == "rejected" and "not a video" in upload["error"]
    assert await (await client.get("/api/channels/junk/videos")).json() == []


async def test_audio_only_file_is_rejected(
    client: TestClient, admin: dict[str, str], settings: Settings, tmp_path: Path
) -> None:
    """A real media file that is not a video: refused by the codec check, bytes deleted."""
    path = tmp_path / "tone.m4a"
    proc = await asyncio.create_subprocess_exec(
        "ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
        "sine=frequency=440:sample_rate=48000", "-t", "1", "-c:a", "aac", str(path),
    )  # fmt: skip
    assert await proc.wait() == 0
    data = await asyncio.to_thread(path.read_bytes)
    auth = await channel_with_token(client, admin, "tone")
    url = await create(client, "tone", auth, len(data))
    response = await client.patch(url, data=data, headers={**OCTETS, **auth, "Upload-Offset": "0"})
    assert response.status == 415
    assert (await response.json())["error"] == "the file has no video stream"
    assert leftovers(settings) == []


async def test_incomplete_upload_expires(
    client: TestClient, admin: dict[str, str], settings: Settings
) -> None:
    auth = await channel_with_token(client, admin, "slow")
    url = await create(client, "slow", auth, 1000)
    response = await client.patch(
        url, data=b"x" * 10, headers={**OCTETS, **auth, "Upload-Offset": "0"}
    )
    assert response.status == 204

    async def gone() -> bool:
        return (await client.head(url, headers=auth)).status == 410

    await wait_until(gone, 20, "the idle upload to expire")
    assert leftovers(settings) == []
    response = await client.get("/api/channels/slow/uploads", headers=auth)
    assert [u["state"] for u in await response.json()] == ["expired"]


@pytest.fixture
def small_volume() -> Iterator[Path]:
    with tmpfs("8m") as path:
        yield path


async def test_no_room_is_refused(
    small_volume: Path,
    settings: Settings,
    aiohttp_client,
    admin: dict[str, str],  # type: ignore[no-untyped-def]
) -> None:
    from server.app import create_app

    settings = settings.with_changes(media_dir=small_volume, upload_max_bytes=64 * 1024 * 1024)
    client = await aiohttp_client(create_app(settings))
    auth = await channel_with_token(client, admin, "full")
    response = await client.post(
        "/api/channels/full/uploads", headers={**auth, "Upload-Length": str(16 * 1024 * 1024)}
    )
    assert response.status == 507
    assert "not enough free space" in (await response.json())["error"]
    # Space promised to an upload in progress counts: two 5 MiB uploads do not fit in 8 MiB.
    await create(client, "full", auth, 5 * 1024 * 1024)
    response = await client.post(
        "/api/channels/full/uploads", headers={**auth, "Upload-Length": str(5 * 1024 * 1024)}
    )
    assert response.status == 507
    response = await client.get("/api/channels/full/uploads", headers=auth)
    assert len(await response.json()) == 1


@pytest.mark.media
async def test_complete_upload_left_unchecked_by_a_crash_is_finished(
    client: TestClient, admin: dict[str, str], settings: Settings, clip: Path
) -> None:
    """Every byte on disk, no answer to the last PATCH (the server died): housekeeping checks
    the file and queues the video, so the uploader's work is not lost to expiry."""
    auth = await channel_with_token(client, admin, "crash")
    data = await asyncio.to_thread(clip.read_bytes)
    url = await create(client, "crash", auth, len(data))
    uid = url.rsplit("/", 1)[1]
    # What the dead server left: the whole file written, the row still receiving.
    await asyncio.to_thread((settings.media_root / "uploads" / uid / "data").write_bytes, data)

    async def queued() -> bool:
        response = await client.get("/api/channels/crash/videos")
        return len(await response.json()) == 1

    await wait_until(queued, 20, "the stranded upload to become a video")
    response = await client.head(url, headers=auth)
    assert (response.status, response.headers["Upload-Offset"]) == (200, str(len(data)))
    (video,) = await (await client.get("/api/channels/crash/videos")).json()
    assert (await client.delete(f"/api/videos/{video['id']}", headers=auth)).status == 204
    assert leftovers(settings) == []


async def test_video_files_are_never_a_path(client: TestClient, admin: dict[str, str]) -> None:
    await channel_with_token(client, admin, "files")
    for path in (
        "/videos/files/0190a1b2c3d4e5f6a7b8/master.m3u8",  # no such video
        "/videos/files/0190a1b2c3d4e5f6a7b8/..%2f..%2fcanary.txt",
        "/videos/files/..%2f..%2f/master.m3u8",
        "/videos/files/0190a1b2c3d4e5f6a7b8/h264/..%2findex.m3u8",
        "/videos/FILES/0190a1b2c3d4e5f6a7b8/poster.jpg",
    ):
        response = await client.get(path)
        assert response.status == 404, path
        assert "error" in await response.json()
    assert (await client.delete("/api/videos/0190a1b2c3d4e5f6a7b8", headers=admin)).status == 404
    assert (await client.delete("/api/videos/nope", headers=admin)).status == 404


async def test_an_upload_naming_a_file_on_our_disk_is_rejected_without_opening_it(
    client: TestClient, admin: dict[str, str], settings: Settings, tmp_path: Path
) -> None:
    """An HLS playlist uploaded as a video: ffprobe detects it by content and opens the
    segments it names. FFmpeg already refuses URLs inside a local playlist (nested opens get
    file,crypto,data), but a path on our disk (another channel's upload, a recording) was
    opened. A FIFO stands in for that file: opening it for writing succeeds only while
    someone has it open for reading."""
    private = tmp_path / "private.ts"
    os.mkfifo(private)
    playlist = (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n"
        f"#EXTINF:2.0,\n{private}\n#EXT-X-ENDLIST\n" + "\n" * 64
    ).encode()
    opened = asyncio.Event()

    async def watch() -> None:
        while True:
            try:
                fd = os.open(private, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: nobody reads it
                await asyncio.sleep(0.005)
                continue
            opened.set()
            os.close(fd)  # the reader sees the end of the file
            return

    watcher = asyncio.create_task(watch())
    auth = await channel_with_token(client, admin, "ssrf")
    url = await create(client, "ssrf", auth, len(playlist))
    headers = {**OCTETS, **auth, "Upload-Offset": "0"}
    response = await client.patch(url, data=playlist, headers=headers)
    await asyncio.sleep(0.2)
    watcher.cancel()
    assert response.status == 415, await response.text()
    assert not opened.is_set(), "ffprobe opened a file the upload named"
    assert "not a video file" in (await response.json())["error"]
    assert leftovers(settings) == []
    assert await (await client.get("/api/channels/ssrf/videos")).json() == []
