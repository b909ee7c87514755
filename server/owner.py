"""The host's owner: of the server processes on one host (ONAIR_WORKERS), exactly one at a time
runs the hooks' decisions, the ladders, recordings, relays, uploads' jobs and the background
encoder (DESIGN.md "Several server processes on one host").

Ownership is a PostgreSQL advisory lock keyed by the host's node name, held on a connection of
its own. PostgreSQL lets go of it the moment that connection ends (a worker killed with -9
closes its socket), and every other worker asks for it each TRY_EVERY_S, so one of them takes
over within a couple of seconds. An owner whose lock connection dies because PostgreSQL went
away keeps its duties running (nobody else can own meanwhile) and takes the lock again when
PostgreSQL is back; it stops them only if another worker got the lock first. Services only the
owner may run register a duty (start, stop) from their cleanup context: the duties start in
registration order, which is the app's context order, when this process becomes the owner (at
once during start-up for the first worker, as a lone server always did), and stop in reverse
when it stops being one. A new owner starts them as a restarted server does: the reapers kill
what the dead owner left (pidfiles), and reconcile adopts the publishers nginx still has.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import asyncpg
from aiohttp import web
from prometheus_client import Gauge

from server.db import DB
from server.settings import SETTINGS
from server.tasks import cancel_and_wait

log = logging.getLogger("onair.owner")

LOCK_CLASS = "onair-owner"  # with the node name, the lock's two keys (hashtext of each)
TRY_EVERY_S = 1.0  # a worker that does not own asks this often (plus up to half again)
RETAKE_EVERY_S = 0.25  # the owner whose lock connection died asks again this often
CHECK_TIMEOUT_S = 5.0  # the owner's lock connection must answer within this
CONNECT_TIMEOUT_S = 5.0
# A worker that queued background work (an upload's last byte) tells the owner at once.
WAKE_CHANNEL = "onair_owner_wake"

# Its own generator: the module's shared one belongs to whoever else runs in this process.
JITTER = random.Random()

OWNER_GAUGE = Gauge(
    "onair_owner", "1 while this server process owns the host's hooks, ladders and jobs"
)


@dataclass
class Duty:
    """Something only the owner runs: started when this process becomes the owner."""

    name: str
    start: Callable[[], Awaitable[None]]
    stop: Callable[[], Awaitable[None]]
    running: bool = False


class Ownership:
    """This process's claim on the host's owner lock, and the duties that come with it."""

    def __init__(self, database_url: str, node: str, db: asyncpg.Pool | None = None) -> None:
        """Touches nothing until first_try() or run(); db: the app's pool, for wake_owner()."""
        self.database_url = database_url
        self.node = node
        self.db = db
        self._wakers: list[Callable[[], None]] = []
        self._notifying: set[asyncio.Task[None]] = set()
        self.is_owner = False
        self._duties: list[Duty] = []
        self._changing = asyncio.Lock()  # duties start and stop one change at a time
        self._conn: asyncpg.Connection | None = None
        self._unreachable = False  # PostgreSQL did not answer the last ask (logged once)
        self.became_owner = asyncio.Event()
        self.asking: asyncio.Task[None] | None = None  # run(), while the app lives

    @contextlib.asynccontextmanager
    async def duty(
        self,
        name: str,
        start: Callable[[], Awaitable[None]],
        stop: Callable[[], Awaitable[None]],
    ) -> AsyncIterator[None]:
        """Run start() whenever this process owns the host (now, if it does), stop() when it
        no longer does or the context exits. Meant for a cleanup context's body."""
        duty = Duty(name, start, stop)
        async with self._changing:
            self._duties.append(duty)
            if self.is_owner:
                # During start-up of the owner: fail the start-up, as a lone server would.
                await duty.start()
                duty.running = True
        try:
            yield
        finally:
            async with self._changing:
                self._duties.remove(duty)
                if duty.running:
                    duty.running = False
                    await duty.stop()

    async def _lock(self) -> bool:
        """Try the lock once on the dedicated connection (opened when there is none)."""
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(
                self.database_url,
                timeout=CONNECT_TIMEOUT_S,
                server_settings={"application_name": "onair-owner"},
            )
            await self._conn.add_listener(WAKE_CHANNEL, self._woken)
        got = await self._conn.fetchval(
            "SELECT pg_try_advisory_lock(hashtext($1), hashtext($2))", LOCK_CLASS, self.node
        )
        return bool(got)

    async def _drop_connection(self) -> None:
        """Close the lock connection (PostgreSQL releases the lock with it)."""
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), CHECK_TIMEOUT_S)
            except (asyncpg.PostgresError, OSError, TimeoutError):
                conn.terminate()

    async def _held(self) -> bool:
        """The owner's lock connection still answers (the lock lives as long as it does)."""
        if self._conn is None or self._conn.is_closed():
            return False
        try:
            await asyncio.wait_for(self._conn.fetchval("SELECT 1"), CHECK_TIMEOUT_S)
        except (asyncpg.PostgresError, OSError, TimeoutError):
            return False
        return True

    def on_wake(self, callback: Callable[[], None]) -> None:
        """Call `callback` in the owner when any worker of this host calls wake_owner()."""
        self._wakers.append(callback)

    def wake_owner(self) -> None:
        """There may be background work for the owner (a NOTIFY when that is another worker)."""
        if self.is_owner or self.db is None:
            return
        task = asyncio.create_task(self._notify(self.db))
        self._notifying.add(task)
        task.add_done_callback(self._notifying.discard)

    async def _notify(self, db: asyncpg.Pool) -> None:
        try:
            await db.execute("SELECT pg_notify($1, $2)", WAKE_CHANNEL, self.node)
        except (asyncpg.PostgresError, OSError) as err:
            # The owner looks for work on its own every little while anyway.
            log.warning("owner not woken error=%s", type(err).__name__)

    def _woken(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        if payload == self.node and self.is_owner:
            for callback in self._wakers:
                callback()

    async def first_try(self) -> None:
        """One try at start-up: the first worker up owns at once, before it serves a request."""
        if await self._lock():
            self._owned()
        else:
            log.info("owner lock held by another worker: this one serves and waits")

    def _owned(self) -> None:
        self.is_owner = True
        self.became_owner.set()
        OWNER_GAUGE.set(1)
        log.info("owner lock taken node=%s: this worker runs hooks, ladders and jobs", self.node)

    async def _take_over(self) -> None:
        """Became the owner after start-up: start every duty, in order."""
        async with self._changing:
            self._owned()
            for duty in self._duties:
                try:
                    await duty.start()
                    duty.running = True
                except Exception:
                    log.exception("owner duty failed to start duty=%s", duty.name)

    async def _step_down(self) -> None:
        """The lock is lost (its connection died): stop every duty, newest first."""
        async with self._changing:
            self.is_owner = False
            self.became_owner.clear()
            OWNER_GAUGE.set(0)
            for duty in reversed(self._duties):
                if duty.running:
                    duty.running = False
                    try:
                        await duty.stop()
                    except Exception:
                        log.exception("owner duty failed to stop duty=%s", duty.name)
        await self._drop_connection()

    async def _retake(self) -> None:
        """The owner's lock connection died: PostgreSQL restarted or is away, and while it is
        away nobody else can own. Keep every duty running (a database outage never stopped a
        ladder) and take the lock again as soon as PostgreSQL answers; step down only if
        another worker got it first."""
        log.warning("owner lock connection lost node=%s: taking it again", self.node)
        await self._drop_connection()
        while True:
            try:
                if await self._lock():
                    log.info("owner lock taken again node=%s", self.node)
                else:
                    log.error("owner lock taken by another worker: stopping ladders and jobs")
                    await self._step_down()
                return
            except (asyncpg.PostgresError, OSError, TimeoutError):
                await self._drop_connection()
                await asyncio.sleep(RETAKE_EVERY_S)

    async def run(self) -> None:
        """Forever: a non-owner asks for the lock; the owner checks it still holds it."""
        while True:
            # Jitter: workers that start together do not ask in lockstep.
            await asyncio.sleep(TRY_EVERY_S * (1 + JITTER.random() / 2))
            if self.is_owner:
                # A slow answer keeps the connection (and the lock): only a dead one is retaken.
                if not await self._held() and (self._conn is None or self._conn.is_closed()):
                    await self._retake()
                continue
            try:
                got = await self._lock()
            except (asyncpg.PostgresError, OSError, TimeoutError) as err:
                if not self._unreachable:
                    log.warning("owner lock not asked error=%s", type(err).__name__)
                self._unreachable = True
                await self._drop_connection()
                continue
            self._unreachable = False
            if got:
                await self._take_over()

    async def close(self) -> None:
        """Release the lock (every duty has stopped by now: their contexts exited first)."""
        self.is_owner = False
        OWNER_GAUGE.set(0)
        await asyncio.gather(*self._notifying, return_exceptions=True)
        await self._drop_connection()


OWNER: web.AppKey[Ownership] = web.AppKey("owner", Ownership)


async def ownership(app: web.Application) -> AsyncIterator[None]:
    """Claim the owner lock (or wait for it) for the life of the app; after db.postgres, before
    every context that registers a duty, so the lock outlives every duty's stop."""
    settings = app[SETTINGS]
    assert settings.database_url is not None
    owner = app[OWNER] = Ownership(settings.database_url, settings.node_name, app[DB])
    await owner.first_try()
    owner.asking = asyncio.create_task(owner.run(), name="owner-lock")
    try:
        yield
    finally:
        await cancel_and_wait([owner.asking])
        await owner.close()


async def stop_asking(app: web.Application) -> None:
    """on_shutdown: a worker on its way out must not take over (the owner's FFmpeg would start
    again in a process that is stopping); the owner keeps its lock until its duties stopped."""
    asking = app[OWNER].asking if OWNER in app else None
    if asking is not None:
        asking.cancel()
