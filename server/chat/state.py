"""Chat's live state: recent history, names in use, bans, slow mode; the protocol and the
in-memory state of one process (redis_state.py shares it across processes through Redis).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Protocol

from server.chat.limits import HISTORY_SIZE
from server.chat.payloads import MessagePayload

# A claimed name stays taken this long unless its owner refreshes it (a crashed host's
# names come free by themselves).
NAME_TTL = 30.0
# A ban as PostgreSQL holds it: (channel, keys, until epoch or None for good).
StoredBan = tuple[str, list[str], float | None]


class ChatState(Protocol):
    """What chat shares between processes; every method is one round trip at most."""

    async def accept(
        self, message: MessagePayload, ban_keys: list[str], slow_exempt: bool
    ) -> str | None:
        """Check bans and slow mode; when clear, add to history. Returns an error or None."""

    async def is_banned(self, channel: str, ban_keys: list[str]) -> bool:
        """True when any key is banned in the channel now."""

    async def ban(self, channel: str, ban_keys: list[str], until: float | None) -> None:
        """Ban keys until an epoch time (None: for good)."""

    async def unban(self, channel: str, ban_keys: list[str]) -> None:
        """Lift every ban on these keys (the caller re-applies other bans that cover them)."""

    async def history(self, channel: str) -> list[MessagePayload] | None:
        """The recent messages, oldest first; None until seeded from PostgreSQL."""

    async def seed(self, channel: str, messages: list[MessagePayload]) -> None:
        """Merge stored messages with any that arrived meanwhile; mark history loaded."""

    async def delete(self, channel: str, message_id: str) -> None:
        """Drop a message from recent history."""

    async def set_slow_mode(self, channel: str, seconds: int) -> None:
        """Seconds between one user's messages (0: off)."""

    async def slow_mode(self, channel: str) -> int:
        """The channel's slow mode in seconds."""

    async def claim_name(self, channel: str, name: str, owner: str) -> bool:
        """Take a name in a room; False when someone else holds it."""

    async def release_name(self, channel: str, name: str, owner: str) -> None:
        """Give a name back (only its owner can)."""

    async def refresh_names(self, channel: str, names: dict[str, str]) -> int:
        """Keep these names (name → owner) claimed; returns how many are in the room."""

    async def remember_address(self, channel: str, user_id: str, address_hash: str) -> None:
        """Note a user's address hash, so a ban by user id can ban the address too."""

    async def address_of(self, channel: str, user_id: str) -> str | None:
        """The address hash noted for a user."""

    async def forget_address(self, channel: str, user_id: str) -> None:
        """The user left: a later ban by id finds the address in stored messages instead."""

    async def check(self) -> None:
        """Periodic upkeep: notice a lost backend and restore what it held (may do nothing)."""

    async def close(self) -> None:
        """Release connections."""


def merge_history(a: list[MessagePayload], b: list[MessagePayload]) -> list[MessagePayload]:
    by_id = {m["id"]: m for m in [*a, *b]}
    return [by_id[k] for k in sorted(by_id)][-HISTORY_SIZE:]


