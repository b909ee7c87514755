"""PostgreSQL: the pool for the life of the app, and the numbered-SQL migration runner."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from typing import TypeAlias

import asyncpg
from aiohttp import web

from server.settings import SETTINGS

log = logging.getLogger("onair.db")
DB: web.AppKey[asyncpg.Pool] = web.AppKey("db", asyncpg.Pool)
# A pool, or one of its connections inside a transaction.
Db: TypeAlias = asyncpg.Pool | asyncpg.Connection

# Any constant will do: two processes migrating at once queue on this lock.
MIGRATION_LOCK_ID = 0x0A1A_0001
_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    """One numbered SQL file."""

    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """The migrations shipped in server/migrations, in order."""
    found = []
    for entry in resources.files("server.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a number: {versions}")
    return found


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply what is missing, each file in its own transaction; returns the names applied."""
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for migration in load_migrations():
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            log.info("migration applied name=%s", migration.name)
            applied.append(migration.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    return applied


async def migrate_url(database_url: str) -> list[str]:
    """Connect, migrate, disconnect: for `onair migrate` and start-up."""
    conn = await asyncpg.connect(database_url)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


async def keep_session(conn: asyncpg.Connection) -> None:
    """Pool release without asyncpg's reset query (a round trip, ~14 % of GET /api/channels).

    asyncpg still rolls back a transaction left open. Nothing else needs undoing: no code
    sets session variables, LISTENs, holds cursors or takes session advisory locks on a pool
    connection (migrations lock on a connection of their own). Whoever starts to must use
    the transaction-scoped forms (SET LOCAL, pg_advisory_xact_lock) or its own connection.
    """


async def postgres(app: web.Application) -> AsyncIterator[None]:
    """Own the pool for the life of the app; migrations run before the first request."""
    url = app[SETTINGS].database_url
    if url is None:
        raise RuntimeError("ONAIR_DATABASE_URL is not set")
    await migrate_url(url)
    async with asyncpg.create_pool(url, min_size=1, max_size=10, reset=keep_session) as pool:
        app[DB] = pool
        yield
