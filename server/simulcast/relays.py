"""The relays: one supervised FFmpeg per enabled destination of each channel live on this host.

Relays look at the destinations every RECONCILE_EVERY_S (and at once when a channel goes live
or offline here, or this host's API changed one): a relay starts for each enabled destination
of a live channel, stops when its channel goes offline or it is disabled or deleted, and
restarts alone when it was edited (its updated_at moved). So an edit made on any host reaches
the media host within seconds, and one relay never touches the publisher, the ladder, the
recording or another relay. A relay that fails retries with backoff while its channel is live.
State goes to PostgreSQL (store.report) for every host's API, and to the metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path

import asyncpg
from aiohttp import web

from server.db import DB
from server.events import EVENTS, StreamEvent
from server.live.directory import STALE_AFTER_S
from server.live.streams import STREAMS, Streams
from server.owner import OWNER
from server.settings import SETTINGS, Settings
from server.simulcast import metrics, store
from server.simulcast.sealed import KeyUnreadable, unseal
from server.simulcast.store import Destination, parse_server
from server.tasks import cancel_and_wait
from transcoder.ffmpeg.process import FfmpegProcess, reap_orphans
from transcoder.ffmpeg.progress import Progress
from transcoder.layout import MediaLayout, loopback_rtmp
from transcoder.relay import options_pipe, relay_args, relay_options

log = logging.getLogger("onair.simulcast")

RECONCILE_EVERY_S = 2.0
BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0)  # between tries; the last one repeats
STABLE_S = 60.0  # live this long: the next failure starts the backoff over
STALL_S = 30.0  # no byte sent for this long: the relay is stopped and tried again
STOP_GRACE_S = 3.0
_ADDRESS = re.compile(r"^\[[^\]]*@ 0x[0-9a-f]+\] ")  # "[tls @ 0x55d…] "
_LEVEL = re.compile(r"^\[(error|warning|fatal|panic)\] ")


def plain_error(lines: list[str]) -> str | None:
    """What FFmpeg said went wrong (its first two complaints, where the cause is), without
    its pointer and level prefixes."""
    cleaned: list[str] = []
    for line in lines:
        if len(cleaned) == 2:
            break
        text = _LEVEL.sub("", _ADDRESS.sub("", line)).strip()
        if text and text not in cleaned:
            cleaned.append(text)
    return "; ".join(cleaned)[:300] or None


class Relay:
    """One destination's FFmpeg while its channel is live here."""

    def __init__(self, destination: Destination, settings: Settings, run_dir: Path) -> None:
        self.destination = destination
        self.settings = settings
        self.run_dir = run_dir
        self.state = "connecting"
        self.last_error: str | None = None
        self.bytes_sent = 0  # this session, over every try
        self.changed = asyncio.Event()  # the manager writes the new state at once
        self._run_bytes = 0
        self._last_byte_at = 0.0
        self.labels = (destination.channel, str(destination.id))
        self.task = asyncio.create_task(self._run(), name=f"relay {destination.id}")

    @property
    def version(self) -> datetime:
        return self.destination.updated_at

    def _set(self, state: str, error: str | None = None) -> None:
        if state != self.state or error != self.last_error:
            self.state, self.last_error = state, error
            self.changed.set()
        metrics.RELAY_UP.labels(*self.labels).set(1 if state == "live" else 0)

    def _redact(self, line: str, key: str) -> str:
        return line.replace(key, "****")

    def _on_progress(self, progress: Progress) -> None:
        size = progress.total_size or 0
        if size > self._run_bytes:
            metrics.RELAY_SENT.labels(*self.labels).inc(size - self._run_bytes)
            self.bytes_sent += size - self._run_bytes
            self._run_bytes = size
            self._last_byte_at = asyncio.get_running_loop().time()
            self._set("live")

    async def _run(self) -> None:
        try:
            await self._relay()
        except asyncio.CancelledError:
            raise
        except Exception as err:  # a bug must not pass silently nor take other relays down
            log.exception("relay broke channel=%s destination=%s", *self.labels)
            self._set("failing", f"the relay broke ({type(err).__name__}): see the server log")

    async def _relay(self) -> None:
        loop = asyncio.get_running_loop()
        destination = self.destination
        try:
            key = unseal(
                self.settings.secret_key, destination.key_sealed, channel=destination.channel
            )
        except KeyUnreadable:
            self._set(
                "failing",
                "the stream key cannot be read (ONAIR_SECRET_KEY changed since it was saved): "
                "enter the key again",
            )
            return
        server = parse_server(destination.server)
        tries = 0
        while True:
            self._set("connecting", self.last_error)
            began = loop.time()
            error = await self._once(server.address, relay_options(server.app, key), key)
            live_for = loop.time() - began
            tries = 1 if live_for >= STABLE_S and self.state == "live" else tries + 1
            metrics.RELAY_RESTARTS.labels(*self.labels).inc()
            self._set("failing", error)
            log.warning(
                "relay failed channel=%s destination=%s error=%s",
                destination.channel,
                destination.id,
                error,
            )
            await asyncio.sleep(BACKOFF_S[min(tries, len(BACKOFF_S)) - 1])

    async def _once(self, address: str, options: bytes, key: str) -> str:
        """One FFmpeg run to its end; what went wrong, in words, without the key."""
        destination = self.destination
        tag = f"onair-relay-{destination.channel}-{destination.id}"
        fd = options_pipe(options)
        try:
            run = await FfmpegProcess.start(
                relay_args(
                    self.settings.ffmpeg,
                    loopback_rtmp(self.settings.rtmp_port, destination.channel),
                    address,
                    options_fd=fd,
                    tls_ca_file=str(self.settings.relay_ca_file),
                    tag=tag,
                ),
                cwd=self.run_dir,
                label=f"relay {destination.channel}/{destination.id}",
                pidfile=self.run_dir / f"{destination.channel}.{destination.id}.pid",
                marker=tag,
                logger=log,
                on_progress=self._on_progress,
                pass_fds=(fd,),
                redact=lambda line: self._redact(line, key),
            )
        except OSError as err:
            return f"ffmpeg could not start: {err.strerror}"
        finally:
            os.close(fd)  # FFmpeg has its own copy of the pipe
        self._run_bytes = 0
        loop = asyncio.get_running_loop()
        self._last_byte_at = loop.time()
        try:
            while True:
                try:
                    rc = await asyncio.wait_for(asyncio.shield(run.wait()), STALL_S / 3)
                    break
                except TimeoutError:
                    if loop.time() - self._last_byte_at > STALL_S:
                        await run.kill()
                        return f"nothing was sent for {STALL_S:.0f} s"
        except asyncio.CancelledError:
            await run.stop(STOP_GRACE_S)  # SIGINT: FFmpeg ends the RTMP session politely
            raise
        said = plain_error(list(run.stderr_tail))
        return said or f"ffmpeg ended with code {rc}"

    async def stop(self) -> None:
        """Stop the FFmpeg and forget the metrics."""
        await cancel_and_wait([self.task])
        for family in (metrics.RELAY_UP, metrics.RELAY_SENT, metrics.RELAY_RESTARTS):
            with contextlib.suppress(KeyError):
                family.remove(*self.labels)


