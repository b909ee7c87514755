"""Which channels are live on any host, and since when.

This host's publishers (streams.py) are known at once in the worker that owns them
(server/owner.py); channels live on another host (a media host in `split`, seen from an edge),
or in this host's owner when this worker is not it, come from the live_status rows the owner's
reporter keeps fresh (status.py), read at most once per READ_EVERY_S. The channel list, the
watch page and chat's join answer ask here, so every worker and every edge shows a live channel
as live.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import datetime

import asyncpg
from aiohttp import web

from server.db import DB
from server.live.streams import STREAMS, Streams
from server.owner import OWNER, Ownership
from server.settings import SETTINGS

log = logging.getLogger("onair.live")

READ_EVERY_S = 2.0  # as often as the reporters write (status.REPORT_EVERY_S)
READ_TIMEOUT_S = 1.0  # a chat join waits no longer than this on a slow database
# A snapshot older than this (the reporters write every 2 s) means its host stopped reporting.
STALE_AFTER_S = 15.0


class LiveDirectory:
    """Live sessions here and on the other hosts sharing the database."""

    def __init__(self, db: asyncpg.Pool, streams: Streams, host: str, owner: Ownership) -> None:
        self.db, self.streams, self.host, self.owner = db, streams, host, owner
        self._elsewhere: dict[str, datetime] = {}
        self._read_at = float("-inf")

    async def _read_elsewhere(self) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._read_at < READ_EVERY_S:
            return
        self._read_at = now
        try:
            rows = await asyncio.wait_for(
                self.db.fetch(
                    """
                    SELECT channel, started_at FROM live_status
                    WHERE (host <> $1 OR NOT $3) AND updated_at > now() - make_interval(secs => $2)
                    """,
                    self.host,
                    STALE_AFTER_S,
                    # A worker that does not own this host's ladders reads the owner's rows too.
                    self.owner.is_owner,
                ),
                READ_TIMEOUT_S,
            )
        except (asyncpg.PostgresError, OSError, TimeoutError) as err:
            # This host's own channels are still known; the others keep their last answer.
            log.warning("other hosts' live channels unread error=%s", type(err).__name__)
            return
        self._elsewhere = {row["channel"]: row["started_at"] for row in rows}

    async def started(self) -> dict[str, datetime]:
        """Every live channel and the start of its session."""
        await self._read_elsewhere()
        # This host's own publishers win (its own rows are not read: they lag behind it).
        return {**self._elsewhere, **self.streams.started}

    async def started_at(self, slug: str) -> datetime | None:
        """When the channel's current session began, on any host, or None when offline."""
        local = self.streams.started_at(slug)
        return local if local is not None else (await self.started()).get(slug)


LIVE: web.AppKey[LiveDirectory] = web.AppKey("live_directory", LiveDirectory)


async def live_directory(app: web.Application) -> AsyncIterator[None]:
    """The directory for the life of the app."""
    app[LIVE] = LiveDirectory(app[DB], app[STREAMS], app[SETTINGS].node_name, app[OWNER])
    yield
