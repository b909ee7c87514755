"""Record one live session by stream copy into MPEG-TS parts; stop while the disk is full."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from transcoder import metrics
from transcoder.ffmpeg.process import RECORD_PRIORITY, FfmpegProcess, tagged
from transcoder.recordings.clock import PartClock
from transcoder.recordings.media import TAG_PREFIX
from transcoder.waiting import wait_event

log = logging.getLogger("onair.recordings")

RecorderState = Literal["starting", "recording", "disk_full", "backoff", "stopped"]


@dataclass(frozen=True)
class RecorderOptions:
    """Disk reserve and restart policy."""

    reserve_bytes: int = 2_000_000_000  # below this much free space, recording stops
    resume_factor: float = 1.5  # resume once free space is back above reserve * this
    disk_check_s: float = 2.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 10.0
    stop_grace_s: float = 10.0


def record_args(ffmpeg: str, source_url: str, out: Path) -> list[str]:
    """Pull the renamed stream from nginx and copy it, untouched, into one MPEG-TS file."""
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-nostats",
        "-loglevel", "level+warning",
        "-progress", "pipe:1",
        "-rw_timeout", "10000000",  # a silent source ends this run after 10 s
        "-i", source_url,
        "-map", "0:v:0", "-map", "0:a:0?",
        "-c", "copy",  # no decode, no encode: recording costs next to no CPU
        # MPEG-TS survives a kill -9 (no trailer to write); flush each packet so little is lost
        "-flush_packets", "1",
        "-f", "mpegts",
        str(out),
    ]  # fmt: skip


def free_bytes(path: Path) -> int:
    """Free bytes on the volume that holds path."""
    return shutil.disk_usage(path).free


class Recorder:
    """Keeps an ffmpeg copying the live source into directory/part-NNNN.ts until stop().

    A run that ends while the channel is still live (RTMP hiccup, ENOSPC) is restarted into
    the next part; while free space is below the reserve no run is started, and a running one
    is stopped, so the live ladder keeps the space it needs.
    """

    def __init__(
        self,
        channel: str,
        recording_id: str,
        source_url: str,
        directory: Path,
        *,
        ffmpeg: str = "ffmpeg",
        run_dir: Path,
        options: RecorderOptions | None = None,
        free: Callable[[Path], int] = free_bytes,
    ) -> None:
        """channel is the public slug; source_url is loopback RTMP (never the stream key)."""
        self.channel = channel
        self.recording_id = recording_id
        self.source_url = source_url
        self.directory = directory
        self.ffmpeg = ffmpeg
        self.pidfile = run_dir / f"{recording_id}.pid"
        self.options = options or RecorderOptions()
        self.state: RecorderState = "starting"
        self._free = free
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._run: FfmpegProcess | None = None

    def start(self) -> None:
        """Begin recording in the background."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=f"recorder-{self.channel}")

    async def stop(self) -> None:
        """End the session: the running part gets its last packets, then the loop ends."""
        self._stop.set()
        if self._task is not None:
            await asyncio.shield(self._task)

    def _next_part(self) -> Path:
        numbers = [int(p.stem.split("-")[1]) for p in self.directory.glob("part-*.ts")]
        return self.directory / f"part-{max(numbers, default=0) + 1:04d}.ts"

    async def _space(self) -> int:
        try:
            return await asyncio.to_thread(self._free, self.directory)
        except OSError:
            return 0

    async def _wait_for_space(self) -> None:
        """Block (not while stopping) until free space is back above the resume level."""
        resume_at = int(self.options.reserve_bytes * self.options.resume_factor)
        free = await self._space()
        if free >= self.options.reserve_bytes:
            return
        self.state = "disk_full"
        metrics.RECORDING_DISK_FULL.labels(self.channel).set(1)
        metrics.RECORDING_STOPS.labels("disk_full").inc()
        log.error(
            "recording paused: disk full channel=%s recording=%s free=%d reserve=%d",
            self.channel, self.recording_id, free, self.options.reserve_bytes,
        )  # fmt: skip
        while not self._stop.is_set() and free < resume_at:
            await wait_event(self._stop, self.options.disk_check_s)
            free = await self._space()
        metrics.RECORDING_DISK_FULL.labels(self.channel).set(0)
        if not self._stop.is_set():
            log.warning(
                "recording resumed channel=%s recording=%s free=%d",
                self.channel, self.recording_id, free,
            )  # fmt: skip

    async def _loop(self) -> None:
        backoff = self.options.backoff_initial_s
        loop = asyncio.get_running_loop()
        try:
            while not self._stop.is_set():
                await self._wait_for_space()
                if self._stop.is_set():
                    break
                started = loop.time()
                reason = await self._run_once()
                metrics.RECORDER_EXITS.labels(reason).inc()
                if self._stop.is_set() or reason == "disk_full":
                    continue
                if loop.time() - started > 30:
                    backoff = self.options.backoff_initial_s
                self.state = "backoff"
                await wait_event(self._stop, backoff)
                backoff = min(backoff * 2, self.options.backoff_max_s)
        finally:
            self.state = "stopped"
            with contextlib.suppress(KeyError):
                metrics.RECORDING_DISK_FULL.remove(self.channel)

    async def _run_once(self) -> str:
        """One ffmpeg run into a new part; returns why it ended."""
        part = self._next_part()
        try:
            tag = f"{TAG_PREFIX}{self.directory.name}"
            run = await FfmpegProcess.start(
                tagged(record_args(self.ffmpeg, self.source_url, Path(part.name)), tag),
                cwd=self.directory,
                label=f"channel={self.channel} recording={self.recording_id}",
                pidfile=self.pidfile,
                marker=tag,
                priority=RECORD_PRIORITY,
                logger=log,
                on_progress=PartClock(part).observe,  # where the part sits on the wall clock
            )
        except OSError as err:
            log.error("recorder spawn failed channel=%s error=%s", self.channel, err)
            return "spawn"
        self._run = run
        self.state = "recording"
        log.info(
            "recording started channel=%s recording=%s part=%s pid=%d",
            self.channel, self.recording_id, part.name, run.pid,
        )  # fmt: skip
        exited = asyncio.create_task(run.wait())
        stop = asyncio.create_task(self._stop.wait())
        reason = "crashed"
        try:
            while True:
                done, _ = await asyncio.wait(
                    {exited, stop}, timeout=self.options.disk_check_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )  # fmt: skip
                if exited in done:
                    reason = "ended" if run.returncode == 0 else "crashed"
                    break
                if stop in done:
                    await run.stop(self.options.stop_grace_s)
                    reason = "stopped"
                    break
                if await self._space() < self.options.reserve_bytes:
                    await run.stop(self.options.stop_grace_s)  # before ENOSPC, not after
                    reason = "disk_full"
                    break
        finally:
            exited.cancel()
            stop.cancel()
            if run.returncode is None:  # cancelled: leave no ffmpeg behind
                await run.kill()
            self._run = None
        level = logging.INFO if reason == "stopped" else logging.WARNING
        log.log(
            level,
            "recorder exited channel=%s recording=%s pid=%d rc=%s reason=%s last=%r",
            self.channel, self.recording_id, run.pid, run.returncode, reason,
            " | ".join(run.stderr_tail),
        )  # fmt: skip
        return reason
