"""The VOD queue: one transcode at a time, oldest first, paused whenever live needs the CPU."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
from aiohttp import web

from server.errors import Conflict, NotFound
from server.keys import DB, RECORDINGS, SETTINGS, TRANSCODERS
from server.recordings.gate import CompressGate
from server.uploads import metrics
from server.uploads.probe import ffprobe_json
from server.uploads.store import video_transition
from transcoder import vod
from transcoder.ladder import LadderConfig
from transcoder.playlist import ENDLIST, write_master
from transcoder.progress import Progress
from transcoder.recordings import policy
from transcoder.recordings.process import BACKGROUND_PRIORITY, FfmpegRun, run_to_end
from transcoder.waiting import wait_event

if TYPE_CHECKING:
    from server.uploads.service import Uploads

log = logging.getLogger("onair.uploads")

GATE_TICK_S = 2.0  # how often a running VOD job looks at live load
PROGRESS_EVERY_S = 2.0  # how often a job's progress is written to the table


class VodQueue:
    """Videos from accepted uploads into ladders, under recording compression's rules."""

    def __init__(self, app: web.Application, uploads: Uploads) -> None:
        """Reads settings; touches nothing until loop() runs."""
        self.app = app
        self.uploads = uploads
        self.settings = app[SETTINGS]
        window = (
            policy.Window.parse(self.settings.compression_window)
            if self.settings.compression_window
            else None
        )
        # Its own gate object (its own CPU sample and calm count), the same rules and settings.
        self.gate = CompressGate(app, window, self.settings.compress_live_margin)
        self.wake = asyncio.Event()
        self.job: tuple[str, asyncio.Task[None]] | None = None

    @property
    def db(self) -> asyncpg.Pool:
        return self.app[DB]

    def _recordings_busy(self) -> bool:
        """A recording compression job runs: one background encoder at a time."""
        return RECORDINGS in self.app and self.app[RECORDINGS].job is not None

    async def loop(self) -> None:
        """One job at a time, oldest first, under the compression gate; woken by accept()."""
        while True:
            await wait_event(self.wake, 10)
            self.wake.clear()
            while self.gate.may_start() and not self._recordings_busy():
                # Only videos whose source was uploaded to this host.
                row = await self.db.fetchrow(
                    "SELECT id, channel, upload_id, duration_s FROM videos "
                    "WHERE host = $1 AND state = 'queued' ORDER BY created_at LIMIT 1",
                    self.uploads.node,
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
        source_path = self.uploads.data_path(uid)
        out = self.uploads.video_dir(channel, vid)
        label = f"channel={channel} video={vid}"
        if not await video_transition(
            self.db, vid, "transcoding", ("queued",), started_at=datetime.now(UTC), progress=0.0
        ):
            return
        try:
            accepted = vod.check_upload(await ffprobe_json(self.settings.ffprobe, source_path))
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
            cwd=out, pidfile=self.uploads.run_dir / f"poster-{vid}.pid", label=label,
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
        # Inside a rendition folder, as command.working_dir says: hlsenc makes "../%v" there.
        cwd = out / renditions[0].name
        rc, tail = await self._run_gated(vid, args, cwd, label, accepted.duration_s)
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
            await asyncio.to_thread(shutil.rmtree, self.uploads.upload_dir(uid), True)
            metrics.VOD_JOBS.labels("ready").inc()
            log.info("video ready %s bytes=%d took=%.1fs", label, size, time.monotonic() - started)

    async def _run_gated(
        self, vid: str, args: list[str], cwd: Path, label: str, duration_s: float
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
                args, cwd=cwd, pidfile=self.uploads.run_dir / f"ladder-{vid}.pid", label=label,
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
        await asyncio.to_thread(vod.remove, self.uploads.video_dir(channel, vid))
        await asyncio.to_thread(shutil.rmtree, self.uploads.upload_dir(uid), True)
        metrics.VOD_JOBS.labels("failed").inc()

    async def delete(self, vid: str) -> None:
        """Stop its job if it runs, mark it deleted, remove the ladder and any source left.

        Any host may delete any host's video: where the files are elsewhere there is nothing
        here to remove, and the owning host's sweeps remove them.
        """
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
        await asyncio.to_thread(vod.remove, self.uploads.video_dir(row["channel"], vid))
        await asyncio.to_thread(shutil.rmtree, self.uploads.upload_dir(row["upload_id"]), True)
        log.info("video deleted channel=%s video=%s", row["channel"], vid)


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
