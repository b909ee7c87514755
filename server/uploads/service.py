"""Uploads for the life of the app: space checks, acceptance, expiry, the VOD transcode queue."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from aiohttp import web

from server import channels
from server.errors import ApiError, Conflict, NotFound
from server.keys import DB, RECORDINGS, SETTINGS, TRANSCODERS, UPLOADS
from server.recordings.gate import CompressGate
from server.settings import Settings
from server.uploads import metrics
from server.uploads.store import (
    UPLOAD_ID_RE,
    VIDEO_ID_RE,
    new_upload_id,
    new_video_id,
    upload_transition,
    video_transition,
)
from transcoder import vod
from transcoder.ladder import LadderConfig
from transcoder.playlist import ENDLIST, write_master
from transcoder.progress import Progress
from transcoder.recordings import policy
from transcoder.recordings.process import BACKGROUND_PRIORITY, FfmpegRun, reap, run_to_end
from transcoder.waiting import wait_event

log = logging.getLogger("onair.uploads")

DATA = "data"  # the uploaded bytes, appended as they arrive
GATE_TICK_S = 2.0  # how often a running VOD job looks at live load
PROGRESS_EVERY_S = 2.0  # how often a job's progress is written to the table
ORPHAN_AGE_S = 3600.0  # an upload folder without a row this old is left over from a crash
PROBE_TIMEOUT_S = 60.0


class InsufficientStorage(ApiError):
    """The media volume cannot take the bytes (HTTP 507)."""

    status = 507


class Uploads:
    """Folders, locks, the acceptance check, expiry and the one-at-a-time VOD queue."""

    def __init__(self, app: web.Application) -> None:
        """Reads settings; touches nothing until start()."""
        settings: Settings = app[SETTINGS]
        self.app = app
        self.settings = settings
        self.root = settings.media_root / "uploads"
        self.videos_root = settings.media_root / "videos"
        self.run_dir = settings.media_root / "run" / "videos"
        window = (
            policy.Window.parse(settings.compression_window)
            if settings.compression_window
            else None
        )
        # Its own gate object (its own CPU sample and calm count), the same rules and settings.
        self.gate = CompressGate(app, window, settings.compress_live_margin)
        self.locks: dict[str, asyncio.Lock] = {}
        self.create_lock = asyncio.Lock()  # space check + insert, so two creations never overbook
        self.wake = asyncio.Event()
        self.job: tuple[str, asyncio.Task[None]] | None = None
        self._loops: list[asyncio.Task[None]] = []

    @property
    def db(self) -> asyncpg.Pool:
        return self.app[DB]

    def upload_dir(self, uid: str) -> Path:
        """MEDIA_DIR/uploads/<id>; the id is validated before it reaches a path."""
        if not UPLOAD_ID_RE.match(uid):
            raise ValueError("bad upload id")
        return self.root / uid

    def data_path(self, uid: str) -> Path:
        """The file the upload's bytes are appended to."""
        return self.upload_dir(uid) / DATA

    def video_dir(self, channel: str, vid: str) -> Path:
        """MEDIA_DIR/videos/<slug>/<id>; both validated."""
        if not channels.valid_slug(channel) or not VIDEO_ID_RE.match(vid):
            raise ValueError("bad channel or video id")
        return self.videos_root / channel / vid

    def lock(self, uid: str) -> asyncio.Lock:
        """One writer per upload at a time (a retried PATCH waits for the dropped one)."""
        return self.locks.setdefault(uid, asyncio.Lock())

    # -- creation and acceptance -----------------------------------------------------------

    async def room_for(self, length: int) -> None:
        """507 unless length fits in free space minus the recording reserve and other uploads."""
        usage = await asyncio.to_thread(shutil.disk_usage, self.root)
        pending = await self.db.fetchval(
            "SELECT coalesce(sum(length - received), 0) FROM uploads WHERE state = 'receiving'"
        )
        room = usage.free - self.settings.recording_reserve_bytes - int(pending)
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
            folder = self.upload_dir(uid)
            await asyncio.to_thread(folder.mkdir, parents=True)
            await asyncio.to_thread(self.data_path(uid).touch)
            try:
                await self.db.execute(
                    "INSERT INTO uploads (id, channel, length, filename, title) "
                    "VALUES ($1, $2, $3, $4, $5)",
                    uid, channel, length, filename, title,
                )  # fmt: skip
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
            data = await _ffprobe(self.settings.ffprobe, path)
            accepted = vod.check_upload(data)
        except vod.Rejected as err:
            await self._reject(uid, channel, str(err))
            raise ApiError(str(err), 415) from err
        vid = new_video_id()
        size = (await asyncio.to_thread(path.stat)).st_size
        async with self.db.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO videos (id, channel, upload_id, title, duration_s, width, height, "
                "source_bytes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                vid, channel, uid, title, accepted.duration_s, accepted.source.width,
                accepted.source.height, size,
            )  # fmt: skip
            if not await upload_transition(conn, uid, "done", received=size, video_id=vid):
                raise Conflict("the upload was terminated")
        metrics.UPLOADS.labels("done").inc()
        log.info(
            "upload accepted channel=%s upload=%s video=%s format=%s video=%s %dx%d duration=%.1fs",
            channel, uid, vid, accepted.format_name, accepted.source.video_codec,
            accepted.source.width, accepted.source.height, accepted.duration_s,
        )  # fmt: skip
        self.wake.set()
        return vid

    async def _reject(self, uid: str, channel: str, why: str) -> None:
        await upload_transition(self.db, uid, "rejected", error=why[:500])
        await asyncio.to_thread(shutil.rmtree, self.upload_dir(uid), True)
        metrics.UPLOADS.labels("rejected").inc()
        log.warning("upload rejected channel=%s upload=%s why=%s", channel, uid, why)

    async def terminate(self, uid: str) -> None:
        """tus termination: forget the upload and delete its bytes (409 once it is a video)."""
        if not await upload_transition(self.db, uid, "terminated"):
            raise Conflict("the upload is no longer receiving; delete its video instead")
        await asyncio.to_thread(shutil.rmtree, self.upload_dir(uid), True)
        metrics.UPLOADS.labels("terminated").inc()
        log.info("upload terminated upload=%s", uid)

    # -- expiry ----------------------------------------------------------------------------

    async def expire(self) -> list[str]:
        """Incomplete uploads idle past upload_expiry_s: marked expired, bytes deleted."""
        rows = await self.db.fetch(
            "UPDATE uploads SET state = 'expired', updated_at = now() "
            "WHERE state = 'receiving' AND updated_at < now() - make_interval(secs => $1) "
            "RETURNING id, channel",
            self.settings.upload_expiry_s,
        )
        for row in rows:
            await asyncio.to_thread(shutil.rmtree, self.upload_dir(row["id"]), True)
            metrics.UPLOADS.labels("expired").inc()
            log.info("upload expired channel=%s upload=%s", row["channel"], row["id"])
        await self._sweep()
        return [r["id"] for r in rows]

    async def _sweep(self) -> None:
        """Upload folders no row needs any more (a crash between steps)."""
        needed = {
            r["id"]
            for r in await self.db.fetch(
                "SELECT u.id FROM uploads u LEFT JOIN videos v ON v.id = u.video_id "
                "WHERE u.state = 'receiving' OR (u.state = 'done' "
                "AND v.state IN ('queued', 'transcoding'))"
            )
        }
        now = time.time()
        for folder in await asyncio.to_thread(lambda: list(self.root.iterdir())):
            if folder.name in needed or folder.name in self.locks:
                continue
            with contextlib.suppress(OSError):
                if now - folder.stat().st_mtime > ORPHAN_AGE_S:
                    await asyncio.to_thread(shutil.rmtree, folder, True)
                    log.warning("upload folder without a row removed path=%s", folder.name)

    async def housekeeping_loop(self) -> None:
        """Expiry checks a few times per expiry period, at most once a minute."""
        interval = min(60.0, max(0.5, self.settings.upload_expiry_s / 4))
        while True:
            try:
                await self.expire()
                queued = await self.db.fetchval(
                    "SELECT count(*) FROM videos WHERE state IN ('queued', 'transcoding')"
                )
                metrics.VOD_BACKLOG.set(queued)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("uploads housekeeping failed")
            await asyncio.sleep(interval)

    # -- the VOD queue ---------------------------------------------------------------------

    def _recordings_busy(self) -> bool:
        """A recording compression job runs: one background encoder at a time."""
        return RECORDINGS in self.app and self.app[RECORDINGS].job is not None

    async def vod_loop(self) -> None:
        """One job at a time, oldest first, under the compression gate; woken by accept()."""
        while True:
            await wait_event(self.wake, 10)
            self.wake.clear()
            while self.gate.may_start() and not self._recordings_busy():
                row = await self.db.fetchrow(
                    "SELECT id, channel, upload_id, duration_s FROM videos "
                    "WHERE state = 'queued' ORDER BY created_at LIMIT 1"
                )
                if row is None:
                    break
                task = asyncio.create_task(
                    self._transcode(row["id"], row["channel"], row["upload_id"])
                )
                self.job = (row["id"], task)
                try:
                    await asyncio.shield(task)
                except asyncio.CancelledError:
                    if not task.cancelled():
                        task.cancel()
                        await asyncio.gather(task, return_exceptions=True)
                        raise
                    # cancelled by a delete; the loop goes on
                except Exception:
                    log.exception("video transcode crashed video=%s", row["id"])
                    await video_transition(
                        self.db, row["id"], "failed", ("transcoding", "queued"),
                        error="internal error while transcoding",
                    )  # fmt: skip
                finally:
                    self.job = None

    def _ladder_config(self) -> LadderConfig:
        if TRANSCODERS in self.app:
            live = self.app[TRANSCODERS].transcoders.config
        else:
            live = LadderConfig()
        return vod.vod_config(live, self.settings.compress_preset)

    async def _transcode(self, vid: str, channel: str, uid: str) -> None:
        source_path = self.data_path(uid)
        out = self.video_dir(channel, vid)
        label = f"channel={channel} video={vid}"
        if not await video_transition(
            self.db, vid, "transcoding", ("queued",), started_at=datetime.now(UTC), progress=0.0
        ):
            return
        try:
            accepted = vod.check_upload(await _ffprobe(self.settings.ffprobe, source_path))
        except (vod.Rejected, OSError) as err:
            await self._failed(vid, channel, uid, f"source unreadable: {err}")
            return
        config = self._ladder_config()
        renditions = vod.vod_ladder(accepted.source, config)
        await asyncio.to_thread(vod.remove, out)
        await asyncio.to_thread(out.mkdir, parents=True)
        for r in renditions:
            (out / r.name).mkdir()
        rc, tail = await run_to_end(
            vod.poster_args(self.settings.ffmpeg, source_path, out / vod.POSTER,
                            accepted.duration_s),
            cwd=out, pidfile=self.run_dir / f"poster-{vid}.pid", label=label,
            priority=BACKGROUND_PRIORITY,
        )  # fmt: skip
        if rc != 0:
            log.warning("poster failed %s rc=%d: %s", label, rc, tail)
        log.info(
            "video transcode started %s rungs=%s preset=%s",
            label, ",".join(r.name for r in renditions), config.preset,
        )  # fmt: skip
        args = vod.ladder_args(
            source_path, out, renditions, accepted.source, config, self.settings.ffmpeg
        )
        started = time.monotonic()
        rc, tail = await self._run_gated(vid, args, out, label, accepted.duration_s)
        if rc != 0:
            await self._failed(vid, channel, uid, f"transcode failed rc={rc}: {tail}")
            return
        problem = await asyncio.to_thread(_check_playlists, out, [r.name for r in renditions])
        if problem is not None:
            await self._failed(vid, channel, uid, problem)
            return
        await asyncio.to_thread(write_master, out, renditions, accepted.source)
        size = await asyncio.to_thread(vod.folder_bytes, out)
        done = await video_transition(
            self.db, vid, "ready", ("transcoding",),
            ready_at=datetime.now(UTC), progress=1.0, bytes=size,
            renditions=[r.name for r in renditions],
        )  # fmt: skip
        if done:
            await asyncio.to_thread(shutil.rmtree, self.upload_dir(uid), True)
            metrics.VOD_JOBS.labels("ready").inc()
            log.info("video ready %s bytes=%d took=%.1fs", label, size, time.monotonic() - started)

    async def _run_gated(
        self, vid: str, args: list[str], out: Path, label: str, duration_s: float
    ) -> tuple[int, str]:
        """Run the ladder ffmpeg; pause it whenever the gate says live needs the CPU."""
        run: FfmpegRun | None = None
        last_write = 0.0
        fraction = 0.0

        def on_start(r: FfmpegRun) -> None:
            nonlocal run
            run = r

        def on_progress(p: Progress) -> None:
            nonlocal fraction
            fraction = vod.progress_fraction(p.out_time_s, duration_s)

        job = asyncio.create_task(
            run_to_end(
                args, cwd=out, pidfile=self.run_dir / f"ladder-{vid}.pid", label=label,
                priority=BACKGROUND_PRIORITY, on_start=on_start, on_progress=on_progress,
            )
        )  # fmt: skip
        try:
            while not job.done():
                await asyncio.wait({job}, timeout=GATE_TICK_S)
                if run is None or job.done():
                    continue
                if self.gate.should_pause(run.paused):
                    if not run.paused:
                        log.info("video transcode paused for live %s", label)
                    run.pause()
                elif run.paused:
                    log.info("video transcode resumed %s", label)
                    run.resume()
                metrics.VOD_PAUSED.set(1 if run.paused else 0)
                if time.monotonic() - last_write >= PROGRESS_EVERY_S:
                    last_write = time.monotonic()
                    await self.db.execute(
                        "UPDATE videos SET progress = $2 WHERE id = $1 AND state = 'transcoding'",
                        vid, fraction,
                    )  # fmt: skip
            return job.result()
        finally:
            if not job.done():
                job.cancel()
                await asyncio.gather(job, return_exceptions=True)
            metrics.VOD_PAUSED.set(0)

    async def _failed(self, vid: str, channel: str, uid: str, why: str) -> None:
        log.error("video failed channel=%s video=%s error=%s", channel, vid, why)
        await video_transition(self.db, vid, "failed", ("transcoding", "queued"), error=why[:500])
        await asyncio.to_thread(vod.remove, self.video_dir(channel, vid))
        await asyncio.to_thread(shutil.rmtree, self.upload_dir(uid), True)
        metrics.VOD_JOBS.labels("failed").inc()

    async def delete_video(self, vid: str) -> None:
        """Stop its job if it runs, mark it deleted, remove the ladder and any source left."""
        row = await self.db.fetchrow(
            "SELECT channel, upload_id, state FROM videos WHERE id = $1", vid
        )
        if row is None or row["state"] == "deleted":
            raise NotFound(f"no video {vid}")
        if self.job is not None and self.job[0] == vid:
            task = self.job[1]
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        done = await video_transition(
            self.db, vid, "deleted", ("queued", "transcoding", "ready", "failed"),
            deleted_at=datetime.now(UTC),
        )  # fmt: skip
        if not done:
            raise Conflict("video changed state; try again")
        await asyncio.to_thread(vod.remove, self.video_dir(row["channel"], vid))
        await asyncio.to_thread(shutil.rmtree, self.upload_dir(row["upload_id"]), True)
        log.info("video deleted channel=%s video=%s", row["channel"], vid)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Folders, orphan ffmpegs of a killed server, interrupted jobs back in the queue."""
        for folder in (self.root, self.videos_root):
            await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        killed = await reap(self.run_dir)
        if killed:
            log.warning("video orphans reaped pids=%s", ",".join(map(str, killed)))
        await self.db.execute("UPDATE videos SET state = 'queued' WHERE state = 'transcoding'")
        self._loops = [
            asyncio.create_task(self.vod_loop(), name="uploads-vod"),
            asyncio.create_task(self.housekeeping_loop(), name="uploads-housekeeping"),
        ]
        self.wake.set()

    async def close(self) -> None:
        """Stop the loops; a job cut short goes back to the queue for the next start."""
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.db.execute("UPDATE videos SET state = 'queued' WHERE state = 'transcoding'")


async def _ffprobe(ffprobe: str, path: Path) -> dict[str, object]:
    """ffprobe's JSON for a file; a Rejected when it cannot read it at all."""
    proc = await asyncio.create_subprocess_exec(
        *vod.probe_args(ffprobe, path),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), PROBE_TIMEOUT_S)
    except (TimeoutError, asyncio.CancelledError):
        proc.kill()
        await proc.wait()
        raise
    try:
        data = json.loads(out) if proc.returncode == 0 else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise vod.Rejected("not a video file (ffprobe cannot read it)")
    return data


def _check_playlists(out: Path, names: list[str]) -> str | None:
    """None when every rendition's playlist is finished and has segments."""
    for name in names:
        try:
            text = (out / name / "index.m3u8").read_text()
        except OSError:
            return f"rendition {name} wrote no playlist"
        if ENDLIST not in text or ".m4s" not in text:
            return f"rendition {name} playlist is incomplete"
    return None


async def uploads(app: web.Application) -> AsyncIterator[None]:
    """Own upload housekeeping and the VOD queue for the life of the app."""
    state = Uploads(app)
    app[UPLOADS] = state
    await state.start()
    yield
    await state.close()
