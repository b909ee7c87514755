"""Migrations apply once, twice is a no-op, and two processes at once do not race."""

from __future__ import annotations

import asyncio
import json
import sys

import asyncpg

from server.db import load_migrations, migrate


async def test_migrate_twice_is_a_no_op(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        first = await migrate(conn)
        assert first == [m.name for m in load_migrations()]
        assert await migrate(conn) == []
        versions = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in versions] == [m.version for m in load_migrations()]
    finally:
        await conn.close()


async def test_two_processes_migrate_at_once(database_url: str, onair_env: dict[str, str]) -> None:
    async def run() -> tuple[int, bytes, bytes]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server",
            "migrate",
            env=onair_env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, out, err

    results = await asyncio.gather(run(), run(), run())
    assert [code for code, _, _ in results] == [0, 0, 0], [err for _, _, err in results]
    applied = [json.loads(out)["applied"] for _, out, _ in results]
    # Exactly one process applied each migration; the others found nothing to do.
    assert sorted(name for names in applied for name in names) == sorted(
        m.name for m in load_migrations()
    )
    conn = await asyncpg.connect(database_url)
    try:
        count = await conn.fetchval("SELECT count(*) FROM schema_migrations")
        assert count == len(load_migrations())
    finally:
        await conn.close()
