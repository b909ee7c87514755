"""One channel's ffmpeg: spawn in its own process group, watch progress, restart, stop."""

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
from transcoder.ffmpeg.probe import SourceInfo
from transcoder.ffmpeg.process import FfmpegProcess
from transcoder.ffmpeg.progress import Progress
from transcoder.live.command import TranscodeJob, build_args, working_dir
from transcoder.live.encoders import ladder_preset_index, presets_label
from transcoder.live.ladder import Rendition
from transcoder.live.shedding import CatchUp, ShedPolicy, catch_up
from transcoder.live.window import ChannelPlaylists
from transcoder.waiting import wait_event

log = logging.getLogger("onair.transcoder")

State = Literal["idle", "running", "backoff", "failed", "stopped"]


class SpawnError(Exception):
    """ffmpeg could not be started at all (missing binary, bad permissions)."""


@dataclass(frozen=True)
class SupervisorOptions:
    """Timeouts and restart policy; defaults suit a live RTMP input."""

    stall_timeout_s: float = 15.0  # no new media for this long: kill and restart
    startup_timeout_s: float = 30.0  # first media may wait for RTMP connect and probing
    stop_grace_s: float = 10.0  # SIGINT, then SIGKILL after this
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    stable_after_s: float = 30.0  # a run this long resets backoff and the failure count
    max_fast_failures: int = 5  # consecutive short runs before the channel is failed
    shed_window_s: float = 20.0
    shed_min_speed: float = 0.95
    shed_enabled: bool = True


