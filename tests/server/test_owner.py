"""Two workers of one host (same node name, same database): exactly one owns the hooks'
decisions, the other answers the update hook from PostgreSQL and takes over when the owner
stops."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest

from server.background.slot import ENCODER
from server.channels.store import CHANNELS
from server.ops.pgcluster import PgCluster
from server.owner import OWNER
from server.settings import Settings
from tests.conftest import Running, Serve, open_tempdir, wait_until


async def post_hook(base: str, kind: str, secret: str, key: str, clientid: str = "7") -> int:
    """A hook as nginx-rtmp posts it; the status it got."""
    form = {"app": "live", "name": key, "clientid": clientid, "addr": "203.0.113.9"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{base}/hooks/rtmp/{kind}?secret={secret}", data=form, allow_redirects=False
        ) as response,
    ):
        return response.status


def owners(*workers: Running) -> list[Running]:
    return [w for w in workers if w.app[OWNER].is_owner]


async def test_one_owner_and_a_take_over(settings: Settings, serve: Serve) -> None:
    first = await serve(settings)
    second = await serve(settings)
    assert owners(first, second) == [first]  # the first one up owns at once
    _, key = await first.app[CHANNELS].create("studio", "Studio")
    secret = settings.hook_secret

    # The other worker leaves publish and publish_done to the owner (nginx asks the next).
    assert await post_hook(second.url, "publish", secret, key) == 503
    assert await post_hook(second.url, "publish_done", secret, key) == 503
    assert await post_hook(first.url, "publish", secret, key) == 302
    # Any worker answers update: the publisher stays while the key holds...
    assert await post_hook(second.url, "update", secret, key) == 200
    # ...and is dropped by either once it is rotated.
    await first.app[CHANNELS].rotate_key("studio")
    assert await post_hook(second.url, "update", secret, key) == 403
    assert await post_hook(first.url, "update", secret, key) == 403

    # Background work queued by the other worker (an upload's last byte) wakes the owner's
    # encoder slot at once (a NOTIFY), not at its next idle poll.
    woken = asyncio.Event()
    first.app[OWNER].on_wake(woken.set)
    second.app[ENCODER].wake()
    await asyncio.wait_for(woken.wait(), 10)

    await first.stop()  # releases the lock once its duties have stopped

    async def took_over() -> bool:
        return second.app[OWNER].is_owner

    await wait_until(took_over, timeout=10, what="the second worker takes over")
    _, new_key = await second.app[CHANNELS].create("other", "Other")
    assert await post_hook(second.url, "publish", secret, new_key, clientid="9") == 302


@pytest.fixture
async def own_cluster() -> AsyncIterator[PgCluster]:
    """A PostgreSQL of this test's own, so stopping it disturbs nobody else."""
    root = open_tempdir("onair-pg-owner-")
    cluster = PgCluster(root / "cluster")
    await cluster.start()
    yield cluster
    await cluster.stop()
    shutil.rmtree(root, ignore_errors=True)


async def test_postgres_restart_keeps_the_owner_and_its_duties(
    settings: Settings, own_cluster: PgCluster, serve: Serve
) -> None:
    """PostgreSQL going away cuts the lock's connection, but nobody else can own meanwhile:
    the owner keeps its ladders and jobs running and takes the lock again when it is back."""
    worker = await serve(settings.with_changes(database_url=own_cluster.url()))
    owner = worker.app[OWNER]
    assert owner.is_owner
    changes: list[str] = []

    async def started() -> None:
        changes.append("start")

    async def stopped() -> None:
        changes.append("stop")

    async with owner.duty("probe", started, stopped):
        assert changes == ["start"]
        await own_cluster.stop()
        await asyncio.sleep(3)  # the owner notices within ~1.5 s and asks again meanwhile
        assert owner.is_owner and changes == ["start"]
        await own_cluster.start()

        async def locked_again() -> bool:
            held = await own_cluster_locks(own_cluster)
            return held == 1

        await wait_until(locked_again, timeout=20, what="the owner to take the lock again")
        assert owner.is_owner and changes == ["start"]
    assert changes == ["start", "stop"]


async def own_cluster_locks(cluster: PgCluster) -> int:
    """Advisory locks held on the cluster now (the owner's)."""
    try:
        conn = await asyncpg.connect(cluster.url())
    except (OSError, asyncpg.PostgresError):
        return -1
    try:
        return int(await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"))
    finally:
        await conn.close()
