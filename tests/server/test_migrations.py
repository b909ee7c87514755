"""Migrations apply once, twice is a no-op, and two processes at once do not race."""

from __future__ import annotations

import asyncio
import json
import sys

import asyncpg

from server.channels import tokens
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


async def test_tokens_made_before_the_one_token_model_keep_working(database_url: str) -> None:
    """007 moves moderator and upload tokens into channel_tokens: ids and secrets carry over."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for m in load_migrations():
            if m.version < 7:
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    m.version,
                    m.name,
                )
        await conn.execute(
            "INSERT INTO channels (slug, title, key_hash) VALUES ('old', 'Old', '\\x01')"
        )
        await conn.execute(
            "INSERT INTO chat_moderators (id, channel, name, token_hash)"
            " OVERRIDING SYSTEM VALUE VALUES (41, 'old', 'Mod', $1)",
            tokens.hash_token("moderator-secret-of-old"),
        )
        await conn.execute(
            "INSERT INTO upload_tokens (channel, token_hash) VALUES ('old', $1)",
            tokens.hash_token("upload-secret-of-old"),
        )
        assert (await migrate(conn))[0] == "007_channel_tokens.sql"
    finally:
        await conn.close()

    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        moderator = await tokens.find(pool, "moderator-secret-of-old", "moderator")
        assert moderator is not None and (moderator.id, moderator.channel) == (41, "old")
        assert await tokens.find(pool, "moderator-secret-of-old", "uploader") is None
        uploader = await tokens.find(pool, "upload-secret-of-old", "uploader")
        assert uploader is not None and uploader.channel == "old"
        made, _ = await tokens.create(pool, "old", "moderator", "New")
        assert made.id > 41  # the identity continues past the carried-over ids
        assert {t.role for t in await tokens.of_channel(pool, "old")} == {"moderator", "uploader"}
    finally:
        await pool.close()
