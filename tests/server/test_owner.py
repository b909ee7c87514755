"""Two workers of one host (same node name, same database): exactly one owns the hooks'
decisions, the other answers the update hook from PostgreSQL and takes over when the owner
stops."""

from __future__ import annotations

import asyncio

import aiohttp

from server.background.slot import ENCODER
from server.channels.store import CHANNELS
from server.owner import OWNER
from server.settings import Settings
from tests.conftest import Running, Serve, wait_until


async def post_hook(base: str, kind: str, secret: str, key: str, clientid: str = "7") -> int:
    """A hook as nginx-rtmp posts it; the status it got."""
    form = {"app": "live", "name": key, "clientid": clientid, "addr": "203.0.113.9"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{base}/hooks/rtmp/{kind}?secret={secret}", data=form, allow_redirects=False
        ) as response,
    ):
        return response.status


def owners(*workers: Running) -> list[Running]:
    return [w for w in workers if w.app[OWNER].is_owner]


async def test_one_owner_and_a_take_over(settings: Settings, serve: Serve) -> None:
    first = await serve(settings)
    second = await serve(settings)
    assert owners(first, second) == [first]  # the first one up owns at once
    _, key = await first.app[CHANNELS].create("studio", "Studio")
    secret = settings.hook_secret

    # The other worker leaves publish and publish_done to the owner (nginx asks the next).
    assert await post_hook(second.url, "publish", secret, key) == 503
    assert await post_hook(second.url, "publish_done", secret, key) == 503
    assert await post_hook(first.url, "publish", secret, key) == 302
    # Any worker answers update: the publisher stays while the key holds...
    assert await post_hook(second.url, "update", secret, key) == 200
    # ...and is dropped by either once it is rotated.
    await first.app[CHANNELS].rotate_key("studio")
    assert await post_hook(second.url, "update", secret, key) == 403
    assert await post_hook(first.url, "update", secret, key) == 403

    # Background work queued by the other worker (an upload's last byte) wakes the owner's
    # encoder slot at once (a NOTIFY), not at its next idle poll.
    woken = asyncio.Event()
    first.app[OWNER].on_wake(woken.set)
    second.app[ENCODER].wake()
    await asyncio.wait_for(woken.wait(), 10)

    await first.stop()  # releases the lock once its duties have stopped

    async def took_over() -> bool:
        return second.app[OWNER].is_owner

    await wait_until(took_over, timeout=10, what="the second worker takes over")
    _, new_key = await second.app[CHANNELS].create("other", "Other")
    assert await post_hook(second.url, "publish", secret, new_key, clientid="9") == 302
