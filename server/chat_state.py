"""Chat's live state: recent history, names in use, bans, slow mode; in memory or in Redis.

One process keeps it in memory. With ONAIR_REDIS_URL every process shares it through
Redis, so a ban, a slow mode, a name or a deletion made on one host holds on all of them.
"""

from __future__ import annotations

import json
import time
from collections import deque
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from server.chat_limits import HISTORY_SIZE
from server.chat_payloads import MessagePayload

# A claimed name stays taken this long unless its owner refreshes it (a crashed host's
# names come free by themselves).
NAME_TTL = 30.0


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

    async def check(self) -> None:
        """Periodic upkeep: notice a lost backend and restore what it held (may do nothing)."""

    async def close(self) -> None:
        """Release connections."""


def _merge(a: list[MessagePayload], b: list[MessagePayload]) -> list[MessagePayload]:
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

    async def history(self, channel: str) -> list[MessagePayload] | None:
        """See ChatState.history."""
        if channel not in self._loaded:
            return None
        return list(self._history.get(channel, ()))

    async def seed(self, channel: str, messages: list[MessagePayload]) -> None:
        """See ChatState.seed."""
        merged = _merge(messages, list(self._history.get(channel, ())))
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


# Keys carry the channel in braces so one channel's keys share a Redis Cluster slot.
def _key(channel: str, what: str) -> str:
    return f"onair:chat:{{{channel}}}:{what}"


_ACCEPT = """
local now = tonumber(ARGV[1])
for i = 4, #ARGV do
  local until_ = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '-1')
  if until_ == 0 or until_ > now then return 'banned' end
end
if ARGV[2] == '0' then
  local slow = tonumber(redis.call('GET', KEYS[2]) or '0')
  if slow > 0 and not redis.call('SET', KEYS[4], '1', 'PX', slow * 1000, 'NX') then
    return 'slow_mode'
  end
end
redis.call('RPUSH', KEYS[3], ARGV[3])
redis.call('LTRIM', KEYS[3], -{size}, -1)
return ''
""".replace("{size}", str(HISTORY_SIZE))

_BANNED = """
local now = tonumber(ARGV[1])
for i = 2, #ARGV do
  local until_ = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '-1')
  if until_ == 0 or until_ > now then return 1 end
end
return 0
"""

_BAN = """
for i = 2, #ARGV do
  local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '-1')
  if cur ~= 0 and (tonumber(ARGV[1]) == 0 or tonumber(ARGV[1]) > cur) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[1])
  end
end
return 0
"""

_DELETE = """
for _, item in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local ok, decoded = pcall(cjson.decode, item)
  if ok and decoded['id'] == ARGV[1] then redis.call('LREM', KEYS[1], 1, item) end
end
return 0
"""

# Names hash: casefolded name -> "owner|expires".
_CLAIM = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local sep = string.find(cur, '|', 1, true)
  local other = string.sub(cur, 1, sep - 1) ~= ARGV[2]
  if other and tonumber(string.sub(cur, sep + 1)) > tonumber(ARGV[3]) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|' .. ARGV[4])
