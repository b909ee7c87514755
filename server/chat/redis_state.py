"""Chat's live state shared by every process through one Redis (see state.ChatState).

A ban, a slow mode, a name or a deletion made on one host holds on all of them; Lua scripts
keep each check-and-write atomic.
"""

from __future__ import annotations

import json
import time

from redis.exceptions import WatchError

from server.chat.limits import HISTORY_SIZE
from server.chat.payloads import MessagePayload
from server.chat.state import NAME_TTL, merge_history
from server.clients import new_redis


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

    def __init__(self, url: str) -> None:
        self._redis = new_redis(url, decode_responses=True)
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

    async def unban(self, channel: str, ban_keys: list[str]) -> None:
        """See ChatState.unban."""
        if ban_keys:
            await self._redis.hdel(_key(channel, "bans"), *ban_keys)

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
                    merged = merge_history(messages, current)
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

    async def forget_address(self, channel: str, user_id: str) -> None:
        """See ChatState.forget_address."""
        await self._redis.delete(_key(channel, "addr:" + user_id))

    async def check(self) -> None:
        """Nothing to check: FallbackState watches Redis for restarts."""

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()
