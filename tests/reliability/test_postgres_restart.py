"""PostgreSQL stopped and started under a chatting `onair serve`: nothing acknowledged is lost."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import asyncpg
import pytest

from server.ops.pgcluster import PgCluster
from server.settings import Settings
from tests.chat.conftest import Chatter
from tests.conftest import ServeProcess, create_channel, open_tempdir, running_nginx, wait_until

Connect = Callable[..., Awaitable[Chatter]]
pytestmark = pytest.mark.slow


@pytest.fixture
async def own_cluster() -> AsyncIterator[PgCluster]:
    """A PostgreSQL of this test's own, so stopping it disturbs nobody else."""
    root = open_tempdir("onair-pg-fault-")
    cluster = PgCluster(root / "cluster")
    await cluster.start()
    yield cluster
    await cluster.stop()
    shutil.rmtree(root, ignore_errors=True)


async def health(url: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/healthz") as response:
        return response.status, await response.json()


async def test_postgres_restart_mid_chat_loses_nothing_acknowledged(
    settings: Settings, own_cluster: PgCluster, serve_process: ServeProcess, connect: Connect
) -> None:
    settings = settings.with_changes(database_url=own_cluster.url(), chat_rate_messages=50)
    async with running_nginx(settings):
        server = await serve_process(settings)
        assert (await health(server.url))[0] == 200
        await create_channel(server.url, "pg")
        await create_channel(server.url, "pg-other")
        ann = await connect(server.url, "10.2.0.1")
        bob = await connect(server.url, "10.2.0.2")
        for who, name in ((ann, "Ann"), (bob, "Bob")):
            assert (await who.call("join", {"channel": "pg", "name": name}))["ok"]
        acked: list[str] = []

        async def say(text: str) -> None:
            ack = await ann.call("message", {"channel": "pg", "text": text})
            assert ack["ok"], ack
            acked.append(ack["id"])
            await bob.wait_for("message", lambda m: m["text"] == text)

        await say("before")
        await own_cluster.stop()
        # Chat goes on from memory; the writer keeps what it could not store.
        for i in range(4):
            await say(f"while down {i}")
        late = await connect(server.url, "10.2.0.3")
        joined = await late.call("join", {"channel": "pg", "name": "Late"})
        assert [m["text"] for m in joined["history"]][-2:] == ["while down 2", "while down 3"]
        # A channel nobody joined lately cannot be checked now: a prompt answer, not a hang.
        refused = await late.call("join", {"channel": "pg-other", "name": "Late"})
        assert refused == {"ok": False, "error": "unavailable"}

        async def unhealthy() -> bool:
            status, body = await health(server.url)
            return status == 503 and str(body["checks"]["database"]).startswith("database")  # type: ignore[index]

        await wait_until(unhealthy, 10, "/healthz to report the database")
        await own_cluster.start()

        async def healthy() -> bool:
            return (await health(server.url))[0] == 200

        await wait_until(healthy, 20, "/healthz to answer 200 again")
        await say("after")
        joined = await late.call("join", {"channel": "pg-other", "name": "Late"})
        assert joined["ok"], joined

        async def all_stored() -> bool:
            conn = await asyncpg.connect(own_cluster.url())
            try:
                rows = await conn.fetch("SELECT id FROM chat_messages ORDER BY id")
            finally:
                await conn.close()
            return [r["id"] for r in rows] == sorted(acked)

        await wait_until(all_stored, 20, "every acknowledged message in PostgreSQL")
        assert server.alive
        log = server.log()
        # asyncpg's own pool logs a traceback while it cannot refill; ours log one line each.
        assert not [
            line for line in log.splitlines() if "logger=onair" in line and "Traceback" in line
        ]
