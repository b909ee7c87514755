"""Hostile Socket.IO / Engine.IO frames on a raw websocket: server and other clients carry on."""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from server.settings import Settings
from tests.chat.conftest import Chatter
from tests.conftest import (
    Served,
    ServeProcess,
    create_channel,
    create_moderator,
    get_text,
    wait_until,
)
from tests.reliability.conftest import metric

Connect = Callable[..., Awaitable[Chatter]]
pytestmark = pytest.mark.slow


class RawSocket:
    """A hand-driven Engine.IO v4 websocket: whatever bytes we like, acks read back by id."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 1

    @classmethod
    async def open(
        cls, session: aiohttp.ClientSession, base: str, address: str = "10.3.0.9"
    ) -> RawSocket:
        ws = await session.ws_connect(
            f"{base}/socket.io/?EIO=4&transport=websocket",
            headers={"X-Forwarded-For": address},
            max_msg_size=0,
        )
        opening = await ws.receive_str(timeout=5)
        assert opening.startswith("0{"), opening
        await ws.send_str("40")
        connected = await ws.receive_str(timeout=5)
        assert connected.startswith("40{"), connected
        return cls(ws)

    async def send(self, frame: str | bytes) -> None:
        if isinstance(frame, bytes):
            await self.ws.send_bytes(frame)
        else:
            await self.ws.send_str(frame)

    async def call(self, event: str, *args: Any) -> Any:
        """Emit with an ack id and wait for that ack (answering pings meanwhile)."""
        ack_id, self.next_id = self.next_id, self.next_id + 1
        await self.ws.send_str(f"42{ack_id}" + json.dumps([event, *args]))
        while True:
            frame = await self.ws.receive(timeout=5)
            assert frame.type == aiohttp.WSMsgType.TEXT, frame
            if frame.data == "2":
                await self.ws.send_str("3")
            elif frame.data.startswith(f"43{ack_id}["):
                return json.loads(frame.data[len(f"43{ack_id}") :])[0]

    @property
    def closed(self) -> bool:
        return self.ws.closed


HANDCRAFTED: list[str | bytes] = [
    "",
    "garbage",
    "4",
    "42",
    "42[",
    '42["message"',
    "42{}",
    '42"message"',
    "42[]",
    "42[1,2,3]",
    "42[null]",
    '42["join"]',
    '42["join", 123]',
    '42["join", {"channel": ["x"], "name": {"a": 1}}]',
    '42["join", {"channel": "' + "x" * 10_000 + '"}]',
    '42["message", {"channel": null, "text": 5}]',
    '42["message", {"channel": "hostile", "text": ["a"]}]',
    '42["ban", {"channel": "hostile", "user_id": {"$ne": 1}, "seconds": -1}]',
    '42["slow_mode", {"channel": "hostile", "seconds": 1e309}]',
    '42["delete", {"channel": "hostile", "id": "../../etc/passwd"}]',
    '42["no_such_event", {}]',
    '4299999999999999999999["join", {"channel": "hostile"}]',
    '42-1["join", {}]',
    '43["x"]',
    "43999[]",
    '451-["message",{"_placeholder":true,"num":0}]',
    '452-["message",{"_placeholder":true,"num":7}]',
    b"\x00\x01\x02garbage",
    b"\xff" * 64,
    "40/admin,",
    '40/admin,{"token":"x"}',
    '42/admin,["join",{"channel":"hostile"}]',
    "41/nope,",
    "44",
    "46",
    "49",
    "5",
    "6",
    "2probe",
    "3",
    "7",
    "\u0000\u202e\ud7ff",
    '42["join", {"channel": "hostile", "name": "\\u0000\\u202e"}]',
    "[" * 5000,
    '42["message", ' + "[" * 3000 + "]" * 3000 + "]",
]


def random_frames(count: int, seed: int = 8) -> list[str | bytes]:
    """Seeded noise: random bytes, and random tails after a valid-looking event prefix."""
    rng = random.Random(seed)
    frames: list[str | bytes] = []
    for i in range(count):
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        if i % 3 == 0:
            frames.append(blob)
        elif i % 3 == 1:
            frames.append("42" + blob.decode("latin-1"))
        else:
            frames.append('42["' + rng.choice(["join", "message", "ban"]) + '",' + blob.hex())
    return frames


async def connected_clients(server: Served) -> float:
    _, text = await get_text(f"{server.url}/metrics")
    return metric(text, "onair_chat_connected_clients")


async def test_garbage_frames_leave_server_and_other_clients_unaffected(
    settings: Settings, serve_process: ServeProcess, connect: Connect
) -> None:
    server = await serve_process(
        settings.with_changes(chat_rate_messages=100, chat_rate_ip_messages=100)
    )
    await create_channel(server.url, "hostile")
    ann = await connect(server.url, "10.3.0.1")
    bob = await connect(server.url, "10.3.0.2")
    assert (await ann.call("join", {"channel": "hostile", "name": "Ann"}))["ok"]
    assert (await bob.call("join", {"channel": "hostile", "name": "Bob"}))["ok"]
    closed = 0
    async with aiohttp.ClientSession() as session:
        raw = await RawSocket.open(session, server.url)
        for i, frame in enumerate(HANDCRAFTED + random_frames(150)):
            if raw.closed:
                closed += 1
                raw = await RawSocket.open(session, server.url)
            await raw.send(frame)
            if i % 10 == 0:  # the others still talk while it goes on
                text = f"still here {i}"
                assert (await ann.call("message", {"channel": "hostile", "text": text}))["ok"]
                await bob.wait_for("message", lambda m, t=text: m["text"] == t)
        # Oversized frames (the limit is 16 KiB) close that connection and nothing else.
        for huge in ("42" + json.dumps(["message", {"channel": "hostile", "text": "x" * 2**20}]),
                     b"\x00" * 2**20):  # fmt: skip
            big = await RawSocket.open(session, server.url)
            # The server may read the frame's length and close before we finish writing it.
            with contextlib.suppress(ConnectionError):
                await big.send(huge)
            frame = await big.ws.receive(timeout=10)
            ended = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
            assert frame.type in ended, frame
            await big.ws.close()
        await raw.ws.close()

    assert (await ann.call("message", {"channel": "hostile", "text": "after all that"}))["ok"]
    await bob.wait_for("message", lambda m: m["text"] == "after all that")
    assert server.alive

    async def only_ann_and_bob() -> bool:
        return await connected_clients(server) == 2

    await wait_until(only_ann_and_bob, 30, "the connected-clients gauge back to 2")
    log = server.log()
    assert "Traceback" not in log and "level=error" not in log, log[-3000:]


async def test_a_client_cannot_fire_connect_or_disconnect_itself(
    settings: Settings, serve_process: ServeProcess, connect: Connect
) -> None:
    server = await serve_process(settings)
    await create_channel(server.url, "hostile")
    token = await create_moderator(server.url, "hostile")
    mod = await connect(server.url, "10.3.0.1", token=token)
    assert (await mod.call("join", {"channel": "hostile"}))["ok"]
    async with aiohttp.ClientSession() as session:
        eve = await RawSocket.open(session, server.url, address="10.3.0.66")
        joined = await eve.call("join", {"channel": "hostile", "name": "Eve"})
        assert joined["ok"], joined
        assert (await mod.call("ban", {"channel": "hostile", "user_id": joined["user"]["id"]}))[
            "ok"
        ]
        assert (await eve.call("message", {"channel": "hostile", "text": "hi"}))["error"] == (
            "banned"
        )
        # A forged "connect" event would hand the handler an environ of the client's
        # choosing: a fresh address hash (out of the ban) and a fresh rate-limit bucket.
        await eve.send('42["connect", {"HTTP_X_FORWARDED_FOR": "10.9.9.9"}]')
        rejoined = await eve.call("join", {"channel": "hostile", "name": "Evelyn"})
        assert rejoined.get("error") == "banned", rejoined
        # A forged "disconnect" must not drop the session (nor the connected-clients gauge).
        await eve.send('42["disconnect", "client namespace disconnect"]')
        assert (await eve.call("leave", {"channel": "hostile"})) == {
            "ok": False,
            "error": "not_joined",
        }
        assert await connected_clients(server) == 2
        await eve.ws.close()
    assert server.alive
