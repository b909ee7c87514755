"""The server's side of transcoding: start ladders off the hook path, stop them, reconcile."""

from __future__ import annotations

import asyncio
import logging
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from server.channels import valid_slug
from server.ingest import go_live
from server.keys import HTTP, INGEST, SETTINGS, TRANSCODERS
from transcoder.ladder import LadderConfig
from transcoder.live import LiveTranscoders

log = logging.getLogger("onair.ladders")

# Under `onair up` the server starts before nginx: keep asking for this long.
RECONCILE_PATIENCE = 30.0


class Ladders:
    """Starts each channel's ladder in the background so a hook never waits on a probe."""

    def __init__(self, transcoders: LiveTranscoders) -> None:
        self.transcoders = transcoders
        self.pending: dict[str, asyncio.Task[None]] = {}

    def start_soon(self, slug: str, source_url: str, *, resume: bool = False) -> None:
        """Probe and start the ladder for `slug` without blocking the caller.

        `resume` appends to the playlists a killed server left, so players carry on.
        """
        if slug in self.pending and not self.pending[slug].done():
            return
        self.pending[slug] = asyncio.create_task(self._start(slug, source_url, resume))

    async def _start(self, slug: str, source_url: str, resume: bool) -> None:
        try:
            await self.transcoders.start(slug, source_url, resume=resume)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("ladder failed to start channel=%s", slug)

    async def stop(self, slug: str) -> None:
        """Cancel a start still probing, then stop the ladder gracefully."""
        task = self.pending.pop(slug, None)
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.transcoders.stop(slug)

    async def close(self) -> None:
        """Stop everything: no FFmpeg outlives the server."""
        for task in self.pending.values():
            task.cancel()
        await asyncio.gather(*self.pending.values(), return_exceptions=True)
        self.pending.clear()
        await self.transcoders.close()


def publishing_streams(stat_xml: bytes) -> list[tuple[str, str]]:
    """(slug, client id) of every publisher nginx-rtmp reports in application `live`."""
    found = []
    root = ET.fromstring(stat_xml)
    for application in root.iter("application"):
        if application.findtext("name") != "live":
            continue
        for stream in application.iter("stream"):
            name = stream.findtext("name") or ""
            for client in stream.iter("client"):
                if client.find("publishing") is not None and valid_slug(name):
                    found.append((name, client.findtext("id") or ""))
    return found


async def reconcile(app: web.Application) -> None:
    """After a restart: adopt publishers nginx still has and resume their ladders."""
    url = f"http://127.0.0.1:{app[SETTINGS].http_port}/rtmp_stat"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RECONCILE_PATIENCE
    while True:
        try:
            async with app[HTTP].get(url, timeout=aiohttp.ClientTimeout(total=5)) as response:
                response.raise_for_status()
                body = await response.read()
            break
        except (aiohttp.ClientError, TimeoutError) as err:
            if loop.time() > deadline:
                log.warning("reconcile skipped: rtmp_stat unreachable error=%s", type(err).__name__)
                return
            await asyncio.sleep(0.5)
    try:
        streams = publishing_streams(body)
    except ET.ParseError:
        log.warning("reconcile skipped: rtmp_stat is not XML")
        return
    state = app[INGEST]
    for slug, client_id in streams:
        if client_id in state.publishers:
            continue
        state.publishers[client_id] = slug
        await go_live(app, slug, resume=True)
        log.info("reconciled live channel=%s clientid=%s", slug, client_id)


async def ladders(app: web.Application) -> AsyncIterator[None]:
    """Own every channel's FFmpeg for the life of the app; reconcile with nginx at start."""
    settings = app[SETTINGS]
    transcoders = LiveTranscoders(
        media_dir=settings.media_root,
        config=LadderConfig(),
        ffmpeg=settings.ffmpeg,
        ffprobe=settings.ffprobe,
    )
    app[TRANSCODERS] = Ladders(transcoders)
    task = asyncio.create_task(reconcile(app))
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await app[TRANSCODERS].close()
