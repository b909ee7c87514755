"""Fault-injection fixtures: a redis-server to kill, `onair serve` with captured logs."""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from server.settings import Settings
from server.stack import server_environ
from tests.chat.conftest import Chatter, connect  # noqa: F401  (fixture re-exported)
from tests.conftest import ADMIN_TOKEN, answers_200, free_port, open_tempdir, wait_until
from tests.fuzz.conftest import fuzz_server  # noqa: F401  (fixture re-exported)

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class RedisProcess:
    """A private redis-server on a fixed port that a test can kill -9 and start again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.folder = open_tempdir("onair-redis-fault-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start empty (no persistence, like a crashed cache) and wait for PING."""
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                with redis.Redis.from_url(self.url) as probe:
                    if probe.ping():
                        return
            except redis.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no goodbye to clients, every key gone."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def private_redis() -> Iterator[RedisProcess]:
    """A redis-server of this test's own, so killing it disturbs nobody else."""
    server = RedisProcess()
    server.start()
    yield server
    server.stop()


@dataclass
class Served:
    """One `onair serve` child: its settings, its process and its captured log file."""

    settings: Settings
    process: asyncio.subprocess.Process
    log_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.server_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def alive(self) -> bool:
        return self.process.returncode is None


ServeProcess = Callable[..., Awaitable[Served]]


@pytest.fixture
async def serve_process(tmp_path: Path) -> AsyncIterator[ServeProcess]:
    """Start `onair serve` children (logs to a file, optional RLIMIT_NOFILE); all stopped after."""
    started: list[Served] = []

    async def start(
        settings: Settings, *, nofile: int | None = None, log_level: str = "INFO"
    ) -> Served:
        log_path = tmp_path / f"serve-{settings.server_port}.log"
        env = server_environ(settings)
        env["ONAIR_LOG_LEVEL"] = log_level

        def limit() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        with log_path.open("ab") as log_file:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "server", "serve",
                env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file, stderr=log_file, preexec_fn=limit,
            )  # fmt: skip
        served = Served(settings, process, log_path)
        started.append(served)

        async def answering() -> bool:
            assert process.returncode is None, f"onair serve exited: {served.log()[-2000:]}"
            return await answers_200(f"{served.url}/metrics")

        await wait_until(answering, 60, "onair serve to answer")
        return served

    yield start
    for served in started:
        if served.process.returncode is None:
            served.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(served.process.wait(), 20)
            except TimeoutError:
                served.process.kill()
                await served.process.wait()


async def create_channel(base_url: str, slug: str) -> str:
    """A channel through the admin API; returns its stream key."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{base_url}/api/channels", json={"slug": slug, "title": slug.title()}, headers=ADMIN
        ) as response,
    ):
        assert response.status == 201, await response.text()
        return str((await response.json())["stream_key"])


async def create_moderator(base_url: str, slug: str) -> str:
    """A moderator token for `slug` through the admin API."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{base_url}/api/channels/{slug}/moderators", json={"name": "Mod"}, headers=ADMIN
        ) as response,
    ):
        assert response.status == 201, await response.text()
        return str((await response.json())["token"])


def open_fds(pid: int) -> int:
    """How many file descriptors a process holds now."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def children(pid: int) -> list[int]:
    """Live descendants of pid (any depth), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if stat[0] != "Z":
            parents[int(entry.name)] = int(stat[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found += kids
        frontier += kids
    return found


__all__ = ["ADMIN", "Chatter", "RedisProcess", "Served", "create_channel", "wait_until"]


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


async def end(process: asyncio.subprocess.Process, sig: int = signal.SIGINT) -> None:
    """Stop a child and reap it (SIGKILL after 10 s)."""
    if process.returncode is None:
        process.send_signal(sig)
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


async def get_json(url: str) -> tuple[int, Any]:
    """Status and JSON body (None when the body is not JSON)."""
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        try:
            return response.status, await response.json(content_type=None)
        except ValueError:
            return response.status, None


async def get_text(url: str) -> tuple[int, str]:
    """Status and body text."""
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


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
