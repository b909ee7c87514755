"""Sending the outbox: each webhook's deliveries in id order, from any host, one sender at once.

A worker claims a webhook whose queue head is due by locking its row (FOR UPDATE SKIP LOCKED)
in a transaction it holds while it sends the head: another process, or another host sharing
the database, skips that webhook until the outcome is written, and a sender that dies lets go
of it with its connection. A head being retried keeps the rest of its webhook's queue waiting;
one that ended failed no longer heads it. Workers use a pool of their own, so receivers that
hang never take the connections chat and the API write with.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import asyncpg
from aiohttp import web

from server import sealed
from server.clients import HTTP
from server.settings import SETTINGS, Settings
from server.tasks import cancel_and_wait
from server.web.net import is_private_host
from server.webhooks.metrics import WEBHOOK_ATTEMPTS
from server.webhooks.signing import signature
from server.webhooks.store import Webhook, parse_url
from transcoder.waiting import wait_event

log = logging.getLogger("onair.webhooks")

TIMEOUT_S = 10.0  # one attempt, connect to last byte
RETRY_FOR_S = 24 * 3600.0  # after this long since the event, a delivery ends failed
WORKERS = 4  # webhooks sent to at once by this process
# How often an idle worker looks for due deliveries (events written on another host, retries
# coming due); an event written here wakes the workers at once.
POLL_S = 1.0
MAX_ERROR = 300
# Delivered and failed deliveries are kept this long for the log (and a redeliver), then go.
KEEP_DAYS = 7
PRUNE_EVERY_S = 3600.0

# The webhook whose queue head is due the longest, locked; others' locks are skipped.
_CLAIM = """
SELECT w.id, w.url, w.events, w.channels, w.secret_sealed, w.created_at
FROM webhooks w
JOIN LATERAL (
    SELECT d.next_attempt_at FROM webhook_deliveries d
    WHERE d.webhook_id = w.id AND d.state = 'pending' ORDER BY d.id LIMIT 1
) head ON head.next_attempt_at <= now()
ORDER BY head.next_attempt_at
LIMIT 1
FOR UPDATE OF w SKIP LOCKED
"""
# Read again once the lock is held: the claim's snapshot may predate the outcome another
# worker wrote just before letting go of this webhook.
_HEAD = """
SELECT id, event, body::text AS body, attempts, next_attempt_at <= now() AS due
FROM webhook_deliveries WHERE webhook_id = $1 AND state = 'pending' ORDER BY id LIMIT 1
"""
_DELIVERED = """
UPDATE webhook_deliveries SET state = 'delivered', attempts = attempts + 1, last_status = $2,
    last_error = NULL, delivered_at = now()
WHERE id = $1
"""
_FAILED = """
UPDATE webhook_deliveries SET state = 'failed', attempts = attempts + 1, last_status = $2,
    last_error = $3
WHERE id = $1
"""
# A retry that would come after RETRY_FOR_S since the event ends the delivery failed instead.
_RETRY = """
UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = $2, last_error = $3,
    next_attempt_at = now() + make_interval(secs => $4),
    state = CASE WHEN now() + make_interval(secs => $4) > created_at + make_interval(secs => $5)
                 THEN 'failed' ELSE 'pending' END
WHERE id = $1
"""


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: delivered, failed for good, or retry later."""

    verdict: str
    status: int | None
    error: str | None


def verdict(status: int) -> str:
    """A receiver's answer: 2xx delivered; 408, 429 and 5xx retried; any other (a 4xx, a
    redirect, which is never followed) ends the delivery failed."""
    if 200 <= status < 300:
        return "delivered"
    if status in (408, 429) or status >= 500:
        return "retry"
    return "failed"


def backoff(attempts: int, first_s: float, max_s: float) -> float:
    """Seconds before the next try after `attempts` failed ones: first_s, doubling, capped."""
    return float(min(max_s, first_s * 2.0 ** min(attempts - 1, 40)))


