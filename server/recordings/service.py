"""Recordings for the life of the app: capture, crash recovery, deletion and retention; the
compression of finished recordings runs in the host's encoder slot (compression.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

from server.background.slot import ENCODER, EncoderSlot
from server.db import DB
from server.events import EVENTS, EventBus, StreamEvent
from server.live.streams import STREAMS, Streams
from server.owner import OWNER
from server.recordings import store
from server.recordings.compression import Compression
from server.recordings.metrics import (
    COMPRESS_BACKLOG,
    COMPRESS_BACKLOG_SECONDS,
    MEDIA_FREE,
    MEDIA_SIZE,
    MEDIA_USED,
    RECORDINGS_BYTES,
    RECORDINGS_DELETED,
)
from server.recordings.metrics import RECORDINGS as RECORDINGS_GAUGE
from server.recordings.store import ID_RE, IN_PROGRESS, STATES, new_id, transition
from server.settings import SETTINGS, Settings
from server.tasks import cancel_and_wait
from server.web.errors import Conflict, NotFound
from server.webhooks import outbox
from transcoder.ffmpeg.process import reap_orphans
from transcoder.layout import MediaLayout, loopback_rtmp, valid_slug
from transcoder.recordings import media, policy
from transcoder.recordings.clock import read_clock
from transcoder.recordings.recorder import Recorder, RecorderOptions

log = logging.getLogger("onair.recordings")

HOUSEKEEPING_S = 10.0  # disk gauges, state gauges
RETENTION_S = 60.0  # age and water-mark checks (at once when the volume is over high water)
ORPHAN_AGE_S = 3600.0  # a folder without a row this old is left over from a crash


class Recordings:
    """Everything about recordings that lives as long as the app."""

    def __init__(
        self,
        settings: Settings,
        db: asyncpg.Pool,
        events: EventBus,
        streams: Streams,
        slot: EncoderSlot,
    ) -> None:
        """Reads settings; touches nothing until start()."""
        self.settings = settings
        self.db = db
        self.events = events
        self.streams = streams
        self.slot = slot
        layout = MediaLayout(settings.media_root)
        self.root = layout.recordings
        self.run_dir = layout.recordings_run
        self.tools = media.Tools(settings.ffmpeg, settings.ffprobe, self.run_dir)
        self.recorder_options = RecorderOptions(reserve_bytes=settings.recording_reserve_bytes)
        self.compression = Compression(db, slot, settings, self.tools, self.directory)
        self.active: dict[str, Recorder] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._retention = asyncio.Lock()
        self.recovered = asyncio.Event()  # set once the sessions a crash left are finalized
        self.node = settings.node_name  # background work touches only this host's rows

    def directory(self, channel: str, rid: str) -> Path:
        """MEDIA_DIR/recordings/<slug>/<id>; both are validated before they reach a path."""
        if not valid_slug(channel) or not ID_RE.match(rid):
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
            loopback_rtmp(self.settings.rtmp_port, channel),
            self.directory(channel, rid),
            ffmpeg=self.settings.ffmpeg,
            run_dir=self.run_dir,
            options=self.recorder_options,
        )
        self.active[channel] = recorder  # before the await: a second event sees it
        try:
            await store.insert(self.db, rid, channel, self.node)
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
        clock = await asyncio.to_thread(read_clock, directory)
        now = datetime.now(UTC)
        async with self.db.acquire() as conn, conn.transaction():
            # Playable from here on (compression swaps files under the same links): announced
            # in the same transaction, once.
            if await transition(
                conn, rid, to, IN_PROGRESS,
                finalized_at=now, duration_s=info.duration_s, bytes=info.bytes,
                original_bytes=info.bytes, codec=info.video_codec,
                clock=json.dumps(clock) if clock else None,
            ):  # fmt: skip
                recording = {"id": rid, "duration_s": info.duration_s, "bytes": info.bytes}
                await outbox.enqueue(conn, "recording.ready", channel, now, recording=recording)
        log.info(
            "recording finalized channel=%s recording=%s duration=%.1fs bytes=%d codec=%s",
            channel, rid, info.duration_s, info.bytes, info.video_codec,
        )  # fmt: skip
        self.slot.wake()

    async def recover(self) -> None:
        """After a crash: reap orphan ffmpegs, finalize sessions the dead server left open."""
        killed = await reap_orphans(self.run_dir)
        if killed:
            log.warning("recording orphans reaped pids=%s", ",".join(map(str, killed)))
        active = [r.recording_id for r in self.active.values()]
        for row in await store.interrupted(self.db, self.node, active):
            log.warning(
                "recording recovered after a crash channel=%s recording=%s state=%s",
                row["channel"], row["id"], row["state"],
            )  # fmt: skip
            await transition(
                self.db, row["id"], "finalizing", ("recording",), ended_at=datetime.now(UTC)
            )
            await self.finalize(row["id"], row["channel"])

    # -- deletion and retention ------------------------------------------------------------

    async def delete(self, rid: str, reason: str) -> None:
        """Mark deleted, then remove the files; NotFound, or Conflict while in progress.

        Any host may delete any host's recording: where the files are elsewhere there is
        nothing here to remove, and the owning host's orphan sweep removes its folder.
        """
        row = await store.get(self.db, rid)
        if row is None or row["state"] == "deleted":
            raise NotFound(f"no recording {rid}")
        if row["state"] in IN_PROGRESS:
            raise Conflict("recording in progress")
        await self.slot.cancel(self.compression.kind, rid)
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
        rows = await store.retained(self.db, self.node)
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
        known = await store.kept_ids(self.db)
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
        by_state = await store.totals_by_state(self.db)
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
        for slug in list(self.streams.started):
            await self.start_recording(slug)
        self.slot.wake()

    async def start(self) -> None:
        """Subscribe first (no event is missed), then recover and start the loops."""
        self.root.mkdir(parents=True, exist_ok=True)
        await store.claim_legacy(self.db, self.node)
        self._unsubscribe = self.events.subscribe(self.on_stream)
        self._background(self._recover_then_catch_up())
        self.slot.add(self.compression)
        self._loops = [
            asyncio.create_task(self.housekeeping_loop(), name="recordings-housekeeping"),
        ]

    async def close(self) -> None:
        """Stop the loops and the job; stop each recorder and finalize what it captured."""
        self._unsubscribe()
        await self.slot.withdraw(self.compression)
        await cancel_and_wait(self._loops)
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


RECORDINGS: web.AppKey[Recordings] = web.AppKey("recordings", Recordings)


async def recordings(app: web.Application) -> AsyncIterator[None]:
    """Own recorders, compression and retention for the life of the app."""
    state = Recordings(app[SETTINGS], app[DB], app[EVENTS], app[STREAMS], app[ENCODER])
    app[RECORDINGS] = state
    # Capture, recovery and retention are the host owner's; any worker answers the API.
    async with app[OWNER].duty("recordings", state.start, state.close):
        yield
