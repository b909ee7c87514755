"""Fixtures for recordings: fast x265 settings, media clips, a tmpfs volume, DB helpers."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.settings import Settings
from tests.conftest import open_tempdir


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Small and fast: ultrafast x265, a reserve that fits a test machine's /tmp."""
    return settings.with_changes(
        compress_preset="ultrafast",
        recording_reserve_bytes=10_000_000,
        compression_window="",
    )


@contextlib.contextmanager
def tmpfs(size: str) -> Iterator[Path]:
    """A fresh tmpfs of `size` (root only); skips the test where mounting is not permitted."""
    path = open_tempdir("onair-tmpfs-")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        path.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip() or result.returncode}")
    try:
        yield path
    finally:
        # Lazy: an ffmpeg still closing a file must not leave the mount behind.
        subprocess.run(["umount", "-l", str(path)], check=False)
        path.rmdir()


async def make_part(path: Path, seconds: float, size: str = "320x240", offset: float = 0) -> None:
    """An OBS-like H.264 + AAC MPEG-TS file, as the recorder writes it."""
    proc = await asyncio.create_subprocess_exec(
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", str(seconds),
        "-output_ts_offset", str(offset),
        "-c:v", "libx264", "-preset", "veryfast", "-b:v", "1500k", "-g", "60",
        "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "128k",
        "-f", "mpegts", str(path),
    )  # fmt: skip
    assert await proc.wait() == 0


async def publish_for(
    url: str, seconds: float, size: str = "320x240"
) -> asyncio.subprocess.Process:
    """Push `seconds` of test pattern in real time (OBS-style H.264 + AAC over RTMP), then end."""
    return await asyncio.create_subprocess_exec(
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
        "-re", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30",
        "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", str(seconds),
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "60",
        "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k",
        "-f", "flv", url,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def decodes(path: Path | str) -> bool:
    """Every frame decodes without an error."""
    proc = await asyncio.create_subprocess_exec(
        "ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-xerror",
        "-i", str(path), "-f", "null", "-",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    return proc.returncode == 0 and not err.strip()


async def duration(path: Path | str) -> float:
    """The container's duration in seconds."""
    proc = await asyncio.create_subprocess_exec(
        "ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
        str(path),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    return float(out.decode().strip())
