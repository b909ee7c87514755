"""A real RTMP publish announces stream.started to a receiver within 5 s, signed with the
webhook's secret; the publisher leaving announces stream.stopped, then the session's
recording recording.ready."""

from __future__ import annotations

from datetime import datetime

import pytest

from server.db import DB
from server.webhooks.signing import verify
from tests.conftest import LiveStack, create_channel, wait_until
from tests.webhooks.conftest import Receiver, add_webhook

pytestmark = [pytest.mark.media]

DEADLINE = 60.0  # for FFmpeg to start and connect on a loaded 2-core machine
WITHIN_S = 5.0  # from the server taking the publish to the receiver having the delivery


async def test_a_publish_announces_stream_started_within_5_s_signed_then_stopped_and_recorded(
    live_stack: LiveStack, publish, receiver: Receiver
) -> None:  # type: ignore[no-untyped-def]
    key = await create_channel(live_stack.http, "show")
    await receiver.start()
    _, secret = await add_webhook(
        live_stack.http,
        receiver.url,
        ["stream.started", "stream.stopped", "recording.ready"],
        channels=["show"],
    )
    publisher = await publish(live_stack.rtmp(key), size="320x240", fps=15)

    async def got(count: int) -> bool:
        return len(receiver.delivered()) >= count

    await wait_until(lambda: got(1), DEADLINE, "stream.started at the receiver")
    started = receiver.delivered()[0]
    assert started.event == "stream.started" and started.body["channel"] == "show"
    went_live = datetime.fromisoformat(started.body["started_at"]).timestamp()
    assert started.at - went_live < WITHIN_S, started.body
    assert verify(secret, started.raw, started.signature)
    assert not verify("whsec_" + "x" * 43, started.raw, started.signature)
    assert not verify(secret, started.raw.replace(b"show", b"shoe"), started.signature)

    async def recorded_a_little() -> bool:
        rid = await live_stack.app[DB].fetchval(
            "SELECT id FROM recordings WHERE state = 'recording'"
        )
        part = live_stack.settings.media_root / "recordings" / "show" / str(rid) / "part-0001.ts"
        return rid is not None and part.exists() and part.stat().st_size > 50_000

    await wait_until(recorded_a_little, DEADLINE, "a little of the session recorded")
    await publisher.stop()
    await wait_until(lambda: got(3), DEADLINE, "stream.stopped and recording.ready")
    stopped, ready = receiver.delivered()[1:]
    assert stopped.event == "stream.stopped" and stopped.delivery > started.delivery
    assert stopped.body["started_at"] == started.body["started_at"]
    rid = await live_stack.app[DB].fetchval("SELECT id FROM recordings")
    assert ready.event == "recording.ready" and ready.body["recording"]["id"] == rid
    assert ready.body["recording"]["duration_s"] > 0
    assert all(verify(secret, r.raw, r.signature) for r in (stopped, ready))
