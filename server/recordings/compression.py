"""Recordings compression as a source of background jobs: each finalized recording, oldest
first, re-encoded in the host's encoder slot (the efficient codec plus a small H.264
rendition, transcoder/recordings/compress.py), replacing the original once it verifies."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from server.background.slot import EncoderSlot, Job
from server.recordings import store
from server.settings import Settings
from transcoder import metrics as tmetrics
from transcoder.ffmpeg.process import FfmpegProcess
from transcoder.ffmpeg.progress import Progress
from transcoder.recordings import compress, media

log = logging.getLogger("onair.recordings")

CRASH_RETRY_S = 30.0  # a recording whose job crashed is not tried again for this long
SPACE_RETRY_S = 60.0  # nor one that waits for free space


class Compression:
    """The `compress` jobs of this host's recordings."""

    kind = "compress"

    def __init__(
        self,
        db: asyncpg.Pool,
        slot: EncoderSlot,
        settings: Settings,
        tools: media.Tools,
        directory: Callable[[str, str], Path],
    ) -> None:
        """directory(channel, id) is where a recording's files are."""
        self.db = db
        self.slot = slot
        self.settings = settings
        self.tools = tools
        self.directory = directory
        self.node = settings.node_name
        self.options = compress.CompressOptions(
            codec=settings.compress_codec,
            preset=settings.compress_preset,
            crf=settings.compress_crf,
        )
        self._later: dict[str, float] = {}  # recording id -> monotonic time to try again

    async def next_job(self) -> Job | None:
        """The oldest recording waiting for compression (see JobSource)."""
        now = time.monotonic()
        self._later = {rid: t for rid, t in self._later.items() if t > now}
        row = await store.next_to_compress(self.db, self.node, list(self._later))
        if row is None:
            return None
        rid, channel = row["id"], row["channel"]
        return Job(self.kind, rid, lambda: self.compress(rid, channel))

    async def crashed(self, job: Job) -> None:
        """Do not spin on a recording that always fails."""
        self._later[job.id] = time.monotonic() + CRASH_RETRY_S

    async def compress(self, rid: str, channel: str) -> None:
        """Compress one recording; it ends `ready` whatever happens (the original stays when
        the compressed renditions are no smaller or fail)."""
        directory = self.directory(channel, rid)
        label = f"channel={channel} recording={rid}"
        done = media.media_name(directory)
        if done in media.COMPRESSED_FILES:
            # The server died between replacing the file and recording that it did.
            (directory / media.ORIGINAL).unlink(missing_ok=True)
            info = await media.probe_media(self.tools.ffprobe, directory / done)
            fallback = directory / media.FALLBACK  # absent in a copy from before it existed
            both = info.bytes + (fallback.stat().st_size if fallback.exists() else 0)
            await self._compressed(rid, dataclasses.replace(info, bytes=both), None)
            return
        original = directory / media.ORIGINAL
        free = (await asyncio.to_thread(shutil.disk_usage, directory)).free
        if free < original.stat().st_size + self.settings.recording_reserve_bytes:
            log.warning("compression waits for space channel=%s recording=%s", channel, rid)
            self._later[rid] = time.monotonic() + SPACE_RETRY_S
            return
        run: FfmpegProcess | None = None
        loop = asyncio.get_running_loop()
        started = loop.time()

        def on_start(r: FfmpegProcess) -> None:
            nonlocal run
            run = r

        def on_progress(p: Progress) -> None:
            if p.out_time_s is not None and loop.time() > started:
                tmetrics.COMPRESS_SPEED.set(p.out_time_s / (loop.time() - started))

        log.info("compression started channel=%s recording=%s", channel, rid)
        work = compress.compress(
            directory,
            self.tools,
            self.options,
            label,
            on_start=on_start,
            on_progress=on_progress,
        )
        try:
            result = await self.slot.paused_for_live(
                work, lambda: run, tmetrics.COMPRESS_PAUSED, "compression", label, log
            )
        except media.MediaError as err:
            tmetrics.COMPRESS_JOBS.labels("failed").inc()
            log.error("compression failed channel=%s recording=%s error=%s", channel, rid, err)
            await store.transition(
                self.db, rid, "ready", ("compressing",), error=f"compression: {err}"[:500]
            )
            return
        finally:
            tmetrics.COMPRESS_SPEED.set(0)
        if result is None:
            tmetrics.COMPRESS_JOBS.labels("kept").inc()
            log.info("compression kept the original channel=%s recording=%s", channel, rid)
            kept = f"{self.options.codec} was not smaller; original kept"
            await store.transition(self.db, rid, "ready", ("compressing",), error=kept)
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
        await store.transition(self.db, rid, "ready", ("compressing",), **columns)
