"""One background encoder at a time: recordings compression and VOD jobs share one slot.

A single loop takes the next job from each source in turn, so two encoders can never start
together, and the moment one job ends the next source is asked (no queue sleeps on its own
timer while the other works). While a job runs, the gate may pause its FFmpeg for live.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from aiohttp import web
from prometheus_client import Gauge

from server.background.gate import CompressGate
from server.live.ladders import LADDERS
from server.live.streams import STREAMS
from server.owner import OWNER
from server.settings import SETTINGS
from server.tasks import cancel_and_wait
from transcoder import schedule
from transcoder.ffmpeg.process import FfmpegProcess
from transcoder.waiting import wait_event

log = logging.getLogger("onair.background")
T = TypeVar("T")

IDLE_POLL_S = 30.0  # look for work this often even when nobody said there is some
GATE_TICK_S = 2.0  # how often a running job's FFmpeg is checked against live load


@dataclass(frozen=True)
class Job:
    """One unit of background encoding: a recording to compress, a video to transcode."""

    kind: str
    id: str
    run: Callable[[], Coroutine[Any, Any, None]]


class JobSource(Protocol):
    """A queue of jobs of one kind (oldest first), kept in PostgreSQL by its owner."""

    kind: str

    async def next_job(self) -> Job | None:
        """The job to run now, or None when there is none."""

    async def crashed(self, job: Job) -> None:
        """The job raised: record it so that it does not come straight back."""


class EncoderSlot:
    """The one background encoder of this host."""

    def __init__(self, gate: CompressGate, wake_owner: Callable[[], None] | None = None) -> None:
        """wake_owner: tell the host's owner, when that is another worker, that there is work
        (its slot is the one that runs)."""
        self.gate = gate
        self.wake_owner = wake_owner
        self.sources: list[JobSource] = []
        self.current: tuple[Job, asyncio.Task[None]] | None = None
        self._wake = asyncio.Event()

    def add(self, source: JobSource) -> None:
        """Take jobs from `source` too (sources take turns, in the order they were added)."""
        self.sources.append(source)
        self.wake()

    def wake(self) -> None:
        """There may be work: look now rather than at the next idle poll."""
        self._wake.set()
        if self.wake_owner is not None:
            self.wake_owner()

    def wake_here(self) -> None:
        """wake() for this process's loop only (another worker woke the owner)."""
        self._wake.set()

    @property
    def wake_pending(self) -> bool:
        """True from wake() until the loop has looked for work."""
        return self._wake.is_set()

    def running(self, kind: str, job_id: str) -> bool:
        """True while that job holds the slot."""
        return self.current is not None and (self.current[0].kind, self.current[0].id) == (
            kind,
            job_id,
        )

    async def cancel(self, kind: str, job_id: str | None = None) -> None:
        """Stop the running job if it is that one (job_id None: any job of that kind)."""
        if self.current is None:
            return
        job, task = self.current
        if job.kind == kind and job_id in (None, job.id):
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def withdraw(self, source: JobSource) -> None:
        """The source is closing: take no more of its jobs and stop the one running."""
        if source in self.sources:
            self.sources.remove(source)
        await self.cancel(source.kind)

    async def run(self) -> None:
        """The loop: while the gate allows, run the next job of any source."""
        while True:
            await wait_event(self._wake, IDLE_POLL_S)
            self._wake.clear()
            while self.gate.may_start():
                job = await self._next()
                if job is None:
                    break
                await self._run(job)

    async def _next(self) -> Job | None:
        """The next job, taking turns: the source a job came from is asked last next time."""
        for source in list(self.sources):
            job = await source.next_job()
            if job is not None:
                if source in self.sources:
                    self.sources.remove(source)
                    self.sources.append(source)
                return job
        return None

    async def _run(self, job: Job) -> None:
        task = asyncio.create_task(job.run(), name=f"background-{job.kind}-{job.id}")
        self.current = (job, task)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.cancelled():  # the loop itself is being cancelled
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                raise
            # the job was cancelled (a delete, its source closing); the loop goes on
        except Exception:
            log.exception("background job crashed kind=%s id=%s", job.kind, job.id)
            source = next((s for s in self.sources if s.kind == job.kind), None)
            if source is not None:
                await source.crashed(job)
        finally:
            self.current = None

    async def paused_for_live(
        self,
        work: Awaitable[T],
        process: Callable[[], FfmpegProcess | None],
        paused: Gauge,
        what: str,
        label: str,
        logger: logging.Logger,
        tick: Callable[[], Awaitable[None]] | None = None,
    ) -> T:
        """Await `work`; every tick, pause its FFmpeg (process()) while live needs the CPU.

        `what` and `label` name the job in the job's own log ("compression", "channel=…").
        """
        job = asyncio.ensure_future(work)
        self.gate.begin()
        try:
            while not job.done():
                await asyncio.wait({job}, timeout=GATE_TICK_S)
                run = process()
                if run is None or job.done():
                    continue
                if self.gate.should_pause(run.paused):
                    if not run.paused:
                        logger.info("%s paused for live %s", what, label)
                    run.pause()
                elif run.paused:
                    logger.info("%s resumed %s", what, label)
                    run.resume()
                paused.set(1 if run.paused else 0)
                if tick is not None:
                    await tick()
            return job.result()
        finally:
            if not job.done():
                job.cancel()
                await asyncio.gather(job, return_exceptions=True)
            paused.set(0)


ENCODER: web.AppKey[EncoderSlot] = web.AppKey("encoder", EncoderSlot)


async def encoder_slot(app: web.Application) -> AsyncIterator[None]:
    """The slot and its loop for the life of the app (before recordings and uploads, which
    add their queues to it and withdraw them when they close)."""
    settings = app[SETTINGS]
    window = (
        schedule.Window.parse(settings.compression_window) if settings.compression_window else None
    )
    gate = CompressGate(app[STREAMS], app[LADDERS], window, settings.compress_live_margin)
    owner = app[OWNER]
    slot = app[ENCODER] = EncoderSlot(gate, owner.wake_owner)
    owner.on_wake(slot.wake_here)
    tasks: list[asyncio.Task[None]] = []

    async def start() -> None:
        tasks.append(asyncio.create_task(slot.run(), name="background-encoder"))

    async def stop() -> None:
        await cancel_and_wait(tasks)
        tasks.clear()

    # One encoder per host: the owner's (its gate reads the owner's ladders).
    async with app[OWNER].duty("encoder slot", start, stop):
        yield
