"""Fault-injection fixtures: a redis-server of a test's own to kill, a cheap publisher, /proc
and Prometheus readers; the shared helpers are tests/conftest.py's."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.harness import RedisProcess
from tests.chat.conftest import connect  # noqa: F401  (fixture re-exported)
from tests.fuzz.conftest import fuzz_server  # noqa: F401  (fixture re-exported)


@pytest.fixture
def private_redis() -> Iterator[RedisProcess]:
    """A redis-server of this test's own, so killing it disturbs nobody else."""
    server = RedisProcess()
    server.start()
    yield server
    server.stop()


def open_fds(pid: int) -> int:
    """How many file descriptors a process holds now."""
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.fixture(scope="session")
def tiny_flv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s of 320x180 at 10 fps, H.264 + AAC in FLV: publishing it costs no encoding."""
    path = tmp_path_factory.mktemp("flv") / "tiny.flv"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
         "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=10",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "4",
         "-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "32k", "-f", "flv", str(path)],
        check=True,
    )  # fmt: skip
    return path


async def push_file(flv: Path, url: str) -> asyncio.subprocess.Process:
    """Publish a file over RTMP in a loop, in real time, without re-encoding (a cheap OBS)."""
    return await asyncio.create_subprocess_exec(
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
        "-re", "-stream_loop", "-1", "-i", str(flv), "-c", "copy", "-f", "flv", url,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


def metric(text: str, name: str, **labels: str) -> float:
    """One sample from Prometheus text (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        if head.partition("{")[0] != name:
            continue
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            return float(value)
    return 0.0
