"""Deliveries from the outbox to a real receiver: signed, in order per webhook, retried while
the receiver is down (across a server restart too), failed at once by a 4xx without holding
the rest back, sent again on request; chat messages only to their channels' webhooks."""

from __future__ import annotations

from typing import Any

from server.db import DB
from server.events import EVENTS, StreamEvent
from server.webhooks.deliverer import DELIVERER
from server.webhooks.signing import verify
from tests.chat.conftest import WAIT, Chatter
from tests.conftest import Running, Serve, create_channel, wait_until
from tests.webhooks.conftest import Receiver, add_webhook, api, deliveries

DEADLINE = 30.0  # generous: a loaded 2-core machine; a passing run takes well under 5 s each


async def announce(running: Running, *events: StreamEvent) -> None:
    """Publish stream events on the app's bus, as its live streams do."""
    for event in events:
        await running.app[EVENTS].publish(event)


async def settled(base_url: str, hook: int, count: int) -> list[dict[str, Any]]:
    """The delivery log once it holds `count` deliveries, none pending (the receiver may get a
    body a moment before its outcome is written)."""

    async def check() -> bool:
        log = await deliveries(base_url, hook)
        return len(log) == count and all(d["state"] != "pending" for d in log)

    await wait_until(check, DEADLINE, f"{count} deliveries of webhook {hook} settled")
    return await deliveries(base_url, hook)


async def test_chat_messages_reach_the_webhooks_of_their_channel_signed(
    serve: Serve, settings, receiver: Receiver
) -> None:  # type: ignore[no-untyped-def]
    running = await serve(settings)
    for slug in ("show", "other"):
        await create_channel(running.url, slug)
    await receiver.start()
    show_only, show_secret = await add_webhook(
        running.url, receiver.url, ["chat.message"], channels=["show"]
    )
    everywhere, _ = await add_webhook(running.url, receiver.url, ["chat.message"])

    chatter = Chatter()
    await chatter.sio.connect(running.url, transports=["websocket"], wait_timeout=WAIT)
    try:
        for channel, text in (("other", "elsewhere"), ("show", "hello show")):
            assert (await chatter.call("join", {"channel": channel, "name": "Ann"}))["ok"]
            ack = await chatter.call("message", {"channel": channel, "text": text})
            assert ack["ok"], ack
    finally:
        await chatter.sio.disconnect()
    texts = {}
    for hook, count in ((show_only, 1), (everywhere, 2)):
        texts[hook] = [
            d["body"]["message"]["text"] for d in await settled(running.url, hook, count)
        ]
    assert texts == {show_only: ["hello show"], everywhere: ["elsewhere", "hello show"]}

    got = next(r for r in receiver.delivered() if r.body["channel"] == "show")
    assert got.event == "chat.message" and got.body["event"] == "chat.message"
    message = got.body["message"]
    assert message["text"] == "hello show" and message["user"]["name"] == "Ann"
    assert message["id"] and message["ts"] and got.body["occurred_at"]
    signed_for_show = [r for r in receiver.delivered() if verify(show_secret, r.raw, r.signature)]
    assert signed_for_show == [got]  # the other webhook's copy is signed with its own secret


async def test_a_receiver_down_for_a_while_gets_every_delivery_in_order_across_a_restart(
    serve: Serve, settings, receiver: Receiver
) -> None:  # type: ignore[no-untyped-def]
    first = await serve(settings)
    hook, secret = await add_webhook(first.url, receiver.url, ["stream.started", "stream.stopped"])
    await announce(
        first,
        StreamEvent("a", live=True),
        StreamEvent("a", live=False),
        StreamEvent("b", live=True),
    )

    async def head_retried() -> bool:
        log = await deliveries(first.url, hook)
        return len(log) == 3 and log[0]["attempts"] >= 3

    await wait_until(head_retried, DEADLINE, "the first delivery retried while nobody listens")
    log = await deliveries(first.url, hook)
    assert [d["state"] for d in log] == ["pending"] * 3
    # In order: nothing behind the head was tried while it waits.
    assert [d["attempts"] for d in log[1:]] == [0, 0]
    assert log[0]["last_status"] is None and "Connect" in log[0]["last_error"]

    await first.stop()
    second = await serve(settings)
    await announce(second, StreamEvent("b", live=False), StreamEvent("c", live=True))
    await receiver.start()
    log = await settled(second.url, hook, 5)
    assert [d["state"] for d in log] == ["delivered"] * 5
    assert log[0]["attempts"] >= 4 and log[0]["last_error"] is None
    got = receiver.delivered()
    assert [(r.event, r.body["channel"]) for r in got] == [
        ("stream.started", "a"),
        ("stream.stopped", "a"),
        ("stream.started", "b"),
        ("stream.stopped", "b"),
        ("stream.started", "c"),
    ]
    ids = [r.delivery for r in got]
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert all(verify(secret, r.raw, r.signature) for r in got)


