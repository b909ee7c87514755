"""One channel's ladder: a process per rung (rung.py), its playlists, catching up and coming back.

Each rung runs its own FFmpeg, reading the source from loopback RTMP with its timestamps kept
(`-copyts`), so every rung and every run of a rung share the source's timeline and keyframes
fall on the same segment edges. When a rung falls behind live the ladder catches up as before
(a faster preset for the family that may adapt, else the costliest rung shed), but only the
rungs concerned restart; the others keep their process, segment numbering and init. A shed
rung comes back once the CPU has had room for it for restore_after_s.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from transcoder import metrics
from transcoder.ffmpeg.probe import SourceInfo
from transcoder.live.command import TranscodeJob
from transcoder.live.encoders import ladder_preset_index, presets_label
from transcoder.live.events import LadderEvents
from transcoder.live.ladder import LadderConfig, Rendition, cpu_cost
from transcoder.live.rung import RungProcess, SpawnError, SupervisorOptions
from transcoder.live.shedding import CpuReading, RestoreTimer, catch_up, predicted_speed
from transcoder.live.window import ChannelPlaylists
from transcoder.schedule import read_cpu
from transcoder.waiting import wait_event

__all__ = ["SpawnError", "Supervisor", "SupervisorOptions"]

log = logging.getLogger("onair.transcoder")

State = Literal["idle", "running", "backoff", "failed", "stopped"]
TICK_S = 0.1  # new segments are listed within this of FFmpeg's rename
CPU_EVERY_S = 5.0  # how often the room for a shed rung is measured
RESTORE_HOLD_MAX_S = 1800.0  # a rung shed again after coming back waits twice as long, to this


class Supervisor:
    """Owns one channel's rung processes and playlists until stop()."""

    def __init__(
        self,
        channel: str,
        job: TranscodeJob,
        source: SourceInfo,
        *,
        run_dir: Path,
        options: SupervisorOptions | None = None,
        on_failed: Callable[[str], None] | None = None,
    ) -> None:
        """channel: the public slug (safe to log); job: every rung of the ladder (each gets a
        process of its own); run_dir: where the rungs' pidfiles go (<slug>.<rung>.pid)."""
        self.channel = channel
        self.source = source
        self.started_config = job.config  # the presets it began with, before any step
        self.events = LadderEvents()
        self._job = job
        self._ladder = job.renditions  # the full ladder, in its order
        self._run_dir = run_dir
        self._opts = options or SupervisorOptions()
        self._on_failed = on_failed
        self._playlists = ChannelPlaylists(
            job.output_dir,
            job.renditions,
            source,
            list_size=job.config.list_size,
            target=job.config.segment_seconds,
        )
        self.rungs: dict[str, RungProcess] = {}
        self._shed: list[Rendition] = []  # shed rungs, the last shed on top
        self._restore = RestoreTimer(self._opts.restore_after_s, self._opts.restore_speed)
        self._restored: set[str] = set()  # rungs back from a shed: shedding them again doubles
        self._cpu: CpuReading | None = None
        self._next_cpu = 0.0
        self._stop = asyncio.Event()
        self._end_playlists = True  # stop(end=False): another process resumes them
        self._failed: RungProcess | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping: set[asyncio.Task[None]] = set()
        self.state: State = "idle"

    @property
    def options(self) -> SupervisorOptions:
        """Timeouts and policies; setting them reaches every rung (tests tighten them)."""
        return self._opts

    @options.setter
    def options(self, options: SupervisorOptions) -> None:
        self._opts = options
        self._restore.hold_s, self._restore.floor = options.restore_after_s, options.restore_speed
        for rung in self.rungs.values():
            rung.options = options
            rung.policy.window_s, rung.policy.min_speed = (
                options.shed_window_s,
                options.shed_min_speed,
            )

    @property
    def config(self) -> LadderConfig:
        """The ladder settings the rungs run with now (a faster preset after falling behind)."""
        return self._job.config

    @property
    def renditions(self) -> tuple[Rendition, ...]:
        """The rungs of the ladder now, in ladder order (fewer after shedding)."""
        return tuple(r for r in self._ladder if r not in self._shed)

    @property
    def shed(self) -> tuple[Rendition, ...]:
        """The rungs shed now, in ladder order."""
        return tuple(r for r in self._ladder if r in self._shed)

    @property
    def pids(self) -> dict[str, int | None]:
        """Each rung's ffmpeg pid (None while it restarts)."""
        return {name: rung.pid for name, rung in self.rungs.items()}

    @property
    def preset(self) -> str:
        """The presets the ladder runs with, e.g. "superfast", "superfast/av1:12"."""
        return presets_label(self.config, self.renditions)

    @property
    def speed(self) -> float | None:
        """The slowest rung's media seconds per wall second (None before any is known)."""
        speeds = [s for s in (r.speed() for r in self.rungs.values()) if s is not None]
        return min(speeds) if speeds else None

    @property
    def done(self) -> bool:
        """True once the ladder has stopped or given up."""
        return self.state in ("failed", "stopped")

    async def start(self) -> None:
        """Spawn every rung and return once they run; SpawnError if one cannot start."""
        if self._task is not None:
            return
        try:
            for rendition in self._ladder:
                await self._start_rung(rendition)
        except BaseException:
            await self._stop_rungs(list(self.rungs.values()))
            self.state = "failed"
            raise
        self.state = "running"
        self._gauges()
        self._task = asyncio.create_task(self._loop(), name=f"ladder-{self.channel}")

    async def stop(self, *, end: bool = True) -> None:
        """Every rung stopped (SIGINT, SIGKILL after the grace period); playlists get ENDLIST.

        end=False leaves the playlists open, as a killed server would: another server process
        takes the stream over and appends to them, so players never see it end.
        """
        self._end_playlists = end
        self._stop.set()
        if self._task is not None:
            await self._task

    async def wait(self) -> None:
        """Until the ladder has stopped or failed."""
        if self._task is not None:
            await asyncio.shield(self._task)

    def _rung_job(self, rendition: Rendition) -> TranscodeJob:
        return dataclasses.replace(self._job, renditions=(rendition,))

    async def _start_rung(self, rendition: Rendition) -> None:
        rung = RungProcess(
            self.channel,
            self._rung_job(rendition),
            pidfile=self._run_dir / f"{self.channel}.{rendition.name}.pid",
            options=self._opts,
            on_failed=self._rung_failed,
            events=self.events,
        )
        self.rungs[rendition.name] = rung
        await rung.start()

    def _rung_failed(self, rung: RungProcess) -> None:
        self._failed = rung
        self._stop.set()

    async def _stop_rungs(self, rungs: list[RungProcess]) -> None:
        await asyncio.gather(*(rung.stop() for rung in rungs))

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not await wait_event(self._stop, TICK_S):
                now = loop.time()
                self._playlists.sync(now)
                if self._opts.shed_enabled:
                    self._catch_up(now)
                    if self._shed:
                        await self._maybe_restore(now)
                self._state_from_rungs()
        finally:
            try:
                await self._stop_rungs(list(self.rungs.values()))
                await asyncio.gather(*self._stopping, return_exceptions=True)
            except asyncio.CancelledError:
                log.warning("ladder stop cancelled channel=%s: rungs killed", self.channel)
                raise
            finally:
                self._finish()  # even when cancelled: every playlist ends

    def _state_from_rungs(self) -> None:
        states = {rung.state for rung in self.rungs.values()}
        self.state = "running" if states == {"running"} else "backoff"

    def _finish(self) -> None:
        """Whatever the exit path: end the playlists (unless handed over), drop the gauges, say
        why it failed."""
        if self._end_playlists or self._failed is not None:
            self._playlists.end()
        metrics.forget(self.channel, [r.name for r in self._ladder])
        if self._failed is None:
            self.state = "stopped"
            return
        self.state = "failed"
        self.events.add("failed", self._failed.name, "failed again and again: the ladder gave up")
        metrics.FAILED.labels(self.channel).inc()
        log.error("ladder gave up channel=%s rung=%s", self.channel, self._failed.name)
        if self._on_failed is not None:
            self._on_failed(self.channel)

    def _gauges(self) -> None:
        metrics.RUNGS.labels(self.channel).set(len(self.rungs))
        metrics.PRESET_INDEX.labels(self.channel).set(
            ladder_preset_index(self.config, self.renditions)
        )
        for name, rung in self.rungs.items():
            speed = rung.speed()
            if speed is not None:
                metrics.RUNG_SPEED.labels(self.channel, name).set(speed)
        if (speed := self.speed) is not None:
            metrics.SPEED.labels(self.channel).set(speed)
        fps = [r.last_progress.fps for r in self.rungs.values() if r.last_progress is not None]
        if known := [f for f in fps if f is not None]:
            metrics.FPS.labels(self.channel).set(min(known))

    def _catch_up(self, now: float) -> None:
        """A rung below speed for a whole window: a faster preset, else shed the costliest."""
        self._gauges()
        running = [r for r in self.rungs.values() if r.state == "running"]
        behind = [r for r in running if r.policy.should_shed(now)]
        if not behind:
            return
        speed = min(r.speed() or 0.0 for r in behind)
        names = ",".join(r.name for r in behind)
        step = catch_up(self.config, self.renditions)
        for rung in self.rungs.values():
            rung.policy.reset(now)  # every rung felt the shortage: measure afresh after the step
        self._restore.reset()
        if step is None:
            log.warning(
                "ffmpeg behind live, nothing left to shed channel=%s behind=%s preset=%s",
                self.channel, names, self.preset,
            )  # fmt: skip
            return
        if step.action == "preset":
            was = self.preset
            self._job = dataclasses.replace(self._job, config=step.config)
            changed = [r for r in self.rungs.values() if presets_label(step.config, (r.rendition,))
                       != presets_label(r.job.config, (r.rendition,))]  # fmt: skip
            for rung in self.rungs.values():
                job = dataclasses.replace(rung.job, config=step.config)
                if rung in changed:
                    rung.restart_with(job)  # this rung alone restarts
                else:
                    rung.job = job
            metrics.PRESET_CHANGES.labels(self.channel).inc()
            self.events.add("preset", names, f"{was} to {self.preset}, at {speed:.2f}x")
            log.warning(
                "ffmpeg faster preset channel=%s preset=%s was=%s behind=%s speed=%.2f "
                "restarted=%s",
                self.channel, self.preset, was, names, speed, ",".join(r.name for r in changed),
            )  # fmt: skip
            return
        keep = {r.name for r in step.renditions}
        for name in [n for n in self.rungs if n not in keep]:
            self._shed_rung(name, now, speed, names)

    def _shed_rung(self, name: str, now: float, speed: float, behind: str) -> None:
        rung = self.rungs.pop(name)
        self._shed.append(rung.rendition)
        task = asyncio.create_task(rung.stop())  # the loop keeps listing the others meanwhile
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)
        self._playlists.shed(self.renditions, now)
        if name in self._restored:  # it came back and could not stay: wait longer next time
            self._restore.hold_s = min(self._restore.hold_s * 2, RESTORE_HOLD_MAX_S)
        metrics.SHED.labels(self.channel).inc()
        self.events.add("shed", name, f"behind live at {speed:.2f}x ({behind})")
        with contextlib.suppress(KeyError):
            metrics.RUNG_SPEED.remove(self.channel, name)
        log.warning(
            "ffmpeg shed rung channel=%s dropped=%s rungs=%s preset=%s behind=%s speed=%.2f",
            self.channel, name, ",".join(r.name for r in self.renditions), self.preset,
            behind, speed,
        )  # fmt: skip

    def _reading(self) -> CpuReading | None:
        jiffies = {}
        for rung in self.rungs.values():
            used = rung.cpu_jiffies()
            if rung.pid is None or used is None:
                return None  # a rung is restarting: no clean interval
            jiffies[rung.pid] = used
        return CpuReading(read_cpu(), jiffies)

    async def _maybe_restore(self, now: float) -> None:
        """Every CPU_EVERY_S: would the ladder keep restore_speed with the last shed rung back?"""
        if now < self._next_cpu:
            return
        self._next_cpu = now + CPU_EVERY_S
        reading, before = self._reading(), self._cpu
        self._cpu = reading
        if reading is None or before is None:
            self._restore.reset()
            return
        candidate = self._shed[-1]
        cost_now = sum(cpu_cost(r, self.config) for r in self.renditions)
        predicted = predicted_speed(before, reading, cost_now, cpu_cost(candidate, self.config))
        behind = any(r.policy.should_shed(now) for r in self.rungs.values())
        self._restore.observe(now, None if behind else predicted)
        if not self._restore.ready(now):
            return
        self._shed.pop()
        self._restore.reset()
        self._cpu = None  # the new process is not in the last reading
        self._playlists.restore(candidate)
        self._restored.add(candidate.name)
        try:
            await self._start_rung(candidate)
        except SpawnError as err:
            log.error(
                "ffmpeg restore failed channel=%s rung=%s: %s", self.channel, candidate.name, err
            )
            self.rungs.pop(candidate.name, None)
            self._playlists.shed(self.renditions, now)
            return
        metrics.RESTORED.labels(self.channel).inc()
        self.events.add("restore", candidate.name, f"room again (predicted {predicted or 0:.2f}x)")
        log.warning(
            "ffmpeg restored rung channel=%s rung=%s rungs=%s predicted_speed=%.2f held=%.0fs",
            self.channel, candidate.name, ",".join(r.name for r in self.renditions),
            predicted or 0.0, self._restore.hold_s,
        )  # fmt: skip
