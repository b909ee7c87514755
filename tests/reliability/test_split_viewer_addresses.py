"""Split topology: an edge nginx in front of a media host's private listener; the server behind
the media host still sees each viewer's own address."""

from __future__ import annotations

import asyncio
import dataclasses

import aiohttp
import pytest

from server.settings import Settings
from tests.conftest import (
    ServeProcess,
    create_channel,
    free_port,
    get_json,
    running_nginx,
    wait_until,
)

pytestmark = [pytest.mark.media, pytest.mark.slow]

PLAYER = "Mozilla/5.0 (Linux; Android 14) Chrome/131.0 Mobile"  # one phone model, two homes


async def watch(edge: str, source: str, rounds: int) -> None:
    """A player at `source`: the master playlist once, then its media playlist every 0.5 s."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector, headers={"User-Agent": PLAYER}) as s:
        for path in ["/hls/split/master.m3u8"] + ["/hls/split/360p/index.m3u8"] * rounds:
            async with s.get(edge + path) as response:
                assert response.status == 200, (source, path, response.status)
            await asyncio.sleep(0.5)


async def test_two_viewers_behind_one_edge_count_as_two(
    settings: Settings, serve_process: ServeProcess
) -> None:
    live = settings.media_root / "live" / "split"
    (live / "360p").mkdir(parents=True)
    (live / "master.m3u8").write_text("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n360p/index.m3u8\n")
    (live / "360p" / "index.m3u8").write_text("#EXTM3U\n#EXT-X-TARGETDURATION:2\n")
    private = f"127.0.0.1:{free_port()}"
    # The media host: RTMP, the server, and the private listener the edge fetches HLS from
    # (loopback stands in for the private network: the edge connects from 127.0.0.1).
    media = {"private_listen": private, "private_allow": [], "private_trust": ["127.0.0.1"]}
    # The edge: public web, no media of its own, /hls/ from the media host.
    edge_settings = dataclasses.replace(settings, http_port=free_port(), rtmp_port=free_port())
    edge_values = {"rtmp_listen": "", "hls_origins": [private]}
    async with running_nginx(settings, media), running_nginx(edge_settings, edge_values):
        server = await serve_process(settings)
        await create_channel(server.url, "split")
        edge = f"http://127.0.0.1:{edge_settings.http_port}"
        await asyncio.gather(watch(edge, "127.0.0.3", 8), watch(edge, "127.0.0.4", 8))

        async def viewers() -> int:
            return int((await get_json(f"{server.url}/api/channels/split"))[1]["viewers"])

        async def counted() -> bool:
            return await viewers() >= 2

        try:
            await wait_until(counted, 5, "both viewers to be counted")
        except AssertionError as err:
            raise AssertionError(
                f"viewers={await viewers()}: the edge's address was counted"
            ) from err
        assert await viewers() == 2
        # The private listener still admits only the edges: another address is refused.
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.5", 0))
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.get(f"http://{private}/hls/split/master.m3u8") as response,
        ):
            assert response.status == 403
