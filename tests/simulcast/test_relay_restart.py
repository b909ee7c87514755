"""`onair serve` SIGKILLed while relaying: the next server adopts the live channel and runs
one relay again (the old FFmpeg dies on its dead pipes or is reaped by its pidfile), and the
platform gets the stream from it."""

from __future__ import annotations

import pytest

from bench.rtmp_platform import Platform
from server.settings import Settings
from tests.conftest import ServeProcess, channel_in_database, running_nginx, wait_until
from tests.media.test_server_restart import kill_9
from tests.simulcast.test_relay import KEY, add, relay_pids, wait_state

pytestmark = [pytest.mark.media, pytest.mark.slow]


async def test_kill_9_server_then_one_relay_resumes(
    settings: Settings, serve_process: ServeProcess, platform: Platform, publish
) -> None:  # type: ignore[no-untyped-def]
    assert settings.database_url is not None
    key = await channel_in_database(settings.database_url, "again")
    first = await serve_process(settings)
    async with running_nginx(settings) as prefix:
        base = f"http://127.0.0.1:{settings.http_port}"
        made = await add(base, "again", "Platform", platform.server())
        await publish(f"rtmp://127.0.0.1:{settings.rtmp_port}/live/{key}", size="320x240")
        await wait_state(base, "again", made["id"], "live")
        old = relay_pids("again")
        assert len(old) == 1

        await kill_9(first)
        await serve_process(settings)

        async def one_new_relay() -> bool:
            pids = relay_pids("again")
            return len(pids) == 1 and pids != old

        await wait_until(one_new_relay, 60, f"one new relay (nginx at {prefix})")
        await wait_state(base, "again", made["id"], "live")

        async def on_the_platform() -> bool:
            return KEY in await platform.streams()

        await wait_until(on_the_platform, 30, "the stream on the platform again")
        assert len(relay_pids("again")) == 1
