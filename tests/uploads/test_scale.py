"""Uploads at size and in numbers: 1 GB streams through `onair serve` with flat memory, and
20 tus clients upload at once through nginx without an error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from tusclient.client import TusClient

from server.settings import Settings
from tests.conftest import LiveStack, ServeProcess, wait_until
from tests.uploads.conftest import uploading_channel

pytestmark = [pytest.mark.media, pytest.mark.slow]
MiB = 1024 * 1024


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def test_1gb_upload_keeps_server_memory_flat(
    settings: Settings, serve_process: ServeProcess
) -> None:
    process = (await serve_process(settings)).process
    base = f"http://127.0.0.1:{settings.server_port}"
    channel = await uploading_channel(base, "huge")
    total = 1024 * MiB
    headers = {**channel.auth, "Tus-Resumable": "1.0.0"}
    samples: list[int] = []
    sent = 0
    block = bytes(MiB)

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(total // MiB):
            sent += MiB
            yield block

    async def sample() -> None:
        while True:
            if sent >= 32 * MiB:  # past start-up: imports, pools, first buffers
                samples.append(rss_bytes(process.pid))
            await asyncio.sleep(0.05)

    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{base}/api/channels/huge/uploads", headers={**headers, "Upload-Length": str(total)}
        ) as response:
            assert response.status == 201
            url = base + response.headers["Location"]
        sampler = asyncio.create_task(sample())
        try:
            async with session.patch(
                url,
                data=body(),
                headers={
                    **headers,
                    "Upload-Offset": "0",
                    "Content-Type": "application/offset+octet-stream",
                    "Content-Length": str(total),
                },
            ) as response:
                # A gigabyte of zeros is no video: every byte arrived, then ffprobe refused it.
                assert response.status == 415, await response.text()
                assert response.headers["Upload-Offset"] == str(total)
        finally:
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
    assert len(samples) > 10
    growth = max(samples) - samples[0]
    assert growth < 48 * MiB, f"server RSS grew {growth / MiB:.1f} MiB during a 1 GiB upload"
    assert list((settings.media_root / "uploads").iterdir()) == []


async def test_20_concurrent_uploads_complete(live_stack: LiveStack, clip: Path) -> None:
    channel = await uploading_channel(live_stack.http, "crowd")
    client = TusClient(f"{live_stack.http}/api/channels/crowd/uploads", headers=channel.auth)

    async def one(n: int) -> None:
        with clip.open("rb") as stream:
            uploader = client.async_uploader(
                file_stream=stream, chunk_size=64 * 1024, metadata={"title": f"Clip {n}"}
            )
            await uploader.upload()

    await asyncio.gather(*(one(n) for n in range(20)))
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{live_stack.http}/api/channels/crowd/uploads", headers=channel.auth
        ) as response:
            uploads = await response.json()
        assert len(uploads) == 20
        assert {u["state"] for u in uploads} == {"done"}
        async with session.get(f"{live_stack.http}/api/channels/crowd/videos") as response:
            videos = await response.json()
        assert sorted(v["title"] for v in videos) == sorted(f"Clip {n}" for n in range(20))
        # Deleting stops the queue's work and removes every byte.
        for video in videos:
            async with session.delete(
                f"{live_stack.http}/api/videos/{video['id']}", headers=channel.auth
            ) as response:
                assert response.status == 204
        async with session.get(f"{live_stack.http}/api/channels/crowd/videos") as response:
            assert await response.json() == []

    root = live_stack.settings.media_root

    async def empty() -> bool:
        return not any((root / "uploads").iterdir()) and not any((root / "videos").rglob("*.m4s"))

    await wait_until(empty, 10, "every upload and video file to be gone")
