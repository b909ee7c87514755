"""LadderPool: every live channel's ladder, started off the caller's path and stopped cleanly."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from transcoder.ffmpeg.probe import probe_source
from transcoder.ffmpeg.process import reap_orphans
from transcoder.layout import MediaLayout, check_slug
from transcoder.live.command import TranscodeJob
from transcoder.live.ladder import LadderConfig, choose_ladder
from transcoder.live.supervisor import Supervisor, SupervisorOptions

log = logging.getLogger("onair.transcoder")


def _clear(directory: Path) -> None:
    """Empty a channel's output folder so a new session starts fresh playlists."""
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


class LadderPool:
    """One Supervisor per live channel, writing under MEDIA_DIR/live/<slug>/."""

    def __init__(
        self,
        layout: MediaLayout,
        config: LadderConfig,
        *,
        ffmpeg: str = "ffmpeg",
        ffprobe: str = "ffprobe",
        probe_timeout: float = 15.0,
        run_dir: Path | None = None,
        options: SupervisorOptions | None = None,
        input_options: Sequence[str] = (),
        on_failed: Callable[[str], None] | None = None,
    ) -> None:
        """run_dir holds the pidfiles (default MEDIA_DIR/run, outside the served live/ tree);
        on_failed(slug) is called when a ladder gives up after repeated fast failures."""
        self.layout = layout
        self.config = config
        self.ffmpeg = ffmpeg
        self.ffprobe = ffprobe
        self.probe_timeout = probe_timeout
        self.run_dir = run_dir if run_dir is not None else layout.run
        self.options = options or SupervisorOptions()
        self.input_options = tuple(input_options)
        self.on_failed = on_failed
        self._sups: dict[str, Supervisor] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._pending: dict[str, asyncio.Task[None]] = {}

    def supervisor(self, slug: str) -> Supervisor | None:
        """The channel's supervisor, if one was started and not stopped."""
        return self._sups.get(slug)

    def running(self) -> set[str]:
        """Slugs whose ffmpeg is running or restarting (not failed, not stopped)."""
        return {slug for slug, sup in self._sups.items() if not sup.done}

    def speeds(self) -> dict[str, float | None]:
        """Media seconds per wall second of each running ladder (None before it is known)."""
        return {slug: sup.speed for slug, sup in self._sups.items() if not sup.done}

    def start_soon(self, slug: str, source_url: str, *, resume: bool = False) -> None:
        """start() in the background, so a caller (a hook) never waits on a probe."""
        if slug in self._pending and not self._pending[slug].done():
            return
        self._pending[slug] = asyncio.create_task(self._start_logged(slug, source_url, resume))

    async def _start_logged(self, slug: str, source_url: str, resume: bool) -> None:
        try:
            await self.start(slug, source_url, resume=resume)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("ladder failed to start channel=%s", slug)

    async def start(self, slug: str, source_url: str, *, resume: bool = False) -> None:
        """Probe, choose the ladder and start ffmpeg (the supervisor writes master.m3u8 once
        every rung has segments); no-op if running.

        resume=True keeps the existing playlists and appends to them (a server restart while
        the publisher stays live); otherwise the folder is emptied for a new session.
        Raises ProbeError, SpawnError or ValueError (bad slug).
        """
        out = self.layout.live_channel(slug)
        lock = self._locks.setdefault(slug, asyncio.Lock())
        async with lock:
            current = self._sups.get(slug)
            if current is not None and not current.done:
                return
            await reap_orphans(self.run_dir, name=slug)
            source = await probe_source(
                source_url, timeout=self.probe_timeout, ffprobe=self.ffprobe
            )
            renditions = choose_ladder(source, self.config)
            await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
            if not resume:
                await asyncio.to_thread(_clear, out)
            for r in renditions:
                (out / r.name).mkdir(exist_ok=True)
            job = TranscodeJob(
                input_url=source_url,
                output_dir=out,
                renditions=tuple(renditions),
                config=self.config,
                fps=source.fps,
                has_audio=source.has_audio,
                input_options=self.input_options,
                ffmpeg=self.ffmpeg,
            )
            sup = Supervisor(
                slug,
                job,
                source,
                run_dir=self.run_dir,
                options=self.options,
                on_failed=self.on_failed,
            )
            log.info(
                "transcoder starting channel=%s source=%dx%d@%.3g %s encoder=%s preset=%s rungs=%s",
                slug, source.width, source.height, source.fps, source.video_codec,
                self.config.hevc_encoder, sup.preset, ",".join(r.name for r in renditions),
            )  # fmt: skip
            await sup.start()
            self._sups[slug] = sup

    async def stop(self, slug: str, *, end: bool = True) -> None:
        """Cancel a start still probing, then stop the ladder gracefully (ENDLIST unless
        end=False: another process takes the channel over)."""
        check_slug(slug)
        task = self._pending.pop(slug, None)
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        lock = self._locks.setdefault(slug, asyncio.Lock())
        async with lock:
            sup = self._sups.pop(slug, None)
            if sup is not None:
                await sup.stop(end=end)
                log.info("transcoder stopped channel=%s ended=%s", slug, end)

    async def close(self, *, end: bool = True) -> None:
        """Stop everything, concurrently: no FFmpeg outlives the pool (end: as in stop())."""
        for task in self._pending.values():
            task.cancel()
        await asyncio.gather(*self._pending.values(), return_exceptions=True)
        self._pending.clear()
        await asyncio.gather(*(self.stop(slug, end=end) for slug in list(self._sups)))
