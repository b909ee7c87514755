"""One rung's FFmpeg: spawn in its own process group, watch progress, restart, stop.

Every rung of a live ladder runs in a process of its own (supervisor.py coordinates them), so
shedding a rung, changing its preset or a crash restarts that rung alone: the other rungs keep
their process, their segment numbering and their init segment.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from transcoder import metrics
from transcoder.ffmpeg.process import FfmpegProcess
from transcoder.ffmpeg.progress import Progress
from transcoder.live.command import TranscodeJob, build_args, working_dir
from transcoder.live.encoders import presets_label
from transcoder.live.events import LadderEvents
from transcoder.live.ladder import Rendition
from transcoder.live.shedding import ShedPolicy
from transcoder.schedule import process_jiffies
from transcoder.waiting import wait_event

log = logging.getLogger("onair.transcoder")

State = Literal["idle", "running", "backoff", "failed", "stopped"]


class SpawnError(Exception):
    """ffmpeg could not be started at all (missing binary, bad permissions)."""


@dataclass(frozen=True)
class SupervisorOptions:
    """Timeouts, restart and shedding policy; defaults suit a live RTMP input."""

    stall_timeout_s: float = 15.0  # no new media for this long: kill and restart
    startup_timeout_s: float = 30.0  # first media may wait for RTMP connect and probing
    # SIGINT, then SIGKILL after this. A live rung ends within 0.1 s of SIGINT; once the
    # publisher has gone it sits ~20 s in an RTMP read no signal interrupts (measured), so
    # waiting longer would only delay the next session of an OBS that reconnects.
    stop_grace_s: float = 3.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    stable_after_s: float = 30.0  # a run this long resets backoff and the failure count
    max_fast_failures: int = 5  # consecutive short runs before the channel is failed
    shed_window_s: float = 20.0
    shed_min_speed: float = 0.95
    shed_enabled: bool = True
    restore_after_s: float = 120.0  # room for a shed rung this long before it comes back
    restore_speed: float = 1.2  # predicted speed the ladder must keep with the rung back


class RungProcess:
    """Owns exactly one ffmpeg for one rung of one channel, restarting it until stop()."""

    def __init__(
        self,
        channel: str,
        job: TranscodeJob,
        *,
        pidfile: Path,
        options: SupervisorOptions,
        on_failed: Callable[[RungProcess], None],
        events: LadderEvents,
    ) -> None:
        """job: one rendition; pidfile: where the orphan guard goes; on_failed: called once
        the rung gives up after repeated fast failures; events: where its restarts are told."""
        self.channel = channel
        self.events = events
        self.job = job
        self.options = options
        self._pidfile = pidfile
        self._on_failed = on_failed
        self.policy = ShedPolicy(window_s=options.shed_window_s, min_speed=options.shed_min_speed)
        self._stop = asyncio.Event()
        self._restart = asyncio.Event()
        self._spawned = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._spawn_error: OSError | None = None
        self._last_out: float | None = None
        self._last_advance = 0.0
        self._stderr_tail: Sequence[str] = ()
        self.state: State = "idle"
        self.pid: int | None = None
        self.last_progress: Progress | None = None

    @property
    def rendition(self) -> Rendition:
        """The rung this process encodes (or copies)."""
        return self.job.renditions[0]

    @property
    def name(self) -> str:
        """The rung's folder name, for logs."""
        return self.rendition.name

    @property
    def done(self) -> bool:
        """True once the rung has stopped or given up."""
        return self.state in ("failed", "stopped")

    def speed(self) -> float | None:
        """Media seconds per wall second over the shed window; ffmpeg's own figure before that."""
        speed = self.policy.speed()
        if speed is None and self.last_progress is not None:
            return self.last_progress.speed
        return speed

    def cpu_jiffies(self) -> int | None:
        """CPU the running ffmpeg has used so far (/proc/stat units); None while none runs."""
        return process_jiffies(self.pid) if self.pid is not None else None

    async def start(self) -> None:
        """Spawn ffmpeg and return once it runs; raise SpawnError if it cannot start."""
        if self._task is not None:
            return
        self._task = asyncio.create_task(self._loop(), name=f"rung-{self.channel}-{self.name}")
        spawned = asyncio.create_task(self._spawned.wait())
        try:
            await asyncio.wait({spawned, self._task}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            await self.stop()  # the caller gave up: leave no ffmpeg behind
            raise
        finally:
            spawned.cancel()
        if self._spawn_error is not None and not self._spawned.is_set():
            await self.stop()
            raise SpawnError(str(self._spawn_error)) from self._spawn_error

    def restart_with(self, job: TranscodeJob) -> None:
        """A planned restart (a faster preset): stop this run gracefully, start the new job."""
        self.job = job
        self._restart.set()

    async def stop(self) -> None:
        """SIGINT to the group, SIGKILL after the grace period."""
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        backoff, fast = self.options.backoff_initial_s, 0
        try:
            while not self._stop.is_set():
                started = loop.time()
                reason = await self._run_once()
                if reason == "spawn" and not self._spawned.is_set():
                    self.state = "failed"
                    return
                metrics.EXITS.labels(reason).inc()
                if self._stop.is_set():
                    break
                if reason == "faster":
                    continue  # a planned restart: no backoff, no failure counted
                if loop.time() - started >= self.options.stable_after_s:
                    backoff, fast = self.options.backoff_initial_s, 0  # a stable run: start over
                else:
                    fast += 1
                if fast >= self.options.max_fast_failures:
                    self._fail(fast, reason)
                    return
                metrics.RESTARTS.labels(self.channel, self.name).inc()
                self.events.add("restart", self.name, f"{reason}, again in {backoff:.0f} s")
                self.state = "backoff"
                log.warning(
                    "ffmpeg restarting channel=%s rung=%s reason=%s delay=%.1fs failures=%d",
                    self.channel, self.name, reason, backoff, fast,
                )  # fmt: skip
                await wait_event(self._stop, backoff)
                backoff = min(backoff * 2, self.options.backoff_max_s)
        finally:
            self._pidfile.unlink(missing_ok=True)
            if self.state != "failed":
                self.state = "stopped"
            self.pid = None

    def _fail(self, failures: int, reason: str) -> None:
        self.state = "failed"
        # Say why: the last exit's reason and what ffmpeg last complained about.
        log.error(
            "ffmpeg gave up channel=%s rung=%s failures=%d reason=%s last=%r",
            self.channel, self.name, failures, reason, " | ".join(self._stderr_tail),
        )  # fmt: skip
        self._on_failed(self)

    async def _run_once(self) -> str:
        """Run ffmpeg once; return why it ended (the exits_total reason)."""
        loop = asyncio.get_running_loop()
        for tmp in working_dir(self.job).glob("*.tmp"):
            tmp.unlink(missing_ok=True)  # a killed ffmpeg leaves its half-written segment
        # Each run names its segments and init after itself: hex milliseconds, never reused.
        self.job = dataclasses.replace(self.job, segment_prefix=f"{time.time_ns() // 1_000_000:x}")
        self._restart.clear()
        try:
            proc = await FfmpegProcess.start(
                build_args(self.job),
                cwd=working_dir(self.job),
                label=f"channel={self.channel} rung={self.name}",
                pidfile=self._pidfile,
                marker=str(self.job.output_dir),  # what the reaper checks in argv
                on_progress=self._on_progress,
            )
        except OSError as err:
            self._spawn_error = err
            log.error(
                "ffmpeg spawn failed channel=%s rung=%s error=%s", self.channel, self.name, err
            )
            return "spawn"
        started = loop.time()
        self.pid = proc.pid
        self._stderr_tail = proc.stderr_tail
        self.state = "running"
        self._spawned.set()
        self._last_out, self._last_advance = None, started
        self.policy.reset(started)
        log.info(
            "ffmpeg started channel=%s rung=%s pid=%d encoder=%s preset=%s",
            self.channel, self.name, proc.pid, self._encoder(),
            presets_label(self.job.config, self.job.renditions),
        )  # fmt: skip
        exited = asyncio.create_task(proc.wait())
        watch = asyncio.create_task(self._watch())
        stop = asyncio.create_task(self._stop.wait())
        restart = asyncio.create_task(self._restart.wait())
        reason = "crashed"
        try:
            done, _ = await asyncio.wait(
                {exited, watch, stop, restart}, return_when=asyncio.FIRST_COMPLETED
            )
            if exited in done:
                reason = "ended" if proc.returncode == 0 else "crashed"
            elif stop in done:
                reason = "stopped" if await proc.stop(self.options.stop_grace_s) else "killed"
            elif restart in done:
                reason = "faster"
                if not await proc.stop(self.options.stop_grace_s):
                    log.warning("ffmpeg needed SIGKILL channel=%s rung=%s", self.channel, self.name)
            else:
                reason = "stalled"
                await proc.kill()  # a hung ffmpeg may ignore SIGINT
        finally:
            for task in (exited, watch, stop, restart):
                task.cancel()
            if proc.returncode is None:  # we are being cancelled: leave nothing behind
                await proc.kill()
            await proc.wait()  # the readers have finished and the pidfile is gone
        level = logging.INFO if reason in ("stopped", "faster") else logging.WARNING
        log.log(
            level,
            "ffmpeg exited channel=%s rung=%s pid=%d rc=%s reason=%s ran=%.1fs last=%r",
            self.channel, self.name, proc.pid, proc.returncode, reason,
            loop.time() - started, " | ".join(self._stderr_tail),
        )  # fmt: skip
        self.pid = None
        return reason

    def _encoder(self) -> str:
        r = self.rendition
        if r.copy:
            return "copy"
        return {"hevc": self.job.config.hevc_encoder, "av1": "libsvtav1"}.get(r.codec, "libx264")

    def _on_progress(self, p: Progress) -> None:
        """A `-progress` block: feeds the stall watch and the speed window."""
        now = asyncio.get_running_loop().time()
        self.last_progress = p
        if p.out_time_s is not None and (self._last_out is None or p.out_time_s > self._last_out):
            self._last_out, self._last_advance = p.out_time_s, now
            self.policy.observe(now, p.out_time_s)

    async def _watch(self) -> None:
        """Return when media has stopped advancing for longer than the stall timeout."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(0.1)
            limit = (
                self.options.startup_timeout_s
                if self._last_out is None
                else self.options.stall_timeout_s
            )
            if loop.time() - self._last_advance > limit:
                log.warning(
                    "ffmpeg stalled channel=%s rung=%s pid=%s for=%.1fs",
                    self.channel, self.name, self.pid, limit,
                )  # fmt: skip
                return
