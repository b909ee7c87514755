"""Uploads for the life of the app: space checks, acceptance, termination, expiry; the VOD
jobs of accepted uploads run in the host's encoder slot (jobs.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
from aiohttp import web

from server.background.slot import ENCODER, EncoderSlot
from server.db import DB
from server.events import EVENTS, EventBus, StreamEvent
from server.live.ladders import LADDERS
from server.owner import OWNER
from server.settings import SETTINGS, Settings
from server.tasks import cancel_and_wait
from server.uploads import metrics, store
from server.uploads.jobs import PROBE_TIMEOUT_S, VodJobs
from server.uploads.paths import VideoPaths
from server.uploads.store import new_upload_id, new_video_id, upload_transition
from server.web.errors import ApiError, Conflict
from transcoder import vod
from transcoder.ffmpeg.probe import ProbeError, probe_json
from transcoder.ffmpeg.process import UPLOAD_FORMATS, reap_orphans
from transcoder.layout import MediaLayout
from transcoder.live.ladder import LadderConfig

log = logging.getLogger("onair.uploads")

ORPHAN_AGE_S = 3600.0  # an upload folder without a row this old is left over from a crash


class InsufficientStorage(ApiError):
    """The media volume cannot take the bytes (HTTP 507)."""

    status = 507


class Uploads:
    """Folders, locks, the space and acceptance checks, expiry; owns the VOD jobs."""

    def __init__(
        self,
        settings: Settings,
        db: asyncpg.Pool,
        events: EventBus,
        slot: EncoderSlot,
        ladder: LadderConfig,
    ) -> None:
        """Reads settings; touches nothing until start()."""
        self.settings = settings
        self.db = db
        self.events = events
        self.slot = slot
        layout = MediaLayout(settings.media_root)
        self.root = layout.uploads
        self.videos_root = layout.videos
        self.paths = VideoPaths(layout)
        self.locks: dict[str, asyncio.Lock] = {}
        self.create_lock = asyncio.Lock()  # space check + insert, so two creations never overbook
        self.node = settings.node_name  # background work touches only this host's rows
        self.jobs = VodJobs(db, slot, settings, ladder, self.paths)
        self._loops: list[asyncio.Task[None]] = []
        self._unsubscribe: Callable[[], None] = lambda: None

    def data_path(self, uid: str) -> Path:
        """The file the upload's bytes are appended to."""
        return self.paths.data_path(uid)

    def lock(self, uid: str) -> asyncio.Lock:
        """One writer per upload at a time (a retried PATCH waits for the dropped one)."""
        return self.locks.setdefault(uid, asyncio.Lock())

    # -- creation and acceptance -----------------------------------------------------------

    async def room_for(self, length: int) -> None:
        """507 unless length fits in free space minus the recording reserve and other uploads."""
        usage = await asyncio.to_thread(shutil.disk_usage, self.root)
        pending = await store.promised_bytes(self.db, self.node)
        room = usage.free - self.settings.recording_reserve_bytes - pending
        if length > room:
            metrics.UPLOADS.labels("no_space").inc()
            raise InsufficientStorage(
                f"not enough free space for {length} bytes (room for {max(0, room)})"
            )

    async def create(self, channel: str, length: int, filename: str | None, title: str) -> str:
        """A new upload row and its empty data file; 507 when the volume has no room."""
        async with self.create_lock:
            await self.room_for(length)
            uid = new_upload_id()
            folder = self.paths.upload_dir(uid)
            await asyncio.to_thread(folder.mkdir, parents=True)
            await asyncio.to_thread(self.data_path(uid).touch)
            try:
                await store.insert_upload(self.db, uid, channel, length, filename, title, self.node)
            except BaseException:
                await asyncio.to_thread(shutil.rmtree, folder, True)
                raise
        metrics.UPLOADS.labels("created").inc()
        log.info("upload created channel=%s upload=%s length=%d", channel, uid, length)
        return uid

    async def accept(self, uid: str, channel: str, title: str) -> str:
        """Every byte is in: ffprobe it, then queue a video or reject and delete the bytes.

        Returns the video id; raises ApiError(415) naming why the file was refused.
        """
        path = self.data_path(uid)
        try:
            try:
                data = await probe_json(
                    self.settings.ffprobe, path, timeout=PROBE_TIMEOUT_S, formats=UPLOAD_FORMATS
                )
            except ProbeError as err:
                raise vod.Rejected("not a video file (ffprobe cannot read it)") from err
            accepted = vod.check_upload(data)
        except vod.Rejected as err:
            await self._reject(uid, channel, str(err))
            raise ApiError(str(err), 415) from err
        vid = new_video_id()
        size = (await asyncio.to_thread(path.stat)).st_size
        async with self.db.acquire() as conn, conn.transaction():
            await store.insert_video(
                conn, vid, uid, channel, title, self.node, accepted.duration_s,
                accepted.source.width, accepted.source.height, size,
            )  # fmt: skip
            if not await upload_transition(conn, uid, "done", received=size, video_id=vid):
                raise Conflict("the upload was terminated")
        metrics.UPLOADS.labels("done").inc()
        log.info(
            "upload accepted channel=%s upload=%s video=%s format=%s video=%s %dx%d duration=%.1fs",
            channel, uid, vid, accepted.format_name, accepted.source.video_codec,
            accepted.source.width, accepted.source.height, accepted.duration_s,
        )  # fmt: skip
        self.slot.wake()
        return vid

    async def _reject(self, uid: str, channel: str, why: str) -> None:
        await upload_transition(self.db, uid, "rejected", error=why[:500])
        await asyncio.to_thread(shutil.rmtree, self.paths.upload_dir(uid), True)
        metrics.UPLOADS.labels("rejected").inc()
        log.warning("upload rejected channel=%s upload=%s why=%s", channel, uid, why)

    async def terminate(self, uid: str) -> None:
        """tus termination: forget the upload and delete its bytes (409 once it is a video)."""
        if not await upload_transition(self.db, uid, "terminated"):
            raise Conflict("the upload is no longer receiving; delete its video instead")
        await asyncio.to_thread(shutil.rmtree, self.paths.upload_dir(uid), True)
        metrics.UPLOADS.labels("terminated").inc()
        log.info("upload terminated upload=%s", uid)

    # -- housekeeping ----------------------------------------------------------------------

    async def finish_stranded(self) -> list[str]:
        """Uploads whose every byte is on disk but that were never checked (the server died
        between the last write and ffprobe, so the client's last PATCH got no answer)."""
        finished = []
        for row in await store.receiving(self.db, self.node):
            uid = row["id"]
            lock = self.lock(uid)
            if lock.locked():
                continue  # a PATCH is writing (or accepting) it right now
            async with lock:
                try:
                    size = (await asyncio.to_thread(self.data_path(uid).stat)).st_size
                except FileNotFoundError:
                    size = -1
                if size == row["length"]:
                    log.warning("upload complete but never checked upload=%s", uid)
                    with contextlib.suppress(ApiError):  # refused: accept() deleted the bytes
                        await self.accept(uid, row["channel"], row["title"])
                    finished.append(uid)
            if not lock.locked():
                self.locks.pop(uid, None)
        return finished

    async def expire(self) -> list[str]:
        """Incomplete uploads idle past upload_expiry_s: marked expired, bytes deleted."""
        rows = await store.expire_idle(self.db, self.node, self.settings.upload_expiry_s)
        for row in rows:
            await asyncio.to_thread(shutil.rmtree, self.paths.upload_dir(row["id"]), True)
            metrics.UPLOADS.labels("expired").inc()
            log.info("upload expired channel=%s upload=%s", row["channel"], row["id"])
        await self._sweep()
        return [r["id"] for r in rows]

    async def _sweep(self) -> None:
        """Upload and video folders no row needs any more (a crash between steps, a delete
        through another host)."""
        needed = await store.needed_upload_ids(self.db)
        now = time.time()
        for folder in await asyncio.to_thread(lambda: list(self.root.iterdir())):
            if folder.name in needed or folder.name in self.locks:
                continue
            with contextlib.suppress(OSError):
                if now - folder.stat().st_mtime > ORPHAN_AGE_S:
                    await asyncio.to_thread(shutil.rmtree, folder, True)
                    log.warning("upload folder without a row removed path=%s", folder.name)
        # Ladders of deleted videos: a delete through another host left this host's files.
        kept = await store.kept_video_ids(self.db)
        for folder in await asyncio.to_thread(lambda: list(self.videos_root.glob("*/*"))):
            if folder.name in kept or not folder.is_dir():
                continue
            with contextlib.suppress(OSError):
                if now - folder.stat().st_mtime > ORPHAN_AGE_S:
                    await asyncio.to_thread(shutil.rmtree, folder, True)
                    log.warning("video folder without a row removed path=%s", folder.name)

    async def housekeeping_loop(self) -> None:
        """Expiry checks a few times per expiry period, at most once a minute."""
        interval = min(60.0, max(0.5, self.settings.upload_expiry_s / 4))
        while True:
            try:
                await self.finish_stranded()
                await self.expire()
                metrics.VOD_BACKLOG.set(await store.backlog(self.db))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("uploads housekeeping failed")
            await asyncio.sleep(interval)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Folders, orphan ffmpegs of a killed server, interrupted jobs back in the queue."""
        for folder in (self.root, self.videos_root):
            await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        killed = await reap_orphans(self.paths.run_dir)
        if killed:
            log.warning("video orphans reaped pids=%s", ",".join(map(str, killed)))
        await store.claim_legacy(self.db, self.node)
        await store.requeue(self.db, self.node)
        self._unsubscribe = self.events.subscribe(self._on_stream)
        self._loops = [
            asyncio.create_task(self.housekeeping_loop(), name="uploads-housekeeping"),
        ]
        self.slot.add(self.jobs)

    async def _on_stream(self, event: StreamEvent) -> None:
        """A channel went offline: queued videos may be able to start now."""
        if not event.live:
            self.slot.wake()

    async def close(self) -> None:
        """Stop the loops; a job cut short goes back to the queue for the next start."""
        self._unsubscribe()
        await self.slot.withdraw(self.jobs)
        await cancel_and_wait(self._loops)
        with contextlib.suppress(Exception):
            await store.requeue(self.db, self.node)


UPLOADS: web.AppKey[Uploads] = web.AppKey("uploads", Uploads)


async def uploads(app: web.Application) -> AsyncIterator[None]:
    """Own upload housekeeping and the VOD jobs for the life of the app."""
    ladder = app[LADDERS].config
    state = Uploads(app[SETTINGS], app[DB], app[EVENTS], app[ENCODER], ladder)
    app[UPLOADS] = state
    # Housekeeping and the VOD jobs are the host owner's; any worker receives uploads.
    async with app[OWNER].duty("uploads", state.start, state.close):
        yield
