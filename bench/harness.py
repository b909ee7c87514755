"""What benches and tests share to run the real thing: free ports, folders the service users
can enter, processes found in /proc, a private redis-server, `onair serve` as a child, nginx
rendered from nginx/, and the whole private stack (PostgreSQL + nginx + `onair serve`).

Tests import it as `bench.harness`, benches (scripts run from bench/) as `harness`; it
imports nothing of bench/ itself, so both work.
"""

from __future__ import annotations

import asyncio
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import aiohttp
import redis

from server.ops import nginx
from server.ops.pgcluster import PgCluster
from server.ops.redis import PrivateRedis
from server.ops.stack import free_port, server_environ
from server.settings import Settings

__all__ = ["free_port"]

ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")  # /proc/<pid>/stat counts CPU time in these ticks


def open_tempdir(prefix: str) -> Path:
    """A temp folder the unprivileged users (postgres, www-data) can enter when we are root.

    pytest's own tmp_path lives under a 0700 folder, closed to them.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


# -- processes in /proc ---------------------------------------------------------------------


def _stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name, or None when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None


def descendants(pid: int) -> list[int]:
    """Live (non-zombie) descendants of pid, any depth."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(entry.name)) and fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found += kids
        frontier += kids
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds of the processes (0 for any that is gone)."""
    total = 0
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def ffmpeg_pids(marker: Path | str) -> list[int]:
    """Live (non-zombie) FFmpeg processes whose arguments mention `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        fields = _stat(entry.name)
        if (
            fields is not None
            and fields[0] != "Z"
            and argv[0].endswith(b"ffmpeg")
            and str(marker).encode() in b" ".join(argv)
        ):
            found.append(int(entry.name))
    return found


async def stop_process(
    process: asyncio.subprocess.Process, sig: int = signal.SIGTERM, grace: float = 10.0
) -> None:
    """Signal, wait up to `grace` seconds, then SIGKILL; reaped either way."""
    if process.returncode is not None:
        return
    process.send_signal(sig)
    try:
        await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        process.kill()
        await process.wait()


# -- waiting ---------------------------------------------------------------------------------


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], timeout: float, what: str, interval: float = 0.2
) -> None:
    """Poll `predicate` until it holds; fail naming `what` after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


async def answers(url: str, status: int = 200) -> bool:
    """True when `url` answers `status`; False while nothing listens yet."""
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response,
        ):
            return response.status == status
    except (aiohttp.ClientError, TimeoutError):
        return False


async def wait_for(url: str, timeout: float, what: str, status: int = 200) -> None:
    """Poll url until it answers `status`; fail naming `what` after timeout seconds."""
    await wait_until(lambda: answers(url, status), timeout, what, interval=0.05)


# -- the parts, started for real --------------------------------------------------------------


class RedisProcess:
    """A private redis-server on a free port: no persistence (like a crashed cache), loopback
    only; a test may kill -9 it and start it again on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.folder = open_tempdir("onair-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start empty and wait until PING answers."""
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
        """Stop it (if running) and remove its folder."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)


async def start_serve(
    settings: Settings,
    *,
    log: IO[bytes] | None = None,
    env: dict[str, str] | None = None,
    nofile: int | None = None,
    cwd: Path = ROOT,
) -> asyncio.subprocess.Process:
    """`onair serve` as systemd runs it (its own session), polled until /metrics answers.

    log: where its stdout and stderr go; env: extra variables; nofile: RLIMIT_NOFILE.
    """

    def limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "serve",
        env=server_environ(settings) | (env or {}),
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
        preexec_fn=limit, start_new_session=True,
    )  # fmt: skip

    async def answering() -> bool:
        if process.returncode is not None:
            raise AssertionError(f"onair serve exited with {process.returncode} while starting")
        return await answers(f"http://127.0.0.1:{settings.server_port}/metrics")

    try:
        await wait_until(answering, 60, "onair serve to answer", interval=0.05)
    except BaseException:
        await stop_process(process)
        raise
    return process


@asynccontextmanager
async def running_nginx(
    settings: Settings, values: dict[str, Any] | None = None
) -> AsyncIterator[Path]:
    """nginx rendered from nginx/ in front of settings.server_port; yields its private prefix
    (nginx.conf, nginx.pid, the logs).

    values: the template's optional knobs to set (api_rate, …).
    """
    layout = nginx.NginxLayout(open_tempdir("onair-nginx-"))
    nginx.write_config(layout, nginx.config_values(settings, layout.prefix) | (values or {}))
    nginx.test_config(layout)
    process = await nginx.start_nginx(layout)

    async def nginx_up() -> bool:
        if process.returncode is not None:
            raise AssertionError(f"nginx exited: {nginx.error_log_tail(layout)}")
        return await answers(f"http://127.0.0.1:{settings.http_port}/nginx-health")

    try:
        await wait_until(nginx_up, 20, "nginx to answer", interval=0.05)
        yield layout.prefix
    finally:
        await nginx.stop_nginx(process)
        shutil.rmtree(layout.prefix, ignore_errors=True)


def private_settings(root: Path, database_url: str, **overrides: Any) -> Settings:
    """Settings for a private stack under root: free loopback ports, fresh secrets."""
    media = root / "media"
    media.mkdir(parents=True, exist_ok=True)
    media.chmod(0o755)
    fields: dict[str, Any] = {
        "data_dir": root / "data",
        "media_dir": media,
        "http_host": "127.0.0.1",
        "http_port": free_port(),
        "server_port": free_port(),
        "rtmp_port": free_port(),
        "database_url": database_url,
        "admin_token": secrets.token_urlsafe(16),
        "hook_secret": secrets.token_urlsafe(16),
        "secret_key": secrets.token_urlsafe(16),
        "min_free_bytes": 0,
    }
    return Settings(**(fields | overrides))


@dataclass
class Stack:
    """A private stack: its settings, the servers' and nginx's pids, its work folder."""

    settings: Settings
    server_pids: list[int]  # one per worker; the first owns the host at start
    nginx_pid: int
    work: Path

    @property
    def server_pid(self) -> int:
        return self.server_pids[0]

    @property
    def nginx_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.http_port}"

    @property
    def server_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.server_port}"


@asynccontextmanager
async def private_stack(
    root: Path = ROOT,
    *,
    overrides: dict[str, Any] | None = None,
    log_level: str | None = None,
    workers: int = 1,
) -> AsyncIterator[Stack]:
    """PostgreSQL, nginx and `onair serve` (root's server package) on free loopback ports.

    overrides: Settings fields to change; log_level: the server's ONAIR_LOG_LEVEL; workers:
    server processes behind nginx, as `onair up --workers N` runs them (with a private
    redis-server when more than one). Everything is stopped on the way out.
    """
    async with AsyncExitStack() as stack:
        work = open_tempdir("onair-bench-http-")
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        cluster = PgCluster(work / "pg")
        stack.push_async_callback(cluster.stop)
        await cluster.start()
        settings = private_settings(work, cluster.url(), **(overrides or {}))
        settings.data_dir.mkdir()
        ports = [settings.server_port] + [free_port() for _ in range(workers - 1)]
        if workers > 1:
            private_redis = PrivateRedis(work / "redis")
            stack.push_async_callback(private_redis.stop)
            await private_redis.start()
            settings = settings.with_changes(workers=workers, redis_url=private_redis.url())
        # The template's own optional knobs: one load generator is one address, so the
        # per-address limits (API 20 r/s, pages, playlists, connections …) would answer 429.
        knobs: dict[str, Any] = {
            f"{kind}_{knob}": 1_000_000
            for kind in ("api", "page", "vod", "healthz", "upload", "socketio", "playlist")
            for knob in ("rate", "burst")
        }
        knobs |= {
            "conn_per_address": 65_535,
            "socketio_conn_per_address": 65_535,
        }  # nginx: "connection limit must be less 65536"
        if workers > 1:
            knobs |= {
                "server_ports": [str(p) for p in ports],
                "hooks_listen": f"127.0.0.1:{free_port()}",
            }
        prefix = await stack.enter_async_context(running_nginx(settings, knobs))
        nginx_pid = int(nginx.NginxLayout(prefix).pid.read_text())
        env = {"ONAIR_LOG_LEVEL": log_level} if log_level else {}
        pids = []
        for index, port in enumerate(ports):  # the first up owns the host
            log = stack.enter_context((work / f"server{index or ''}.log").open("wb"))
            worker = settings.with_changes(server_port=port)
            server = await start_serve(worker, log=log, env=env, cwd=root)
            stack.push_async_callback(stop_process, server)
            pids.append(server.pid)
        yield Stack(settings, pids, nginx_pid, work)