return 1
"""

_RELEASE = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and string.sub(cur, 1, string.find(cur, '|', 1, true) - 1) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""

_REFRESH = """
local now = tonumber(ARGV[1])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1] .. '|' .. ARGV[2]) end
local live = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local v = all[i + 1]
  if tonumber(string.sub(v, string.find(v, '|', 1, true) + 1)) > now then
    live = live + 1
  else
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return live
"""

ADDRESS_TTL = 24 * 3600


class RedisState:
    """The state shared by every process through one Redis; scripts keep each check atomic."""

    def __init__(self, url: str, **options: Any) -> None:
        """options go to redis.asyncio.Redis.from_url (timeouts, retry policy)."""
        self._redis = aioredis.Redis.from_url(url, decode_responses=True, **options)
        self._accept = self._redis.register_script(_ACCEPT)
        self._banned = self._redis.register_script(_BANNED)
        self._ban = self._redis.register_script(_BAN)
        self._delete = self._redis.register_script(_DELETE)
        self._claim = self._redis.register_script(_CLAIM)
        self._release = self._redis.register_script(_RELEASE)
        self._refresh = self._redis.register_script(_REFRESH)

    async def accept(
        self, message: MessagePayload, ban_keys: list[str], slow_exempt: bool
    ) -> str | None:
        """See ChatState.accept."""
        channel = message["channel"]
        keys = [
            _key(channel, "bans"),
            _key(channel, "slow"),
            _key(channel, "history"),
            _key(channel, "last:" + message["user"]["id"]),
        ]
        args = [time.time(), "1" if slow_exempt else "0", json.dumps(message), *ban_keys]
        result = await self._accept(keys=keys, args=args)
        return str(result) or None

    async def is_banned(self, channel: str, ban_keys: list[str]) -> bool:
        """See ChatState.is_banned."""
        found = await self._banned(keys=[_key(channel, "bans")], args=[time.time(), *ban_keys])
        return bool(found)

    async def ban(self, channel: str, ban_keys: list[str], until: float | None) -> None:
        """See ChatState.ban (0 stands for "for good")."""
        await self._ban(keys=[_key(channel, "bans")], args=[until or 0, *ban_keys])

    async def history(self, channel: str) -> list[MessagePayload] | None:
        """See ChatState.history."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.exists(_key(channel, "loaded"))
            pipe.lrange(_key(channel, "history"), 0, -1)
            loaded, items = await pipe.execute()
        if not loaded:
            return None
        return [json.loads(i) for i in items]

    async def seed(self, channel: str, messages: list[MessagePayload]) -> None:
        """See ChatState.seed; WATCH retries if a message lands while merging."""
        key = _key(channel, "history")
        async with self._redis.pipeline() as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    current = [json.loads(i) for i in await pipe.lrange(key, 0, -1)]
                    merged = _merge(messages, current)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.delete(key)
                    if merged:
                        pipe.rpush(key, *[json.dumps(m) for m in merged])
                    pipe.set(_key(channel, "loaded"), "1")
                    await pipe.execute()
                    return
                except WatchError:
                    continue

    async def delete(self, channel: str, message_id: str) -> None:
        """See ChatState.delete."""
        await self._delete(keys=[_key(channel, "history")], args=[message_id])

    async def set_slow_mode(self, channel: str, seconds: int) -> None:
        """See ChatState.set_slow_mode."""
        await self._redis.set(_key(channel, "slow"), seconds)

    async def slow_mode(self, channel: str) -> int:
        """See ChatState.slow_mode."""
        return int(await self._redis.get(_key(channel, "slow")) or 0)

    async def claim_name(self, channel: str, name: str, owner: str) -> bool:
        """See ChatState.claim_name."""
        now = time.time()
        args: list[str | float] = [name.casefold(), owner, now, now + NAME_TTL]
        return bool(await self._claim(keys=[_key(channel, "names")], args=args))

    async def release_name(self, channel: str, name: str, owner: str) -> None:
        """See ChatState.release_name."""
        await self._release(keys=[_key(channel, "names")], args=[name.casefold(), owner])

    async def refresh_names(self, channel: str, names: dict[str, str]) -> int:
        """See ChatState.refresh_names."""
        now = time.time()
        args: list[str | float] = [now, now + NAME_TTL]
        for name, owner in names.items():
            args += [name.casefold(), owner]
        return int(await self._refresh(keys=[_key(channel, "names")], args=args))

    async def remember_address(self, channel: str, user_id: str, address_hash: str) -> None:
        """See ChatState.remember_address."""
        await self._redis.set(_key(channel, "addr:" + user_id), address_hash, ex=ADDRESS_TTL)

    async def address_of(self, channel: str, user_id: str) -> str | None:
        """See ChatState.address_of."""
        value = await self._redis.get(_key(channel, "addr:" + user_id))
        return str(value) if value is not None else None

    async def check(self) -> None:
        """Nothing to check: FallbackState watches Redis for restarts."""

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()
