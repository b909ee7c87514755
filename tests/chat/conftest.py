"""Chat fixtures: quick viewer ticks and Socket.IO clients that record every event."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import socketio

from server.settings import Settings

WAIT = 5.0
SERVER_EVENTS = ("message", "deleted", "viewers", "stream", "slow_mode")


@pytest.fixture
def chat_settings(settings: Settings) -> Settings:
    """The suite's settings with a quick viewer tick."""
    return settings.with_changes(chat_viewers_seconds=0.1)


class Chatter:
    """A Socket.IO client that keeps every server event, for tests to wait on."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: dict[str, list[Any]] = defaultdict(list)
        self._changed = asyncio.Condition()
        for name in SERVER_EVENTS:
            self.sio.on(name, self._recorder(name))

    def _recorder(self, name: str) -> Callable[[Any], Awaitable[None]]:
        async def record(payload: Any) -> None:
            async with self._changed:
                self.events[name].append(payload)
                self._changed.notify_all()

        return record

    async def call(self, event: str, data: Any) -> Any:
        """Emit and return the ack."""
        return await self.sio.call(event, data, timeout=WAIT)

    async def wait_for(
        self, event: str, match: Callable[[Any], bool] = lambda _: True, timeout: float = WAIT
    ) -> Any:
        """The first `event` payload that matches, waiting up to `timeout` for it."""
        async with asyncio.timeout(timeout), self._changed:
            while True:
                for payload in self.events[event]:
                    if match(payload):
                        return payload
                await self._changed.wait()

    def texts(self, channel: str) -> list[str]:
        """Texts of the `message` events seen for a channel, in order."""
        return [m["text"] for m in self.events["message"] if m["channel"] == channel]


@pytest.fixture
async def connect() -> AsyncIterator[Callable[..., Awaitable[Chatter]]]:
    """Connect Chatters (websocket unless told, optional address and moderator token); all
    closed at the end."""
    made: list[Chatter] = []

    async def open_one(
        url: str, address: str = "10.0.0.1", token: str | None = None, transport: str = "websocket"
    ) -> Chatter:
        chatter = Chatter()
        await chatter.sio.connect(
            url,
            headers={"X-Forwarded-For": address},
            auth={"token": token} if token else None,
            transports=[transport],
            wait_timeout=WAIT,
        )
        made.append(chatter)
        return chatter

    yield open_one
    for chatter in made:
        if chatter.sio.connected and chatter.sio.transport() == "polling":
            # The client would wait out the long-poll in flight (up to 30 s) for a goodbye.
            await chatter.sio.eio.disconnect(abort=True)
        elif chatter.sio.connected:
            await chatter.sio.disconnect()


async def poll(check: Callable[[], Awaitable[bool]], timeout: float = WAIT) -> None:
    """Wait until check() is true, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)