class Deliverer:
    """WORKERS loops that each claim a due webhook, send its head and write the outcome."""

    def __init__(self, pool: asyncpg.Pool, http: aiohttp.ClientSession, settings: Settings):
        self.pool = pool
        self.http = http
        self.settings = settings
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for due deliveries now (an event or a redelivery was just written here)."""
        self._wake.set()

    async def run(self) -> None:
        """One worker, until cancelled: send while there is work, else wait for a wake or poll."""
        while True:
            try:
                busy = await self.deliver_one()
            except Exception as err:  # PostgreSQL away, say: log and try again at the next poll
                WEBHOOK_ATTEMPTS.labels("error").inc()
                log.warning("webhook worker failed error=%s: %s", type(err).__name__, err)
                busy = False
            if not busy:
                await wait_event(self._wake, POLL_S)
                self._wake.clear()

    async def deliver_one(self) -> bool:
        """Claim one due webhook and send its queue head; False when none was due."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(_CLAIM)
            if row is None:
                return False
            webhook = Webhook(**dict(row))
            head = await conn.fetchrow(_HEAD, webhook.id)
            if head is None or not head["due"]:
                return True  # sent or rescheduled meanwhile: look again
            outcome = await self.send(webhook, head)
            if outcome.verdict == "delivered":
                await conn.execute(_DELIVERED, head["id"], outcome.status)
            elif outcome.verdict == "failed":
                await conn.execute(_FAILED, head["id"], outcome.status, outcome.error)
            else:
                wait = backoff(
                    head["attempts"] + 1,
                    self.settings.webhook_retry_first_s,
                    self.settings.webhook_retry_max_s,
                )
                await conn.execute(
                    _RETRY, head["id"], outcome.status, outcome.error, wait, RETRY_FOR_S
                )
        WEBHOOK_ATTEMPTS.labels(outcome.verdict).inc()
        # One line per chat message delivered would drown the log: only trouble at INFO.
        log.log(
            logging.DEBUG if outcome.verdict == "delivered" else logging.INFO,
            "webhook attempt webhook=%d delivery=%d event=%s outcome=%s status=%s error=%s",
            webhook.id, head["id"], head["event"], outcome.verdict, outcome.status, outcome.error,
        )  # fmt: skip
        return True

    async def prune(self) -> int:
        """Forget deliveries that ended more than KEEP_DAYS ago; returns how many."""
        done = await self.pool.execute(
            "DELETE FROM webhook_deliveries WHERE state <> 'pending'"
            " AND created_at < now() - make_interval(days => $1)",
            KEEP_DAYS,
        )
        return int(done.split()[-1])

    async def prune_every(self, seconds: float) -> None:
        """prune() now and then, until cancelled (every host does: it is idempotent)."""
        while True:
            try:
                pruned = await self.prune()
                if pruned:
                    log.info("webhook deliveries pruned count=%d", pruned)
            except Exception as err:
                log.warning("webhook prune failed error=%s", type(err).__name__)
            await asyncio.sleep(seconds)

    async def send(self, webhook: Webhook, head: asyncpg.Record) -> Outcome:
        """One signed POST of the head's body; never raises for what the receiver does."""
        try:
            secret = webhook.secret(self.settings.secret_key)
        except sealed.Unreadable:
            return Outcome("failed", None, "secret sealed under another ONAIR_SECRET_KEY: "
                           "create the webhook again")  # fmt: skip
        receiver = parse_url(webhook.url)
        # Checked at creation too; again here, as a name can come to point somewhere private.
        if not self.settings.webhook_allow_private and await is_private_host(
            receiver.host, receiver.port
        ):
            return Outcome("failed", None, f"{receiver.host} now resolves to a private address")
        body = head["body"].encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Onair-Webhooks/1",
            "Onair-Event": head["event"],
            "Onair-Delivery": str(head["id"]),
            "Onair-Signature": signature(secret, body, int(time.time())),
        }
        try:
            async with self.http.post(
                webhook.url,
                data=body,
                headers=headers,
                allow_redirects=False,  # a redirect could lead anywhere, a private address too
                timeout=aiohttp.ClientTimeout(total=TIMEOUT_S),
            ) as response:
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            error = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
            return Outcome("retry", None, error[:MAX_ERROR])
        found = verdict(status)
        return Outcome(
            found, status, None if found == "delivered" else f"receiver answered {status}"
        )


DELIVERER: web.AppKey[Deliverer] = web.AppKey("webhook_deliverer", Deliverer)


async def webhook_deliveries(app: web.Application) -> AsyncIterator[None]:
    """The deliverer's own pool and workers for the life of the app."""
    settings = app[SETTINGS]
    assert settings.database_url is not None  # the app's pool, before this, checked it
    async with asyncpg.create_pool(settings.database_url, min_size=1, max_size=WORKERS) as pool:
        deliverer = Deliverer(pool, app[HTTP], settings)
        app[DELIVERER] = deliverer
        tasks = [asyncio.create_task(deliverer.run()) for _ in range(WORKERS)]
        tasks.append(asyncio.create_task(deliverer.prune_every(PRUNE_EVERY_S)))
        yield
        await cancel_and_wait(tasks)
