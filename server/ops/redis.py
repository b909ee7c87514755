"""A private redis-server for `onair up --workers N` (N > 1) when no ONAIR_REDIS_URL is given:
chat rooms and viewer counts shared by the workers, as PostgreSQL is by pgcluster.py."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
from pathlib import Path

import redis.asyncio as aioredis


class RedisError(Exception):
    """redis-server is missing or would not start; the message is for the terminal."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """redis-server on a loopback port with a generated password (kept in a 0600 config file,
    not on its command line), no persistence: chat's messages live in PostgreSQL, and what
    Redis holds (rooms, names, slow mode, recent history) is rebuilt or re-read after a
    restart."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = _free_port()
        self.password = secrets.token_urlsafe(24)
        self.process: asyncio.subprocess.Process | None = None

    def url(self) -> str:
        """The ONAIR_REDIS_URL the workers get."""
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def _write_config(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / "redis.conf"
        text = "\n".join(
            [
                "bind 127.0.0.1",
                f"port {self.port}",
                f"requirepass {self.password}",
                'save ""',
                "appendonly no",
                f"dir {self.folder}",
                "daemonize no",
                f"logfile {self.folder / 'redis.log'}",
                "",
            ]
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return path

    async def start(self, timeout: float = 20.0) -> asyncio.subprocess.Process:
        """Start it and wait until PING answers; RedisError when it does not."""
        binary = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin")
        if binary is None:
            raise RedisError("redis-server is not installed (apt-get install redis-server)")
        self.process = await asyncio.create_subprocess_exec(
            binary,
            str(self._write_config()),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches us, and we stop it in order
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        client = aioredis.Redis.from_url(self.url(), socket_connect_timeout=1)
        try:
            while True:
                try:
                    if await client.ping():
                        return self.process
                except (aioredis.ConnectionError, OSError):
                    pass
                if self.process.returncode is not None or loop.time() > deadline:
                    await self.stop()
                    raise RedisError(f"redis-server did not start: {self.log_tail()}")
                await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    async def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()

    def log_tail(self, size: int = 600) -> str:
        """The end of redis-server's log, for error messages."""
        try:
            return (self.folder / "redis.log").read_bytes()[-size:].decode(errors="replace")
        except OSError:
            return ""
