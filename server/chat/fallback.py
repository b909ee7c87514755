"""Chat's state that outlives a Redis outage: shared in Redis while it answers, memory when not.

Killing Redis must not silence chat. While Redis is unreachable each process serves its
own clients from a MemoryState (bans come from PostgreSQL, so they still hold) and
retries Redis every RETRY_SECONDS. When Redis answers again — possibly empty, after a
restart without persistence — the bans are written back from PostgreSQL and the slow
modes this process knows, and rooms span processes again once the Socket.IO manager has
resubscribed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis import exceptions as redis_errors

from server.chat.metrics import CHAT_REDIS_DEGRADED
from server.chat.payloads import MessagePayload
from server.chat.redis_state import RedisState
from server.chat.state import MemoryState, StoredBan
from server.clients import new_redis

log = logging.getLogger("onair.chat")

T = TypeVar("T")

RETRY_SECONDS = 1.0
# Present while Redis holds what we put there; gone after a restart without persistence.
MARKER = "onair:chat:state"
REDIS_DOWN = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError, TimeoutError)


class FallbackState:
    """A ChatState over Redis that falls back to this process's memory while Redis is down."""

    def __init__(self, url: str, stored_bans: Callable[[], Awaitable[list[StoredBan]]]) -> None:
        self.remote = RedisState(url)
        self.local = MemoryState()
        self._stored_bans = stored_bans
        self._marker = new_redis(url)
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._slow: dict[str, int] = {}
        self._lock = asyncio.Lock()

    @property
    def degraded(self) -> bool:
        """True while this process serves chat from memory alone."""
        return self._down_since is not None

    async def _went_down(self, err: BaseException) -> None:
        self._retry_at = time.monotonic() + RETRY_SECONDS
        if self._down_since is not None:
            return
        self._down_since = time.monotonic()
        CHAT_REDIS_DEGRADED.set(1)
        log.warning(
            "chat redis unreachable, chat continues on this process only error=%s",
            type(err).__name__,
        )
        # History reloads from PostgreSQL, merged with what this process accepted lately.
        self.local.forget_shared()
        try:
            for channel, keys, until in await self._stored_bans():
                await self.local.ban(channel, keys, until)
        except Exception as ban_err:  # PostgreSQL may be away too: keep the bans we have
            log.warning("chat bans not reloaded error=%s", type(ban_err).__name__)

    async def check(self) -> None:
        """Periodic: notice an emptied Redis (a restart) and write the shared state back."""
        if self._down_since is not None and time.monotonic() < self._retry_at:
            return
        async with self._lock:
            try:
                if await self._marker.exists(MARKER):
                    if self._down_since is not None:
                        await self._restore(emptied=False)
                    return
                await self._restore(emptied=True)
            except REDIS_DOWN as err:
                await self._went_down(err)

    async def _restore(self, emptied: bool) -> None:
        bans = await self._stored_bans()
        for channel, keys, until in bans:
            await self.remote.ban(channel, keys, until)
            await self.local.ban(channel, keys, until)
        if emptied:
            for channel, seconds in self._slow.items():
                if seconds:
                    await self.remote.set_slow_mode(channel, seconds)
        await self._marker.set(MARKER, "1")
        if self._down_since is not None:
            log.info(
                "chat redis back after=%.1fs emptied=%s bans=%d",
                time.monotonic() - self._down_since, emptied, len(bans),
            )  # fmt: skip
            self._down_since = None
            CHAT_REDIS_DEGRADED.set(0)
        elif emptied:
            log.info("chat redis state written bans=%d", len(bans))

    async def _call(
        self, remote: Callable[[], Awaitable[T]], local: Callable[[], Awaitable[T]]
    ) -> T:
        if self._down_since is not None:
            await self.check()
            if self._down_since is not None:
                return await local()
        try:
            return await remote()
        except REDIS_DOWN as err:
            await self._went_down(err)
            return await local()

    # -- ChatState ----------------------------------------------------------------------

    async def accept(
        self, message: MessagePayload, ban_keys: list[str], slow_exempt: bool
    ) -> str | None:
        """See ChatState.accept; memory keeps a copy, for history during an outage."""
        error = await self._call(
            lambda: self.remote.accept(message, ban_keys, slow_exempt),
            lambda: self.local.accept(message, ban_keys, slow_exempt),
        )
        if error is None and not self.degraded:
            self.local.remember(message)
        return error

    async def is_banned(self, channel: str, ban_keys: list[str]) -> bool:
        """See ChatState.is_banned."""
        return await self._call(
            lambda: self.remote.is_banned(channel, ban_keys),
            lambda: self.local.is_banned(channel, ban_keys),
        )

    async def ban(self, channel: str, ban_keys: list[str], until: float | None) -> None:
        """See ChatState.ban; memory keeps every ban too, for an outage."""
        await self.local.ban(channel, ban_keys, until)
        await self._call(lambda: self.remote.ban(channel, ban_keys, until), _nothing)

    async def unban(self, channel: str, ban_keys: list[str]) -> None:
        """See ChatState.unban; memory forgets it too."""
        await self.local.unban(channel, ban_keys)
        await self._call(lambda: self.remote.unban(channel, ban_keys), _nothing)

    async def history(self, channel: str) -> list[MessagePayload] | None:
        """See ChatState.history."""
        return await self._call(
            lambda: self.remote.history(channel), lambda: self.local.history(channel)
        )

    async def seed(self, channel: str, messages: list[MessagePayload]) -> None:
        """See ChatState.seed."""
        await self._call(
            lambda: self.remote.seed(channel, messages),
            lambda: self.local.seed(channel, messages),
        )

    async def delete(self, channel: str, message_id: str) -> None:
        """See ChatState.delete."""
        await self.local.delete(channel, message_id)
        await self._call(lambda: self.remote.delete(channel, message_id), _nothing)

    async def set_slow_mode(self, channel: str, seconds: int) -> None:
        """See ChatState.set_slow_mode."""
        self._slow[channel] = seconds
        await self.local.set_slow_mode(channel, seconds)
        await self._call(lambda: self.remote.set_slow_mode(channel, seconds), _nothing)

    async def slow_mode(self, channel: str) -> int:
        """See ChatState.slow_mode; a value read from Redis is remembered for an outage."""
        seconds = await self._call(
            lambda: self.remote.slow_mode(channel), lambda: self.local.slow_mode(channel)
        )
        if not self.degraded and self._slow.get(channel, 0) != seconds:
            self._slow[channel] = seconds
            await self.local.set_slow_mode(channel, seconds)
        return seconds

    async def claim_name(self, channel: str, name: str, owner: str) -> bool:
        """See ChatState.claim_name."""
        return await self._call(
            lambda: self.remote.claim_name(channel, name, owner),
            lambda: self.local.claim_name(channel, name, owner),
        )

    async def release_name(self, channel: str, name: str, owner: str) -> None:
        """See ChatState.release_name."""
        await self.local.release_name(channel, name, owner)
        await self._call(lambda: self.remote.release_name(channel, name, owner), _nothing)

    async def refresh_names(self, channel: str, names: dict[str, str]) -> int:
        """See ChatState.refresh_names; in an outage, memory counts this process's names."""

        async def local() -> int:
            for name, owner in names.items():
                await self.local.claim_name(channel, name, owner)
            return await self.local.refresh_names(channel, names)

        return await self._call(lambda: self.remote.refresh_names(channel, names), local)

    async def remember_address(self, channel: str, user_id: str, address_hash: str) -> None:
        """See ChatState.remember_address."""
        await self.local.remember_address(channel, user_id, address_hash)
        await self._call(
            lambda: self.remote.remember_address(channel, user_id, address_hash), _nothing
        )

    async def address_of(self, channel: str, user_id: str) -> str | None:
        """See ChatState.address_of."""
        return await self._call(
            lambda: self.remote.address_of(channel, user_id),
            lambda: self.local.address_of(channel, user_id),
        )

    async def forget_address(self, channel: str, user_id: str) -> None:
        """See ChatState.forget_address."""
        await self.local.forget_address(channel, user_id)
        await self._call(lambda: self.remote.forget_address(channel, user_id), _nothing)

    async def close(self) -> None:
        """Close both Redis connection pools."""
        await self.remote.close()
        await self._marker.aclose()


async def _nothing() -> None:
    """The local half of a write that memory already took."""
