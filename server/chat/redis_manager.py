"""python-socketio's Redis manager for rooms that span processes and hosts, made to ride out
a Redis outage: publish fails fast and quietly, the listener resubscribes within seconds.

Both overrides are of private methods (`_publish`, `_redis_listen_with_retries`): pyproject
caps python-socketio below 5.19 until a new release is read again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import socketio

from server.chat.fanout import FanoutManager

log = logging.getLogger("onair.chat")

# The Socket.IO listener's resubscribe delay doubles up to this (python-socketio's own
# cap is 60 s, so rooms would stay split for a minute after a longer outage).
LISTEN_RETRY_MAX = 2.0


class ChatRedisManager(socketio.AsyncRedisManager, FanoutManager):  # type: ignore[misc]
    """python-socketio's Redis manager: a short resubscribe backoff, one log line per outage,
    and this host's share of each broadcast delivered through the fan-out.

    Events always reach this host's clients first (the library emits locally before it
    publishes), so a failed publish only costs the other hosts that event.
    """

    redis: Any
    publish_failing = False

    async def _publish(self, data: Any) -> Any:
        try:
            if self.redis is None:
                self._redis_connect()
            # No reconnect here (the library's would swap the listener's pubsub under it):
            # the client's pool opens a fresh connection on the next call by itself.
            result = await self.redis.publish(self.channel, self.json.dumps(data))
        except Exception as err:
            if not self.publish_failing:
                self.publish_failing = True
                log.warning(
                    "chat redis publish failing, other hosts miss events error=%s",
                    type(err).__name__,
                )
            return None
        if self.publish_failing:
            self.publish_failing = False
            log.info("chat redis publish working again")
        return result

    async def _redis_listen_with_retries(self) -> AsyncIterator[Any]:
        delay, subscribed = 0.25, False
        while True:
            try:
                if not subscribed:
                    if self.pubsub is not None:
                        await self.pubsub.aclose()  # the library would leak one socket per try
                    if self.redis is not None:
                        await self.redis.aclose()
                    self._redis_connect()
                    await self.pubsub.subscribe(self.channel)
                    subscribed, delay = True, 0.25
                    log.info("chat redis subscribed channel=%s", self.channel)
                async for message in self.pubsub.listen():
                    yield message
            except asyncio.CancelledError:
                raise
            except Exception as err:
                if subscribed:
                    log.warning("chat redis listener lost error=%s", type(err).__name__)
                subscribed = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, LISTEN_RETRY_MAX)
