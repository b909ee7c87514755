"""Fixtures for uploads: a small real clip and a channel with an upload token."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from server.settings import Settings
from tests.conftest import ADMIN, create_channel, open_tempdir


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Fast background encodes, a reserve that fits a test machine, no off-peak window."""
    return settings.with_changes(
        compress_preset="ultrafast",
        recording_reserve_bytes=10_000_000,
        compression_window="",
    )


@pytest.fixture(scope="session")
def clip() -> Iterator[Path]:
    """2 s of 854x480 H.264 + AAC in MP4 (moov at the end, as phones write it)."""
    folder = open_tempdir("onair-clip-")
    path = folder / "clip.mp4"
    subprocess.run(
        [
            "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "testsrc2=size=854x480:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-t", "2", "-c:v", "libx264", "-preset", "veryfast", "-g", "300",
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k", str(path),
        ],
        check=True,
    )  # fmt: skip
    yield path
    path.unlink(missing_ok=True)
    folder.rmdir()


@dataclass
class Channel:
    """A channel made through the API, with its upload token."""

    slug: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def uploading_channel(base: str, slug: str) -> Channel:
    """A channel made through the API, and its upload token (POST …/upload-token)."""
    await create_channel(base, slug)
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/api/channels/{slug}/upload-token", headers=ADMIN) as response,
    ):
        assert response.status == 201, await response.text()
        token = (await response.json())["token"]
    return Channel(slug, token)