class Supervisor:
    """Owns exactly one ffmpeg for one channel, restarting it until stop()."""

    def __init__(
        self,
        channel: str,
        job: TranscodeJob,
        source: SourceInfo,
        *,
        pidfile: Path,
        options: SupervisorOptions | None = None,
        on_failed: Callable[[str], None] | None = None,
    ) -> None:
        """channel: the public slug (safe to log); pidfile: where the orphan guard goes."""
        self.channel = channel
        self._job = job
        self._pidfile = pidfile
        self._opts = options or SupervisorOptions()
        self._on_failed = on_failed
        self._playlists = ChannelPlaylists(
            job.output_dir,
            job.renditions,
            source,
            list_size=job.config.list_size,
            target=job.config.segment_seconds,
        )
        self._policy = ShedPolicy(
            window_s=self._opts.shed_window_s, min_speed=self._opts.shed_min_speed
        )
        self._stop = asyncio.Event()
        self._spawned = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._spawn_error: OSError | None = None
        self._pending: CatchUp | None = None
        self._last_out: float | None = None
        self._last_advance = 0.0
        self._stderr_tail: Sequence[str] = ()
        self.state: State = "idle"
        self.pid: int | None = None
        self.last_progress: Progress | None = None

    @property
    def renditions(self) -> tuple[Rendition, ...]:
        """The rungs ffmpeg produces now (fewer after shedding)."""
        return self._job.renditions

    @property
    def preset(self) -> str:
        """The presets ffmpeg runs with now (faster after falling behind), e.g. "superfast"
        for HEVC alone, "superfast/av1:12" for both families."""
        return presets_label(self._job.config, self._job.renditions)

    @property
    def speed(self) -> float | None:
        """Media seconds per wall second over the shed window; ffmpeg's own figure before that."""
        speed = self._policy.speed()
        if speed is None and self.last_progress is not None:
            return self.last_progress.speed
        return speed

    @property
    def done(self) -> bool:
        """True once the supervisor has stopped or given up."""
        return self.state in ("failed", "stopped")

    async def start(self) -> None:
        """Spawn ffmpeg and return once it runs; raise SpawnError if it cannot start."""
        if self._task is not None:
            return
        self._task = asyncio.create_task(self._loop(), name=f"transcoder-{self.channel}")
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

    async def stop(self) -> None:
        """SIGINT to the group, SIGKILL after the grace period; playlists get ENDLIST."""
        self._stop.set()
        if self._task is not None:
            await self._task

    async def wait(self) -> None:
        """Until the supervisor has stopped or failed."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        backoff, fast = self._opts.backoff_initial_s, 0
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
                if reason in ("shed", "faster"):
                    continue  # a planned restart: no backoff, no failure counted
                if loop.time() - started >= self._opts.stable_after_s:
                    backoff, fast = self._opts.backoff_initial_s, 0  # a stable run: start over
                else:
                    fast += 1
                if fast >= self._opts.max_fast_failures:
                    self._fail(fast, reason)
                    return
                metrics.RESTARTS.labels(self.channel).inc()
                self.state = "backoff"
                log.warning(
                    "ffmpeg restarting channel=%s reason=%s delay=%.1fs failures=%d",
                    self.channel, reason, backoff, fast,
                )  # fmt: skip
                await wait_event(self._stop, backoff)
                backoff = min(backoff * 2, self._opts.backoff_max_s)
        finally:
            self._finish()

    def _fail(self, failures: int, reason: str) -> None:
        self.state = "failed"
        metrics.FAILED.labels(self.channel).inc()
        # Say why: the last exit's reason and what ffmpeg last complained about.
        log.error(
            "ffmpeg gave up channel=%s failures=%d reason=%s last=%r",
            self.channel, failures, reason, " | ".join(self._stderr_tail),
        )  # fmt: skip
        if self._on_failed is not None:
            self._on_failed(self.channel)

    def _finish(self) -> None:
        """Whatever the exit path: end the playlists, drop the pidfile and the gauges."""
        self._playlists.end()
        self._pidfile.unlink(missing_ok=True)
        metrics.forget(self.channel)
        if self.state != "failed":
            self.state = "stopped"
        self.pid = None

    async def _run_once(self) -> str:
        """Run ffmpeg once; return why it ended (the exits_total reason)."""
        loop = asyncio.get_running_loop()
        for tmp in self._job.output_dir.glob("*/*.tmp"):
            tmp.unlink(missing_ok=True)  # a killed ffmpeg leaves its half-written segment
        # Each run names its segments and init after itself: hex milliseconds, never reused.
        self._job = dataclasses.replace(
            self._job, segment_prefix=f"{time.time_ns() // 1_000_000:x}"
        )
        try:
            proc = await FfmpegProcess.start(
                build_args(self._job),
                cwd=working_dir(self._job),
                label=f"channel={self.channel}",
                pidfile=self._pidfile,
                marker=str(self._job.output_dir),  # what the reaper checks in argv
                on_progress=self._on_progress,
            )
        except OSError as err:
            self._spawn_error = err
            log.error("ffmpeg spawn failed channel=%s error=%s", self.channel, err)
            return "spawn"
        started = loop.time()
        self.pid = proc.pid
        self._stderr_tail = proc.stderr_tail
        self.state = "running"
        self._spawned.set()
        self._last_out, self._last_advance = None, started
        self._policy.reset(started)
        metrics.RUNGS.labels(self.channel).set(len(self._job.renditions))
        c = self._job.config
        metrics.PRESET_INDEX.labels(self.channel).set(ladder_preset_index(c, self._job.renditions))
        log.info(
            "ffmpeg started channel=%s pid=%d encoder=%s preset=%s rungs=%s",
            self.channel, proc.pid, c.hevc_encoder, self.preset,
            ",".join(r.name for r in self._job.renditions),
        )  # fmt: skip
        exited = asyncio.create_task(proc.wait())
        watch = asyncio.create_task(self._watch())
        stop = asyncio.create_task(self._stop.wait())
        reason = "crashed"
        try:
            done, _ = await asyncio.wait({exited, watch, stop}, return_when=asyncio.FIRST_COMPLETED)
            if exited in done:
                reason = "ended" if proc.returncode == 0 else "crashed"
            elif stop in done:
                reason = "stopped" if await proc.stop(self._opts.stop_grace_s) else "killed"
            else:
                reason = watch.result()
                if reason == "stalled":
                    await proc.kill()  # a hung ffmpeg may ignore SIGINT
                elif not await proc.stop(self._opts.stop_grace_s):
                    log.warning("ffmpeg needed SIGKILL to shed channel=%s", self.channel)
        finally:
            for task in (exited, watch, stop):
                task.cancel()
            if proc.returncode is None:  # we are being cancelled: leave nothing behind
                await proc.kill()
            await proc.wait()  # the readers have finished and the pidfile is gone
        level = logging.INFO if reason in ("stopped", "shed", "faster") else logging.WARNING
        log.log(
            level,
            "ffmpeg exited channel=%s pid=%d rc=%s reason=%s ran=%.1fs last=%r",
            self.channel, proc.pid, proc.returncode, reason, loop.time() - started,
            " | ".join(self._stderr_tail),
        )  # fmt: skip
        if reason in ("shed", "faster") and self._pending is not None:
            self._apply_catch_up(self._pending)
        return reason

    def _on_progress(self, p: Progress) -> None:
        """A `-progress` block: feeds the stall watch, the speed window and the gauges."""
        now = asyncio.get_running_loop().time()
        self.last_progress = p
        if p.out_time_s is not None and (self._last_out is None or p.out_time_s > self._last_out):
            self._last_out, self._last_advance = p.out_time_s, now
            self._policy.observe(now, p.out_time_s)
        speed = self._policy.speed()
        speed = p.speed if speed is None else speed
        if speed is not None:
            metrics.SPEED.labels(self.channel).set(speed)
        if p.fps is not None:
            metrics.FPS.labels(self.channel).set(p.fps)

    def _apply_catch_up(self, step: CatchUp) -> None:
        """Restart with a faster preset (nothing else rewritten) or with fewer rungs."""
        self._pending = None
        speed = self._policy.speed()
        if step.action == "preset":
            was = self.preset
            self._job = dataclasses.replace(self._job, config=step.config)
            metrics.PRESET_CHANGES.labels(self.channel).inc()
            log.warning(
                "ffmpeg faster preset channel=%s preset=%s was=%s speed=%.2f rungs=%s",
                self.channel, self.preset, was, speed or 0.0,
                ",".join(r.name for r in self._job.renditions),
            )  # fmt: skip
            return
        keep = list(step.renditions)
        dropped = [r for r in self._job.renditions if r not in keep]
        self._job = dataclasses.replace(self._job, renditions=step.renditions)
        self._playlists.shed(keep, asyncio.get_running_loop().time())
        metrics.SHED.labels(self.channel).inc()
        log.warning(
            "ffmpeg shed rung channel=%s dropped=%s rungs=%s preset=%s speed=%.2f",
            self.channel, ",".join(r.name for r in dropped), ",".join(r.name for r in keep),
            self.preset, speed or 0.0,
        )  # fmt: skip

    async def _watch(self) -> str:
        """Return "stalled" when media stops advancing; "faster" or "shed" when it falls behind."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(0.1)
            now = loop.time()
            self._playlists.sync(now)  # new segments listed within 0.1 s of FFmpeg's rename
            limit = (
                self._opts.startup_timeout_s
                if self._last_out is None
                else self._opts.stall_timeout_s
            )
            if now - self._last_advance > limit:
                log.warning(
                    "ffmpeg stalled channel=%s pid=%s for=%.1fs", self.channel, self.pid, limit
                )
                return "stalled"
            if self._opts.shed_enabled and self._policy.should_shed(now):
                step = catch_up(self._job.config, self._job.renditions)
                if step is not None:
                    self._pending = step
                    return "faster" if step.action == "preset" else "shed"
                log.warning(
                    "ffmpeg behind live, nothing left to shed channel=%s preset=%s",
                    self.channel, self.preset,
                )  # fmt: skip
                self._policy.reset(now)