class MemoryState:
    """The state of a single process."""

    def __init__(self) -> None:
        self._history: dict[str, deque[MessagePayload]] = {}
        self._loaded: set[str] = set()
        self._names: dict[str, dict[str, str]] = {}
        self._bans: dict[str, dict[str, float]] = {}
        self._slow: dict[str, int] = {}
        self._slow_until: dict[tuple[str, str], float] = {}
        self._addresses: dict[tuple[str, str], str] = {}

    async def accept(
        self, message: MessagePayload, ban_keys: list[str], slow_exempt: bool
    ) -> str | None:
        """See ChatState.accept."""
        channel, now = message["channel"], time.time()
        if await self.is_banned(channel, ban_keys):
            return "banned"
        slow = self._slow.get(channel, 0)
        if slow and not slow_exempt:
            key = (channel, message["user"]["id"])
            if self._slow_until.get(key, 0.0) > now:
                return "slow_mode"
            self._slow_until[key] = now + slow
        self._history.setdefault(channel, deque(maxlen=HISTORY_SIZE)).append(message)
        return None

    async def is_banned(self, channel: str, ban_keys: list[str]) -> bool:
        """See ChatState.is_banned."""
        bans, now = self._bans.get(channel, {}), time.time()
        return any(bans.get(k, 0.0) > now for k in ban_keys)

    async def ban(self, channel: str, ban_keys: list[str], until: float | None) -> None:
        """See ChatState.ban."""
        bans = self._bans.setdefault(channel, {})
        for key in ban_keys:
            bans[key] = max(bans.get(key, 0.0), until if until is not None else float("inf"))

    async def unban(self, channel: str, ban_keys: list[str]) -> None:
        """See ChatState.unban."""
        bans = self._bans.get(channel, {})
        for key in ban_keys:
            bans.pop(key, None)

    async def history(self, channel: str) -> list[MessagePayload] | None:
        """See ChatState.history."""
        if channel not in self._loaded:
            return None
        return list(self._history.get(channel, ()))

    async def seed(self, channel: str, messages: list[MessagePayload]) -> None:
        """See ChatState.seed."""
        merged = merge_history(messages, list(self._history.get(channel, ())))
        self._history[channel] = deque(merged, maxlen=HISTORY_SIZE)
        self._loaded.add(channel)

    async def delete(self, channel: str, message_id: str) -> None:
        """See ChatState.delete."""
        recent = self._history.get(channel)
        if recent is not None:
            kept = [m for m in recent if m["id"] != message_id]
            self._history[channel] = deque(kept, maxlen=HISTORY_SIZE)

    async def set_slow_mode(self, channel: str, seconds: int) -> None:
        """See ChatState.set_slow_mode."""
        self._slow[channel] = seconds
        if not seconds:
            self._slow_until = {k: v for k, v in self._slow_until.items() if k[0] != channel}

    async def slow_mode(self, channel: str) -> int:
        """See ChatState.slow_mode."""
        return self._slow.get(channel, 0)

    async def claim_name(self, channel: str, name: str, owner: str) -> bool:
        """See ChatState.claim_name."""
        names = self._names.setdefault(channel, {})
        if names.get(name.casefold(), owner) != owner:
            return False
        names[name.casefold()] = owner
        return True

    async def release_name(self, channel: str, name: str, owner: str) -> None:
        """See ChatState.release_name."""
        names = self._names.get(channel, {})
        if names.get(name.casefold()) == owner:
            del names[name.casefold()]

    async def refresh_names(self, channel: str, names: dict[str, str]) -> int:
        """See ChatState.refresh_names."""
        now = time.time()
        # Nothing expires here, but this is the periodic moment to forget stale limits.
        self._slow_until = {k: v for k, v in self._slow_until.items() if v > now}
        return len(self._names.get(channel, {}))

    async def remember_address(self, channel: str, user_id: str, address_hash: str) -> None:
        """See ChatState.remember_address."""
        self._addresses[(channel, user_id)] = address_hash

    async def address_of(self, channel: str, user_id: str) -> str | None:
        """See ChatState.address_of."""
        return self._addresses.get((channel, user_id))

    async def forget_address(self, channel: str, user_id: str) -> None:
        """See ChatState.forget_address."""
        self._addresses.pop((channel, user_id), None)

    def remember(self, message: MessagePayload) -> None:
        """Keep a copy of a message another state accepted (merged in when history reloads)."""
        self._history.setdefault(message["channel"], deque(maxlen=HISTORY_SIZE)).append(message)

    def forget_shared(self) -> None:
        """Mark history for reloading and drop names (Redis held the real ones)."""
        self._loaded.clear()
        self._names.clear()

    async def check(self) -> None:
        """Nothing to check in memory."""

    async def close(self) -> None:
        """Nothing to release."""
