"""Relays while live: an edit touches only its own relay; RTMPS checks the platform's
certificate; the publisher leaving stops every relay."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.harness import ffmpeg_pids, wait_until
from bench.rtmp_platform import Platform
from server.channels.store import CHANNELS
from tests.conftest import LiveStack
from tests.simulcast.conftest import LabCA
from tests.simulcast.test_relay import KEY, add, call, destination, wait_state

pytestmark = [pytest.mark.media]


def relay_pid(slug: str, destination_id: int) -> int | None:
    """The running relay FFmpeg of this destination, if any."""
    marker = f"comment=onair-relay-{slug}-{destination_id}"
    found = [pid for pid in ffmpeg_pids(marker) if _argv_has(pid, marker)]
    assert len(found) <= 1, found
    return found[0] if found else None


def _argv_has(pid: int, arg: str) -> bool:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return arg.encode() in f.read().split(b"\0")


async def patch(stack: LiveStack, destination_id: int, body: dict[str, object]) -> None:
    status, changed = await call("PATCH", f"{stack.http}/api/destinations/{destination_id}", body)
    assert status == 200, changed


async def test_edits_while_live_start_stop_or_restart_only_that_relay(
    live_stack: LiveStack, platform: Platform, publish
) -> None:  # type: ignore[no-untyped-def]
    stack = live_stack
    _, stream_key = await stack.app[CHANNELS].create("edits", "Edits")
    one = await add(stack.http, "edits", "One", platform.server(), key="key-one-1111")
    two = await add(stack.http, "edits", "Two", platform.server(), key="key-two-2222")
    publisher = await publish(stack.rtmp(stream_key), size="320x240", fps=30)
    await wait_state(stack.http, "edits", one["id"], "live")
    await wait_state(stack.http, "edits", two["id"], "live")
    two_pid = relay_pid("edits", two["id"])
    assert two_pid is not None and relay_pid("edits", one["id"]) is not None

    await patch(stack, one["id"], {"enabled": False})
    await wait_state(stack.http, "edits", one["id"], "idle", timeout=15)
    assert relay_pid("edits", one["id"]) is None
    assert relay_pid("edits", two["id"]) == two_pid

    await patch(stack, one["id"], {"enabled": True})
    await wait_state(stack.http, "edits", one["id"], "live")
    assert relay_pid("edits", two["id"]) == two_pid

    # A new key: only that relay restarts, and the platform gets the stream under it.
    one_pid = relay_pid("edits", one["id"])
    await patch(stack, two["id"], {"key": "key-two-new-3333"})

    async def under_the_new_key() -> bool:
        return "key-two-new-3333" in await platform.streams()

    await wait_until(under_the_new_key, 60, "the platform to receive under the new key")
    assert relay_pid("edits", one["id"]) == one_pid
    assert relay_pid("edits", two["id"]) not in (None, two_pid)

    status, _ = await call("DELETE", f"{stack.http}/api/destinations/{one['id']}")
    assert status == 204

    async def one_gone() -> bool:
        return relay_pid("edits", one["id"]) is None

    await wait_until(one_gone, 15, "the deleted destination's relay to stop")

    # The publisher leaves: every relay stops and says idle.
    await publisher.stop()
    await wait_state(stack.http, "edits", two["id"], "idle", timeout=30)

    async def no_relay_left() -> bool:
        return not ffmpeg_pids("onair-relay-edits-")

    await wait_until(no_relay_left, 15, "no relay FFmpeg left once offline")


async def test_rtmps_checks_the_platforms_certificate(
    live_stack: LiveStack, platforms, test_ca: LabCA, tmp_path: Path, publish
) -> None:  # type: ignore[no-untyped-def]
    stack = live_stack
    trusted = await platforms(tls=test_ca.issue("localhost", ip="127.0.0.1"))
    wrong_name = await platforms(tls=test_ca.issue("elsewhere.example"))
    unknown_ca = await platforms(tls=LabCA(tmp_path).issue("localhost"))
    _, stream_key = await stack.app[CHANNELS].create("secure", "Secure")
    base = stack.http
    good = await add(base, "secure", "Trusted", trusted.server("localhost"))
    bad = await add(base, "secure", "Wrong name", wrong_name.server("localhost"), key="k-bad-99")
    stranger = await add(base, "secure", "Unknown CA", unknown_ca.server("localhost"), key="k-3")
    await publish(stack.rtmp(stream_key), size="320x240", fps=30)

    await wait_state(stack.http, "secure", good["id"], "live")

    async def arrived() -> bool:
        return KEY in await trusted.streams()

    await wait_until(arrived, 60, "the stream through the TLS front")

    refused = await wait_state(stack.http, "secure", bad["id"], "failing")
    assert "does not match hostname localhost" in refused["last_error"], refused
    assert "k-bad-99" not in await wrong_name.streams()
    refused = await wait_state(stack.http, "secure", stranger["id"], "failing")
    assert "failed verification" in refused["last_error"], refused
    assert "k-3" not in await unknown_ca.streams()
    assert (await destination(stack.http, "secure", good["id"]))["state"] == "live"
