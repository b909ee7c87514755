"""Recordings for the life of the app: capture, crash recovery, compression, retention."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

from server import channels
from server.errors import Conflict, NotFound
from server.events import StreamEvent
from server.keys import DB, EVENTS, LIVE, RECORDINGS, SETTINGS, UPLOADS
from server.metrics import (
    COMPRESS_BACKLOG,
    COMPRESS_BACKLOG_SECONDS,
    MEDIA_FREE,
    MEDIA_SIZE,
    MEDIA_USED,
    RECORDINGS_BYTES,
    RECORDINGS_DELETED,
)
from server.metrics import RECORDINGS as RECORDINGS_GAUGE
from server.recordings.gate import CompressGate
from server.recordings.store import ID_RE, IN_PROGRESS, STATES, new_id, transition
from server.settings import Settings
from transcoder import metrics as tmetrics
from transcoder.progress import Progress
from transcoder.recordings import media, policy
from transcoder.recordings.process import FfmpegRun, reap
from transcoder.recordings.recorder import Recorder, RecorderOptions
from transcoder.waiting import wait_event

log = logging.getLogger("onair.recordings")

HOUSEKEEPING_S = 10.0  # disk gauges, state gauges
RETENTION_S = 60.0  # age and water-mark checks (at once when the volume is over high water)
GATE_TICK_S = 2.0  # how often a running compression job looks at live load
ORPHAN_AGE_S = 3600.0  # a folder without a row this old is left over from a crash


class Recordings:
    """Everything about recordings that lives as long as the app."""

    def __init__(self, app: web.Application) -> None:
        """Reads settings; touches nothing until start()."""
        settings: Settings = app[SETTINGS]
        self.app = app
        self.settings = settings
        self.root = settings.media_root / "recordings"
        self.run_dir = settings.media_root / "run" / "recordings"
        self.tools = media.Tools(settings.ffmpeg, settings.ffprobe, self.run_dir)
        self.recorder_options = RecorderOptions(reserve_bytes=settings.recording_reserve_bytes)
        self.compress_options = media.CompressOptions(
            preset=settings.compress_preset, crf=settings.compress_crf
        )
        window = (
            policy.Window.parse(settings.compression_window)
            if settings.compression_window
            else None
        )
        self.gate = CompressGate(app, window, settings.compress_live_margin)
        self.active: dict[str, Recorder] = {}
        self.wake = asyncio.Event()
        self.job: tuple[str, asyncio.Task[None]] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._retention = asyncio.Lock()
        self.recovered = asyncio.Event()  # set once the sessions a crash left are finalized
        self.node = settings.node_name  # background work touches only this host's rows

    @property
    def db(self) -> asyncpg.Pool:
        return self.app[DB]

    def directory(self, channel: str, rid: str) -> Path:
        """MEDIA_DIR/recordings/<slug>/<id>; both are validated before they reach a path."""
        if not channels.valid_slug(channel) or not ID_RE.match(rid):
            raise ValueError("bad channel or recording id")
        return self.root / channel / rid

    def _background(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- capture ---------------------------------------------------------------------------

    async def on_stream(self, event: StreamEvent) -> None:
        """EventBus listener: live → start recording; offline → stop and finalize."""
        if event.live:
            await self.start_recording(event.channel)
        else:
            recorder = self.active.pop(event.channel, None)
            if recorder is not None:
                # Finalizing takes a while for a long session: never hold the hook for it.
                self._background(self._end(recorder))

    async def start_recording(self, channel: str) -> None:
        """A new session row and a recorder; no-op while the channel already records."""
        if channel in self.active:
            return
        rid = new_id()
        recorder = Recorder(
            channel,
            rid,
            f"rtmp://127.0.0.1:{self.settings.rtmp_port}/live/{channel}",
            self.directory(channel, rid),
            ffmpeg=self.settings.ffmpeg,
            run_dir=self.run_dir,
            options=self.recorder_options,
        )
        self.active[channel] = recorder  # before the await: a second event sees it
        try:
            await self.db.execute(
                "INSERT INTO recordings (id, channel, host) VALUES ($1, $2, $3)",
                rid, channel, self.node,
            )  # fmt: skip
        except Exception:
            self.active.pop(channel, None)
            raise
        recorder.start()

    async def _end(self, recorder: Recorder) -> None:
        await recorder.stop()
        await transition(
            self.db, recorder.recording_id, "finalizing", ("recording",), ended_at=datetime.now(UTC)
        )
        await self.finalize(recorder.recording_id, recorder.channel)

    async def finalize(self, rid: str, channel: str) -> None:
        """Remux the parts into the VOD; then queue compression (or fail an empty session)."""
        directory = self.directory(channel, rid)
        label = f"channel={channel} recording={rid}"
        try:
            info = await media.finalize(directory, self.tools, label)
        except (media.MediaError, OSError) as err:
            log.error("recording failed channel=%s recording=%s error=%s", channel, rid, err)
            await transition(self.db, rid, "failed", IN_PROGRESS, error=str(err)[:500])
            await asyncio.to_thread(shutil.rmtree, directory, True)
            return
        # A source that already is H.265 has nothing to gain from compression.
        to = "ready" if info.video_codec == "hevc" else "compressing"
        await transition(
            self.db, rid, to, IN_PROGRESS,
            finalized_at=datetime.now(UTC), duration_s=info.duration_s, bytes=info.bytes,
            original_bytes=info.bytes, codec=info.video_codec,
        )  # fmt: skip
        log.info(
            "recording finalized channel=%s recording=%s duration=%.1fs bytes=%d codec=%s",
            channel, rid, info.duration_s, info.bytes, info.video_codec,
        )  # fmt: skip
        self.wake.set()

    async def recover(self) -> None:
        """After a crash: reap orphan ffmpegs, finalize sessions the dead server left open."""
        killed = await reap(self.run_dir)
        if killed:
            log.warning("recording orphans reaped pids=%s", ",".join(map(str, killed)))
        active = [r.recording_id for r in self.active.values()]
        rows = await self.db.fetch(
            "SELECT id, channel, state FROM recordings WHERE host = $3 "
            "AND state = ANY($1::text[]) AND NOT id = ANY($2::text[]) ORDER BY started_at",
            list(IN_PROGRESS),
            active,
            self.node,
        )
        for row in rows:
            log.warning(
                "recording recovered after a crash channel=%s recording=%s state=%s",
                row["channel"], row["id"], row["state"],
            )  # fmt: skip
            await transition(
                self.db, row["id"], "finalizing", ("recording",), ended_at=datetime.now(UTC)
            )
            await self.finalize(row["id"], row["channel"])

    # -- compression -----------------------------------------------------------------------

    def _video_busy(self) -> bool:
        """An uploaded video is being transcoded: one background encoder at a time."""
        return UPLOADS in self.app and self.app[UPLOADS].queue.job is not None

    async def compress_loop(self) -> None:
        """One job at a time, oldest first, when the gate allows; woken by each finalize."""
        while True:
            await wait_event(self.wake, 30)
            self.wake.clear()
            while self.gate.may_start() and not self._video_busy():
                row = await self.db.fetchrow(
                    "SELECT id, channel FROM recordings WHERE host = $1 "
                    "AND state = 'compressing' ORDER BY started_at LIMIT 1",
                    self.node,
                )
                if row is None:
                    break
                task = asyncio.create_task(self._compress(row["id"], row["channel"]))
                self.job = (row["id"], task)
                try:
                    await asyncio.shield(task)
                except asyncio.CancelledError:
                    if not task.cancelled():
                        task.cancel()
                        await asyncio.gather(task, return_exceptions=True)
                        raise
                    # the job was cancelled by a delete; the loop goes on
                except Exception:
                    log.exception("compression crashed recording=%s", row["id"])
                    await asyncio.sleep(30)  # do not spin on a recording that always fails
                finally:
                    self.job = None

    async def _compress(self, rid: str, channel: str) -> None:
        directory = self.directory(channel, rid)
        label = f"channel={channel} recording={rid}"
        if media.media_name(directory) == media.COMPRESSED:
            # The server died between replacing the file and recording that it did.
            (directory / media.ORIGINAL).unlink(missing_ok=True)
            info = await media.probe_media(self.tools.ffprobe, directory / media.COMPRESSED)
            await self._compressed(rid, info, None)
            return
        original = directory / media.ORIGINAL
        free = (await asyncio.to_thread(shutil.disk_usage, self.root)).free
        if free < original.stat().st_size + self.settings.recording_reserve_bytes:
            log.warning("compression waits for space channel=%s recording=%s", channel, rid)
            await asyncio.sleep(RETENTION_S)
            return
        run: FfmpegRun | None = None
        loop = asyncio.get_running_loop()
        started = loop.time()

        def on_start(r: FfmpegRun) -> None:
            nonlocal run
            run = r

        def on_progress(p: Progress) -> None:
            if p.out_time_s is not None and loop.time() > started:
                tmetrics.COMPRESS_SPEED.set(p.out_time_s / (loop.time() - started))

        log.info("compression started channel=%s recording=%s", channel, rid)
        job = asyncio.create_task(
            media.compress(
                directory,
                self.tools,
                self.compress_options,
                label,
                on_start=on_start,
                on_progress=on_progress,
            )
        )
        try:
            while not job.done():
                await asyncio.wait({job}, timeout=GATE_TICK_S)
                if run is None or job.done():
                    continue
                if self.gate.should_pause(run.paused):
                    if not run.paused:
                        log.info(
                            "compression paused for live channel=%s recording=%s", channel, rid
                        )
                    run.pause()
                elif run.paused:
                    log.info("compression resumed channel=%s recording=%s", channel, rid)
                    run.resume()
                tmetrics.COMPRESS_PAUSED.set(1 if run.paused else 0)
            result = job.result()
        except media.MediaError as err:
            tmetrics.COMPRESS_JOBS.labels("failed").inc()
            log.error("compression failed channel=%s recording=%s error=%s", channel, rid, err)
            await transition(
                self.db, rid, "ready", ("compressing",), error=f"compression: {err}"[:500]
            )
            return
        finally:
            if not job.done():
                job.cancel()
                await asyncio.gather(job, return_exceptions=True)
            tmetrics.COMPRESS_PAUSED.set(0)
            tmetrics.COMPRESS_SPEED.set(0)
        if result is None:
            tmetrics.COMPRESS_JOBS.labels("kept").inc()
            log.info("compression kept the original channel=%s recording=%s", channel, rid)
            await transition(
                self.db,
                rid,
                "ready",
                ("compressing",),
                error="H.265 was not smaller; original kept",
            )
            return
        before, after = result
        tmetrics.COMPRESS_JOBS.labels("replaced").inc()
        tmetrics.COMPRESS_SECONDS.inc(after.duration_s)
        tmetrics.COMPRESS_SAVED.inc(max(0, before.bytes - after.bytes))
        log.info(
            "compression done channel=%s recording=%s bytes=%d->%d took=%.1fs",
            channel, rid, before.bytes, after.bytes, loop.time() - started,
        )  # fmt: skip
        await self._compressed(rid, after, before.bytes)

    async def _compressed(self, rid: str, info: media.MediaInfo, original: int | None) -> None:
        columns: dict[str, Any] = {
            "compressed_at": datetime.now(UTC), "bytes": info.bytes,
            "codec": info.video_codec, "duration_s": info.duration_s,
        }  # fmt: skip
        if original is not None:
            columns["original_bytes"] = original
        await transition(self.db, rid, "ready", ("compressing",), **columns)

    # -- deletion and retention ------------------------------------------------------------

    async def delete(self, rid: str, reason: str) -> None:
        """Mark deleted, then remove the files; NotFound, or Conflict while in progress.

        Any host may delete any host's recording: where the files are elsewhere there is
        nothing here to remove, and the owning host's orphan sweep removes its folder.
        """
        row = await self.db.fetchrow("SELECT id, channel, state FROM recordings WHERE id = $1", rid)
        if row is None or row["state"] == "deleted":
            raise NotFound(f"no recording {rid}")
        if row["state"] in IN_PROGRESS:
            raise Conflict("recording in progress")
        if self.job is not None and self.job[0] == rid:
            task = self.job[1]
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        done = await transition(
            self.db, rid, "deleted", ("compressing", "ready", "failed"),
            deleted_at=datetime.now(UTC), deleted_reason=reason,
        )  # fmt: skip
        if not done:
            raise Conflict("recording changed state; try again")
        await asyncio.to_thread(shutil.rmtree, self.directory(row["channel"], rid), True)
        RECORDINGS_DELETED.labels(reason).inc()
        log.info("recording deleted channel=%s recording=%s reason=%s", row["channel"], rid, reason)

    async def enforce_retention(self) -> list[str]:
        """Delete by age, then oldest first while the volume is over high water; returns ids."""
        async with self._retention:
            return await self._enforce_retention()

    async def _enforce_retention(self) -> list[str]:
        # Only this host's recordings: they are what fills this host's volume.
        rows = await self.db.fetch(
            "SELECT id, started_at, bytes, state FROM recordings "
            "WHERE host = $1 AND state <> 'deleted'",
            self.node,
        )
        stored = [
            policy.Stored(r["id"], r["started_at"], r["bytes"], r["state"] in IN_PROGRESS)
            for r in rows
        ]
        days = self.settings.recording_retention_days
        deleted: list[str] = []
        for rid in policy.expired(
            stored, datetime.now(UTC), timedelta(days=days) if days else None
        ):
            deleted += await self._delete_quietly(rid, "age")
        stored = [s for s in stored if s.id not in deleted]
        usage = await asyncio.to_thread(shutil.disk_usage, self.root)
        high, low = self.settings.media_high_water, self.settings.media_low_water
        for rid in policy.over_water(stored, usage.used, usage.total, high, low):
            deleted += await self._delete_quietly(rid, "water")
            usage = await asyncio.to_thread(shutil.disk_usage, self.root)
            if usage.used <= low * usage.total:
                break
        if usage.used > high * usage.total:
            log.warning(
                "media volume above high water with nothing left to delete used=%d total=%d",
                usage.used, usage.total,
            )  # fmt: skip
        await self._sweep_orphans()
        return deleted

    async def _delete_quietly(self, rid: str, reason: str) -> list[str]:
        try:
            await self.delete(rid, reason)
        except (NotFound, Conflict):
            return []
        return [rid]

    async def _sweep_orphans(self) -> None:
        """Folders with no live row: a channel deleted with its rows, a crash mid-delete, a
        recording deleted through another host (its row is 'deleted', its folder is here)."""
        known = {r["id"] for r in await self.db.fetch(
            "SELECT id FROM recordings WHERE state <> 'deleted'"
        )}  # fmt: skip
        known |= {r.recording_id for r in self.active.values()}
        now = time.time()
        for folder in await asyncio.to_thread(lambda: list(self.root.glob("*/*"))):
            if folder.name in known or not folder.is_dir():
                continue
            with contextlib.suppress(OSError):
                if now - folder.stat().st_mtime > ORPHAN_AGE_S:
                    await asyncio.to_thread(shutil.rmtree, folder, True)
                    log.warning("recording folder without a row removed path=%s", folder.name)

    async def refresh_metrics(self) -> None:
        """Gauges from the table and the volume."""
        usage = await asyncio.to_thread(shutil.disk_usage, self.root)
        MEDIA_USED.set(usage.used)
        MEDIA_FREE.set(usage.free)
        MEDIA_SIZE.set(usage.total)
        rows = await self.db.fetch(
            "SELECT state, count(*) AS n, coalesce(sum(bytes), 0) AS b, "
            "coalesce(sum(duration_s), 0) AS s FROM recordings GROUP BY state"
        )
        by_state = {r["state"]: r for r in rows}
        for state in STATES[:-1]:
            row = by_state.get(state)
            RECORDINGS_GAUGE.labels(state).set(row["n"] if row else 0)
            RECORDINGS_BYTES.labels(state).set(row["b"] if row else 0)
        backlog = by_state.get("compressing")
        COMPRESS_BACKLOG.set(backlog["n"] if backlog else 0)
        COMPRESS_BACKLOG_SECONDS.set(backlog["s"] if backlog else 0)

    async def housekeeping_loop(self) -> None:
        """Gauges every few seconds; retention every minute, at once above high water."""
        last_retention = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self.refresh_metrics()
                usage = await asyncio.to_thread(shutil.disk_usage, self.root)
                over = usage.used > self.settings.media_high_water * usage.total
                if over or loop.time() - last_retention >= RETENTION_S:
                    last_retention = loop.time()
                    await self.enforce_retention()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("recordings housekeeping failed")
            await asyncio.sleep(HOUSEKEEPING_S)

    async def _recover_then_catch_up(self) -> None:
        try:
            await self.recover()
        finally:
            self.recovered.set()
        # A channel that went live before we subscribed (reconcile is quick) still records.
        for slug in list(self.app[LIVE].started):
            await self.start_recording(slug)
        self.wake.set()

    async def start(self) -> None:
        """Subscribe first (no event is missed), then recover and start the loops."""
        self.root.mkdir(parents=True, exist_ok=True)
        # Rows from before hosts were recorded are this host's: right for the single-host
        # deployments that existed then (with several, the first host to start takes them).
        await self.db.execute("UPDATE recordings SET host = $1 WHERE host = ''", self.node)
        self._unsubscribe = self.app[EVENTS].subscribe(self.on_stream)
        self._background(self._recover_then_catch_up())
        self._loops = [
            asyncio.create_task(self.compress_loop(), name="recordings-compress"),
            asyncio.create_task(self.housekeeping_loop(), name="recordings-housekeeping"),
        ]

    async def close(self) -> None:
        """Stop the loops and the job; stop each recorder and finalize what it captured."""
        self._unsubscribe()
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        recorders = list(self.active.values())
        self.active.clear()
        for recorder in recorders:
            self._background(self._end(recorder))
        # Remuxing is quick; what does not finish here is finalized at the next start.
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=60)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def recordings(app: web.Application) -> AsyncIterator[None]:
    """Own recorders, compression and retention for the life of the app."""
    state = Recordings(app)
    app[RECORDINGS] = state
    await state.start()
    yield
    await state.close()
