"""`onair up` end to end: real PostgreSQL, nginx and server as children of one command."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port, open_tempdir

pytestmark = pytest.mark.slow

START_TIMEOUT = 120.0


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`, by walking /proc's parent links."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The command name may hold spaces; the parent pid follows its closing parenthesis.
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        for child, parent in parents.items():
            if parent == current and child not in found:
                found.add(child)
                frontier.append(child)
    return found


def alive(pid: int) -> bool:
    """True while the pid exists and is not a zombie."""
    try:
        return " Z " not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]
    except OSError:
        return False


class Up:
    """One `onair up` run: its output collected on a thread, waited on by pattern."""

    def __init__(
        self,
        data_dir: Path,
        http_port: int,
        rtmp_port: int,
        *extra: str,
        env: dict[str, str] | None = None,
    ) -> None:
        """extra: more `onair up` options; env: ONAIR_* variables it gets."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("ONAIR_")} | (env or {})
        self.http_port = http_port
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "server",
                "up",
                "--data-dir",
                str(data_dir),
                "--http-port",
                str(http_port),
                "--rtmp-port",
                str(rtmp_port),
                "--host",
                "127.0.0.1",
                *extra,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:
            for line in self.process.stdout:
                self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = START_TIMEOUT) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.output, re.M)
            if match:
                return match
            if self.process.poll() is not None and not self.reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} in the output of onair up:\n{self.output}")

    def get(self, path: str) -> tuple[int, dict[str, object]]:
        url = f"http://127.0.0.1:{self.http_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=60)
        self.reader.join(timeout=5)
        return code


@pytest.fixture
def data_dir() -> Iterator[Path]:
    root = open_tempdir("onair-up-")
    yield root / "data"
    subprocess.run(["rm", "-rf", str(root)], check=False)


def test_up_serves_stops_cleanly_and_keeps_state(data_dir: Path) -> None:
    http_port, rtmp_port = free_port(), free_port()
    up = Up(data_dir, http_port, rtmp_port)
    try:
        up.wait_for(r"^Onair is up\.$")
        key = up.wait_for(r"Stream key:\s+(\S+)").group(1)
        assert len(key) >= 22
        assert f"rtmp://127.0.0.1:{rtmp_port}/live" in up.output
        assert f"http://127.0.0.1:{http_port}/watch/demo" in up.output

        status, health = up.get("/healthz")
        assert status == 200, health
        assert health["status"] == "ok"
        status, listed = up.get("/api/channels")
        assert status == 200
        assert [c["slug"] for c in listed] == ["demo"]  # type: ignore[union-attr,index]
        # nginx answers RTMP on the RTMP port.
        socket.create_connection(("127.0.0.1", rtmp_port), timeout=5).close()
        children = descendants(up.process.pid)
        assert len(children) >= 4  # postgres (+ its workers), server, nginx (+ worker)
    finally:
        code = up.stop()
    assert code == 0, up.output
    assert [pid for pid in children if alive(pid)] == []
    assert "stopping" in up.output
    assert key not in up.output.split("Stream key:")[0]

    # Second start on the same folder: same database, the key is not shown again.
    again = Up(data_dir, http_port, rtmp_port)
    try:
        again.wait_for(r"^Onair is up\.$")
        assert key not in again.output
        assert "shown on first start" in again.output
        status, listed = again.get("/api/channels")
        assert [c["slug"] for c in listed] == ["demo"]  # type: ignore[union-attr,index]
    finally:
        assert again.stop() == 0, again.output


def test_taken_port_is_reported_plainly(data_dir: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        up = Up(data_dir, taken, free_port())
        code = up.process.wait(timeout=60)
        up.reader.join(timeout=5)
    assert code == 1
    assert f"port {taken} (HTTP) is already in use on 127.0.0.1" in up.output
    assert "Traceback" not in up.output
