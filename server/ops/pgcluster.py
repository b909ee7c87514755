"""A private PostgreSQL cluster under a data directory, run as a child process.

Used by `onair up` (unless ONAIR_DATABASE_URL is set) and by the tests. Debian's
binaries are used as they are; PostgreSQL refuses to run as root, so when we are
root the cluster belongs to, and runs as, the `postgres` user the package created.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import stat
import subprocess
from pathlib import Path
from typing import IO

import asyncpg

DATABASE = "onair"
SUPERUSER = "onair"


class ClusterError(Exception):
    """The cluster could not be created or started; the message says why."""


def find_bindir() -> Path:
    """Debian's newest /usr/lib/postgresql/N/bin, else wherever pg_ctl is on PATH."""
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1].parent
    found = shutil.which("postgres")
    if found:
        return Path(found).resolve().parent
    raise ClusterError("PostgreSQL is not installed (apt-get install postgresql)")


def run_as_user() -> pwd.struct_passwd | None:
    """The account the server processes run as: None for ourselves, `postgres` when root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError as err:
        raise ClusterError(
            "running as root needs the 'postgres' user (apt-get install postgresql)"
        ) from err


def unreachable_ancestor(path: Path, user: pwd.struct_passwd) -> Path | None:
    """The first folder above `path` that `user` cannot enter, or None."""
    for folder in reversed(path.absolute().parents):
        info = folder.stat()
        if info.st_uid == user.pw_uid:
            ok = info.st_mode & stat.S_IXUSR
        elif info.st_gid == user.pw_gid:
            ok = info.st_mode & stat.S_IXGRP
        else:
            ok = info.st_mode & stat.S_IXOTH
        if not ok:
            return folder
    return None


class PgCluster:
    """initdb once, start `postgres` listening on a Unix socket only, stop it fast."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.socket_dir = root / "socket"
        self.log_path = root / "postgres.log"
        self.bindir = find_bindir()
        self.user = run_as_user()
        self.process: asyncio.subprocess.Process | None = None

    def url(self, database: str = DATABASE) -> str:
        """asyncpg URL over the private socket (no TCP port, so nothing to collide with)."""
        return f"postgresql://{SUPERUSER}@/{database}?host={self.socket_dir}"

    def _prepare_dirs(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if self.user is not None:
            blocked = unreachable_ancestor(self.root, self.user)
            if blocked is not None:
                raise ClusterError(
                    f"{blocked} is closed to the '{self.user.pw_name}' user PostgreSQL runs as "
                    "under root; choose a data directory outside it (default /var/lib/onair)"
                )
            for path in (self.root, self.socket_dir):
                os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def _as_user(self, *argv: str) -> list[str]:
        """argv, run as the cluster's user: setpriv execs in place, so signals reach postgres."""
        if self.user is None:
            return list(argv)
        return [
            "setpriv",
            f"--reuid={self.user.pw_uid}",
            f"--regid={self.user.pw_gid}",
            "--clear-groups",
            "--",
            *argv,
        ]

    def initialize(self) -> bool:
        """Create the cluster when it does not exist yet; True when it was created now."""
        self._prepare_dirs()
        if (self.data / "PG_VERSION").exists():
            return False
        result = subprocess.run(
            self._as_user(
                str(self.bindir / "initdb"),
                f"--pgdata={self.data}",
                f"--username={SUPERUSER}",
                # Only our own user (and root) can open the 0700 socket, so trust is safe here.
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ),
            cwd=self.root,  # the caller's folder may be closed to the postgres user
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ClusterError(f"initdb failed: {result.stderr.strip()[-500:]}")
        return True

    async def start(self, timeout: float = 30.0) -> asyncio.subprocess.Process:
        """Start postgres and wait until the `onair` database accepts connections."""
        self.initialize()
        # postgres writes its log to a file: a pipe nobody drains would block it.
        with self.log_path.open("ab") as log_file:
            self.process = await self._spawn(log_file)
        await self._wait_ready(timeout)
        return self.process

    async def _spawn(self, log_file: IO[bytes]) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *self._as_user(
                str(self.bindir / "postgres"),
                f"-D{self.data}",
                f"-k{self.socket_dir}",
                "-clisten_addresses=",  # Unix socket only: no port to collide with
                "-cunix_socket_permissions=0700",
                "-cmax_connections=200",
            ),
            cwd=self.root,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log_file,
            start_new_session=True,  # Ctrl-C reaches us, and we stop postgres in order
        )

    def log_tail(self, size: int = 800) -> str:
        """The end of postgres's own log, for error messages."""
        try:
            return self.log_path.read_bytes()[-size:].decode(errors="replace").strip()
        except OSError:
            return ""

    async def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self.process.returncode is not None:
                raise ClusterError(f"postgres exited: {self.log_tail()}")
            try:
                conn = await asyncpg.connect(self.url("postgres"), timeout=2)
            except (OSError, asyncpg.PostgresError, TimeoutError):
                if loop.time() > deadline:
                    raise ClusterError("postgres did not accept connections in time") from None
                await asyncio.sleep(0.1)
                continue
            try:
                if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname=$1", DATABASE):
                    await conn.execute(f'CREATE DATABASE "{DATABASE}"')
            finally:
                await conn.close()
            return

    async def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT): active transactions roll back, the data is safe."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
