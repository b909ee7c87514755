"""The broadcast fan-out: one frame written to every idle websocket, the queue for the rest."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from prometheus_client import REGISTRY

from server.channels.store import CHANNELS
from server.chat.fanout import WriterQueue
from server.chat.sio import SIO
from server.settings import Settings
from tests.chat.conftest import Chatter
from tests.conftest import Serve

Connect = Callable[..., Awaitable[Chatter]]


def deliveries(path: str) -> float:
    return REGISTRY.get_sample_value("onair_chat_deliveries_total", {"path": path}) or 0.0


async def test_websocket_and_polling_clients_get_the_same_messages_in_order(
    chat_settings: Settings, serve: Serve, connect: Connect
) -> None:
    server = await serve(chat_settings.with_changes(chat_rate_messages=50))
    await server.app[CHANNELS].create("alpha", "alpha")
    ann = await connect(server.url, "10.0.0.1")
    bob = await connect(server.url, "10.0.0.2")
    cat = await connect(server.url, "10.0.0.4")  # only listens
    pol = await connect(server.url, "10.0.0.3", transport="polling")
    for chatter, name in ((ann, "Ann"), (bob, "Bob"), (cat, "Cat"), (pol, "Pol")):
        assert (await chatter.call("join", {"channel": "alpha", "name": name}))["ok"]
    direct, queued = deliveries("direct"), deliveries("queued")

    # 10 to 500 characters: frames with a one- and a two-byte length; sent at once from the
    # two websocket clients, then one from the polling client.
    texts = ["é" * n * 25 + f"line {n}" for n in range(20)]
    senders = (ann, bob)
    acks = await asyncio.gather(
        *(
            senders[n % 2].call("message", {"channel": "alpha", "text": t})
            for n, t in enumerate(texts)
        )
    )
    assert all(ack["ok"] for ack in acks)
    assert (await pol.call("message", {"channel": "alpha", "text": "from polling"}))["ok"]
    texts.append("from polling")
    for chatter in (ann, bob, cat, pol):
        await chatter.wait_for("message", lambda m: m["text"] == "from polling")
    order = ann.texts("alpha")
    assert sorted(order) == sorted(texts) and order[-1] == "from polling"
    assert bob.texts("alpha") == order and cat.texts("alpha") == order
    assert pol.texts("alpha") == order
    # cat's writer had nothing else to send: every message was written at once. ann's and
    # bob's went behind their own acks; pol polls, so its share always waits in its queue.
    assert deliveries("direct") - direct >= len(texts)
    assert deliveries("queued") - queued >= len(texts)


async def test_frames_of_every_length_arrive_intact(
    chat_settings: Settings, serve: Serve, connect: Connect
) -> None:
    server = await serve(chat_settings)
    await server.app[CHANNELS].create("alpha", "alpha")
    ann = await connect(server.url, "10.0.0.1")
    pol = await connect(server.url, "10.0.0.2", transport="polling")
    for chatter in (ann, pol):
        assert (await chatter.call("join", {"channel": "alpha"}))["ok"]
    # Frame lengths: one byte, two bytes (126...65535) and eight bytes (65536 and over).
    payloads = [{"size": size, "text": "ü" * size} for size in (10, 100, 40_000)]
    for payload in payloads:
        await server.app[SIO].emit("stream", payload, room="alpha")
    for chatter in (ann, pol):
        for payload in payloads:
            got = await chatter.wait_for(
                "stream", lambda p, size=payload["size"]: p["size"] == size
            )
            assert got == payload


async def test_writer_queue_is_idle_only_while_its_writer_waits_on_nothing() -> None:
    queue = WriterQueue()
    assert not queue.idle  # no writer waiting yet
    writer = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    assert queue.idle
    queue.put_nowait("packet")
    assert not queue.idle  # queued, writer woken but not yet run
    await asyncio.sleep(0)
    assert writer.done() and await writer == "packet"
    assert not queue.idle  # the writer holds the packet until it sends it and waits again
