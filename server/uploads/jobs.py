"""VOD jobs: each accepted upload into a ladder, oldest first, in the host's encoder slot
(one background encode at a time, paused whenever live needs the CPU)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from server.background.slot import EncoderSlot, Job
from server.settings import Settings
from server.uploads import metrics, store
from server.uploads.paths import VideoPaths
from server.uploads.store import video_transition
from server.web.errors import Conflict, NotFound
from server.webhooks import outbox
from transcoder import vod
from transcoder.ffmpeg.probe import ProbeError, probe_json
from transcoder.ffmpeg.process import (
    BACKGROUND_PRIORITY,
    UPLOAD_FORMATS,
    FfmpegProcess,
    run_to_end,
    tagged,
)
from transcoder.ffmpeg.progress import Progress
from transcoder.live.ladder import LadderConfig
from transcoder.live.playlist import ENDLIST, write_master

log = logging.getLogger("onair.uploads")

PROGRESS_EVERY_S = 2.0  # how often a job's progress is written to the table
PROBE_TIMEOUT_S = 60.0
TAG_PREFIX = "onair-video-"


class VodJobs:
    """The `vod` jobs of this host: videos from accepted uploads into ladders."""

    kind = "vod"

    def __init__(
        self,
        db: asyncpg.Pool,
        slot: EncoderSlot,
        settings: Settings,
        ladder: LadderConfig,
        paths: VideoPaths,
    ) -> None:
        """ladder: the live ladder, whose rungs and encoders the videos get."""
        self.db = db
        self.slot = slot
        self.settings = settings
        self.config = vod.vod_config(ladder, settings.compress_preset)
        self.paths = paths

    async def next_job(self) -> Job | None:
        """The oldest queued video whose source was uploaded to this host (see JobSource)."""
        row = await store.next_queued(self.db, self.settings.node_name)
        if row is None:
            return None
        vid, channel, uid = row["id"], row["channel"], row["upload_id"]
        return Job(self.kind, vid, lambda: self.transcode(vid, channel, uid))

    async def crashed(self, job: Job) -> None:
        """A crash fails the video (its uploader sees why in the listing)."""
        await video_transition(
            self.db, job.id, "failed", ("transcoding", "queued"),
            error="internal error while transcoding",
        )  # fmt: skip

    async def transcode(self, vid: str, channel: str, uid: str) -> None:
        """Probe the source again, cut a poster, run the ladder, check it, mark it ready."""
        source_path = self.paths.data_path(uid)
        out = self.paths.video_dir(channel, vid)
        label = f"channel={channel} video={vid}"
        if not await video_transition(
            self.db, vid, "transcoding", ("queued",), started_at=datetime.now(UTC), progress=0.0
        ):
            return
        try:
            data = await probe_json(
                self.settings.ffprobe, source_path, timeout=PROBE_TIMEOUT_S, formats=UPLOAD_FORMATS
            )
            accepted = vod.check_upload(data)
        except (ProbeError, vod.Rejected, OSError) as err:
            await self._failed(vid, channel, uid, f"source unreadable: {err}")
            return
        config = self.config
        renditions = vod.vod_ladder(accepted.source, config)
        await asyncio.to_thread(vod.remove, out)
        await asyncio.to_thread(out.mkdir, parents=True)
        for r in renditions:
            (out / r.name).mkdir()
        rc, tail = await self._run(
            vod.poster_args(self.settings.ffmpeg, source_path, out / vod.POSTER,
                            accepted.duration_s),
            out, f"poster-{vid}", vid, label,
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
        now = datetime.now(UTC)
        async with self.db.acquire() as conn, conn.transaction():
            done = await video_transition(
                conn, vid, "ready", ("transcoding",),
                ready_at=now, progress=1.0, bytes=size, renditions=[r.name for r in renditions],
            )  # fmt: skip
            if done:
                video = {"id": vid, "duration_s": accepted.duration_s, "bytes": size}
                await outbox.enqueue(conn, "video.ready", channel, now, video=video)
        if done:
            await asyncio.to_thread(shutil.rmtree, self.paths.upload_dir(uid), True)
            metrics.VOD_JOBS.labels("ready").inc()
            log.info("video ready %s bytes=%d took=%.1fs", label, size, time.monotonic() - started)

    async def _run(
        self,
        args: list[str],
        cwd: Path,
        name: str,
        vid: str,
        label: str,
        *,
        on_start: Callable[[FfmpegProcess], None] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> tuple[int, str]:
        """One niced ffmpeg of the video's; its pidfile (<name>.pid) carries the video's tag."""
        tag = f"{TAG_PREFIX}{vid}"
        return await run_to_end(
            tagged(args, tag),
            cwd=cwd,
            label=label,
            pidfile=self.paths.run_dir / f"{name}.pid",
            marker=tag,
            priority=BACKGROUND_PRIORITY,
            logger=log,
            on_start=on_start,
            on_progress=on_progress,
        )

    async def _run_gated(
        self, vid: str, args: list[str], cwd: Path, label: str, duration_s: float
    ) -> tuple[int, str]:
        """Run the ladder ffmpeg; pause it whenever the gate says live needs the CPU."""
        run: FfmpegProcess | None = None
        last_write = 0.0
        fraction = 0.0

        def on_start(r: FfmpegProcess) -> None:
            nonlocal run
            run = r

        def on_progress(p: Progress) -> None:
            nonlocal fraction
            fraction = vod.progress_fraction(p.out_time_s, duration_s)

        async def write_progress() -> None:
            nonlocal last_write
            if time.monotonic() - last_write >= PROGRESS_EVERY_S:
                last_write = time.monotonic()
                await store.set_progress(self.db, vid, fraction)

        work = self._run(
            args, cwd, f"ladder-{vid}", vid, label, on_start=on_start, on_progress=on_progress
        )
        return await self.slot.paused_for_live(
            work, lambda: run, metrics.VOD_PAUSED, "video transcode", label, log, write_progress
        )

    async def _failed(self, vid: str, channel: str, uid: str, why: str) -> None:
        log.error("video failed channel=%s video=%s error=%s", channel, vid, why)
        await video_transition(self.db, vid, "failed", ("transcoding", "queued"), error=why[:500])
        await asyncio.to_thread(vod.remove, self.paths.video_dir(channel, vid))
        await asyncio.to_thread(shutil.rmtree, self.paths.upload_dir(uid), True)
        metrics.VOD_JOBS.labels("failed").inc()

    async def delete(self, vid: str) -> None:
        """Stop its job if it runs, mark it deleted, remove the ladder and any source left.

        Any host may delete any host's video: where the files are elsewhere there is nothing
        here to remove, and the owning host's sweeps remove them.
        """
        row = await store.get_video(self.db, vid)
        if row is None or row["state"] == "deleted":
            raise NotFound(f"no video {vid}")
        await self.slot.cancel(self.kind, vid)
        done = await video_transition(
            self.db, vid, "deleted", ("queued", "transcoding", "ready", "failed"),
            deleted_at=datetime.now(UTC),
        )  # fmt: skip
        if not done:
            raise Conflict("video changed state; try again")
        await asyncio.to_thread(vod.remove, self.paths.video_dir(row["channel"], vid))
        await asyncio.to_thread(shutil.rmtree, self.paths.upload_dir(row["upload_id"]), True)
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