async def test_a_4xx_fails_a_delivery_at_once_the_next_still_arrives_and_it_can_be_sent_again(
    serve: Serve, settings, receiver: Receiver
) -> None:  # type: ignore[no-untyped-def]
    running = await serve(settings)
    hook, _ = await add_webhook(running.url, receiver.url, ["stream.started"])
    answers = {"gone": [410], "busy": [503, 429]}  # then 200

    def answer(body: Any) -> int:
        queue = answers.get(body["channel"], [])
        return queue.pop(0) if queue else 200

    receiver.answer = answer
    await receiver.start()
    await announce(running, StreamEvent("gone", live=True), StreamEvent("busy", live=True))
    gone, busy = await settled(running.url, hook, 2)
    assert gone["state"] == "failed" and gone["attempts"] == 1 and gone["last_status"] == 410
    assert gone["last_error"] == "receiver answered 410"
    assert busy["state"] == "delivered" and busy["attempts"] == 3 and busy["last_status"] == 200
    assert [(r.body["channel"], r.status) for r in receiver.got] == [
        ("gone", 410),
        ("busy", 503),
        ("busy", 429),
        ("busy", 200),
    ]

    status, again = await api(
        running.url, "POST", f"/api/webhooks/{hook}/deliveries/{gone['id']}/redeliver"
    )
    assert status == 201 and again["redelivery_of"] == gone["id"] and again["state"] == "pending"
    log = await settled(running.url, hook, 3)
    resent = receiver.delivered()[-1]
    assert resent.delivery == again["id"] and resent.body == gone["body"]
    assert [(d["id"], d["state"]) for d in log] == [
        (gone["id"], "failed"),
        (busy["id"], "delivered"),
        (again["id"], "delivered"),
    ]

    # A week on, what ended is forgotten; what is still pending never is.
    await running.app[DB].execute(
        "UPDATE webhook_deliveries SET created_at = now() - interval '8 days' WHERE id <> $1",
        again["id"],
    )
    await running.app[DB].execute(
        "UPDATE webhook_deliveries SET state = 'pending',"
        " next_attempt_at = now() + interval '1 day' WHERE id = $1",
        busy["id"],
    )
    assert await running.app[DELIVERER].prune() == 1
    assert [d["id"] for d in await deliveries(running.url, hook)] == [busy["id"], again["id"]]


async def test_two_servers_sharing_the_database_send_each_delivery_once_in_order(
    serve: Serve, settings, receiver: Receiver
) -> None:  # type: ignore[no-untyped-def]
    one, two = await serve(settings), await serve(settings)
    hook, _ = await add_webhook(one.url, receiver.url, ["stream.started", "stream.stopped"])
    await receiver.start()
    channels = [f"c{n}" for n in range(12)]
    for n, channel in enumerate(channels):
        # Written on either server; both servers' workers race for the webhook.
        await announce(one if n % 2 else two, StreamEvent(channel, live=True))
    log = await settled(one.url, hook, len(channels))
    assert [d["state"] for d in log] == ["delivered"] * len(channels)
    got = receiver.delivered()
    assert [r.body["channel"] for r in got] == channels
    assert [r.delivery for r in got] == [d["id"] for d in log]  # each once, in id order


async def test_a_receiver_whose_name_turns_private_is_not_sent_to(
    serve: Serve, settings, receiver: Receiver
) -> None:  # type: ignore[no-untyped-def]
    allowed = await serve(settings)
    hook, _ = await add_webhook(allowed.url, receiver.url, ["stream.started"])
    await allowed.stop()
    await receiver.start()
    strict = await serve(settings.with_changes(webhook_allow_private=False))
    await announce(strict, StreamEvent("show", live=True))
    (refused,) = await settled(strict.url, hook, 1)
    assert refused["state"] == "failed" and refused["attempts"] == 1
    assert refused["last_error"] == "127.0.0.1 now resolves to a private address"
    assert receiver.got == []