class Relays:
    """Every relay of this host."""

    def __init__(self, db: asyncpg.Pool, streams: Streams, settings: Settings) -> None:
        self.db, self.streams, self.settings = db, streams, settings
        self.run_dir = MediaLayout(settings.media_root).relays_run
        self.relays: dict[int, Relay] = {}
        self.nudged = asyncio.Event()
        self._written: dict[int, tuple[str, str | None, int]] = {}

    def nudge(self) -> None:
        """Look at the destinations now, not at the next round."""
        self.nudged.set()

    async def on_stream(self, event: StreamEvent) -> None:
        """EventBus listener: a channel went live or offline here."""
        self.nudge()

    async def reconcile(self) -> None:
        """Start, stop and restart relays to match the enabled destinations of live channels."""
        live = list(self.streams.started)
        wanted = {d.id: d for d in await store.enabled_for(self.db, live)} if live else {}
        for destination_id, relay in list(self.relays.items()):
            now = wanted.get(destination_id)
            if now is None or now.updated_at != relay.version:
                await self._stop(destination_id)
        for destination_id, destination in wanted.items():
            if destination_id not in self.relays:
                self.relays[destination_id] = Relay(destination, self.settings, self.run_dir)
                log.info(
                    "relay started channel=%s destination=%s",
                    destination.channel,
                    destination_id,
                )
        await self.write_states()

    async def _stop(self, destination_id: int) -> None:
        relay = self.relays.pop(destination_id)
        await relay.stop()
        self._written.pop(destination_id, None)
        await store.report(
            self.db, destination_id, "idle", last_error=None, bytes_sent=0, changed=True
        )
        log.info(
            "relay stopped channel=%s destination=%s", relay.destination.channel, destination_id
        )

    async def write_states(self) -> None:
        """Write what changed since the last write: a state, an error, bytes sent."""
        for destination_id, relay in self.relays.items():
            now = (relay.state, relay.last_error, relay.bytes_sent)
            before = self._written.get(destination_id)
            if now == before:
                continue
            await store.report(
                self.db,
                destination_id,
                relay.state,
                last_error=relay.last_error,
                bytes_sent=relay.bytes_sent,
                changed=before is None or before[:2] != now[:2],
            )
            self._written[destination_id] = now
            relay.changed.clear()

    async def _changed(self) -> None:
        waits = [asyncio.ensure_future(self.nudged.wait())]
        waits += [asyncio.ensure_future(r.changed.wait()) for r in self.relays.values()]
        try:
            await asyncio.wait(
                waits, timeout=RECONCILE_EVERY_S, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiting in waits:
                waiting.cancel()
        self.nudged.clear()

    async def run_forever(self) -> None:
        """Reconcile every round or when nudged; a failed round is logged and retried."""
        while True:
            try:
                await self.reconcile()
            except (asyncpg.PostgresError, OSError) as err:
                log.warning("relays not reconciled error=%s", type(err).__name__)
            await self._changed()

    async def close(self) -> None:
        """Stop every relay (the server is going down)."""
        for destination_id in list(self.relays):
            try:
                await self._stop(destination_id)
            except (asyncpg.PostgresError, OSError) as err:
                log.warning("relay state not written error=%s", type(err).__name__)


RELAYS: web.AppKey[Relays] = web.AppKey("relays", Relays)


async def relays(app: web.Application) -> AsyncIterator[None]:
    """This host's relays for the life of the app."""
    settings = app[SETTINGS]
    manager = app[RELAYS] = Relays(app[DB], app[STREAMS], settings)
    unsubscribe: Callable[[], None] | None = None
    tasks: list[asyncio.Task[None]] = []

    async def start() -> None:
        nonlocal unsubscribe
        manager.run_dir.mkdir(parents=True, exist_ok=True)
        for pid in await reap_orphans(manager.run_dir):
            log.warning("relay orphan of a killed server reaped pid=%d", pid)
        await store.idle_unless_live_elsewhere(app[DB], settings.node_name, STALE_AFTER_S)
        unsubscribe = app[EVENTS].subscribe(manager.on_stream)
        tasks.append(asyncio.create_task(manager.run_forever()))

    async def stop() -> None:
        nonlocal unsubscribe
        if unsubscribe is not None:
            unsubscribe()
            unsubscribe = None
        await cancel_and_wait(tasks)
        tasks.clear()
        await manager.close()

    # Relays copy the live source: they run where the ladders do, in the host's owner.
    async with app[OWNER].duty("relays", start, stop):
        yield
