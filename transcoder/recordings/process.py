"""One recording-side ffmpeg: own process group, pidfile, priority, progress, pause and stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from transcoder.playlist import atomic_write
from transcoder.progress import Progress, ProgressParser, classify_stderr
from transcoder.supervisor import reap_orphans

log = logging.getLogger("onair.recordings")

# Recording copies packets: ordinary CPU, but the live ladder's segments go to disk first.
RECORD_PRIORITY = ("ionice", "-c", "2", "-n", "7")
# Compression only ever gets CPU and disk time nobody else wants.
BACKGROUND_PRIORITY = ("nice", "-n", "19", "ionice", "-c", "3")
TAG_PREFIX = "onair-recording-"


class FfmpegRun:
    """A started ffmpeg: read its progress, pause/resume/stop its group, wait for its end.

    `nice` and `ionice` exec into ffmpeg, so the pid, the pidfile and /proc all name ffmpeg.
    """

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        pidfile: Path,
        label: str,
        on_progress: Callable[[Progress], None] | None,
    ) -> None:
        """Use FfmpegRun.start(); label is what log lines name (never a stream key)."""
        self.proc = proc
        self.pid = proc.pid
        self.label = label
        self.paused = False
        self.stderr_tail: deque[str] = deque(maxlen=5)
        self._pidfile = pidfile
        self._on_progress = on_progress
        self._readers = [
            asyncio.create_task(self._read_stdout()),
            asyncio.create_task(self._read_stderr()),
        ]

    @classmethod
    async def start(
        cls,
        args: Sequence[str],
        *,
        cwd: Path,
        pidfile: Path,
        label: str,
        priority: Sequence[str] = (),
        on_progress: Callable[[Progress], None] | None = None,
    ) -> FfmpegRun:
        """Spawn `priority + args` in a new session, in the recording's folder `cwd`.

        Paths in args are relative to cwd (short argv, and no other ffmpeg's output folder in
        it); a tag naming the folder goes before the output, and into the pidfile, so the
        reaper only ever kills an ffmpeg that is verifiably ours.
        """
        tag = f"{TAG_PREFIX}{cwd.name}"
        argv = [*args[:-1], "-metadata", f"comment={tag}", args[-1]]
        proc = await asyncio.create_subprocess_exec(
            *priority,
            *argv,
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # own process group: signals reach ffmpeg, not us
        )
        pidfile.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(pidfile, f"{proc.pid}\n{tag}\n")
        return cls(proc, pidfile, label, on_progress)

    @property
    def returncode(self) -> int | None:
        """None while running."""
        return self.proc.returncode

    def signal(self, sig: signal.Signals) -> None:
        """Send sig to ffmpeg's whole group (x265 worker threads included)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def pause(self) -> None:
        """SIGSTOP: the job keeps its place and costs nothing until resume()."""
        if not self.paused and self.returncode is None:
            self.signal(signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        """SIGCONT after pause()."""
        if self.paused:
            self.signal(signal.SIGCONT)
            self.paused = False

    async def wait(self) -> int:
        """Until ffmpeg exits and its output is read; drops the pidfile; returns the exit code."""
        try:
            rc = await self.proc.wait()
            await asyncio.gather(*self._readers, return_exceptions=True)
            return rc
        finally:
            if self.proc.returncode is not None:
                self._pidfile.unlink(missing_ok=True)

    async def stop(self, grace: float = 10.0) -> int:
        """SIGINT (ffmpeg writes its trailer), SIGKILL after `grace`; returns the exit code."""
        self.resume()
        self.signal(signal.SIGINT)
        try:
            return await asyncio.wait_for(asyncio.shield(self.wait()), grace)
        except TimeoutError:
            return await self.kill()

    async def kill(self) -> int:
        """SIGKILL the group and reap it: used on cancellation, so nothing outlives us."""
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGKILL)
        return await asyncio.shield(self.wait())

    async def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        parser = ProgressParser()
        async for raw in self.proc.stdout:
            progress = parser.feed(raw.decode(errors="replace"))
            if progress is not None and self._on_progress is not None:
                self._on_progress(progress)

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            if not line:
                continue
            level = classify_stderr(line)
            if level >= logging.WARNING:
                self.stderr_tail.append(line[:300])
            log.log(level, "ffmpeg says %s pid=%d: %s", self.label, self.pid, line)


async def run_to_end(
    args: Sequence[str],
    *,
    cwd: Path,
    pidfile: Path,
    label: str,
    priority: Sequence[str] = (),
    on_start: Callable[[FfmpegRun], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> tuple[int, str]:
    """Run ffmpeg to completion; cancelling kills its group. Returns (exit code, stderr tail)."""
    run = await FfmpegRun.start(
        args,
        cwd=cwd,
        pidfile=pidfile,
        label=label,
        priority=priority,
        on_progress=on_progress,
    )
    if on_start is not None:
        on_start(run)
    try:
        rc = await run.wait()
    except asyncio.CancelledError:
        await run.kill()
        raise
    return rc, " | ".join(run.stderr_tail)


async def reap(run_dir: Path) -> list[int]:
    """Kill recorder/compressor ffmpeg groups a killed server left behind (their pidfiles)."""
    if not await asyncio.to_thread(run_dir.is_dir):
        return []
    return await reap_orphans(run_dir)
