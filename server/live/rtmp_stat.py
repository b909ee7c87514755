"""nginx-rtmp's `rtmp_stat` XML, read one way: who publishes, and what each publisher sends."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

import aiohttp

from transcoder.layout import valid_slug

STAT_TIMEOUT = aiohttp.ClientTimeout(total=5)


@dataclass(frozen=True)
class Publisher:
    """One stream being published to application `live`, as nginx-rtmp sees it."""

    slug: str
    client_id: str
    input_kbps: int  # everything the encoder sends, averaged by nginx-rtmp over ~10 s
    video_kbps: int
    audio_kbps: int


async def fetch_stat(http: aiohttp.ClientSession, url: str) -> bytes:
    """GET rtmp_stat; raises aiohttp.ClientError or TimeoutError when nginx does not answer."""
    async with http.get(url, timeout=STAT_TIMEOUT) as response:
        response.raise_for_status()
        return await response.read()


def _kbps(stream: ET.Element, field: str) -> int:
    """A bits-per-second field of the stream, in kbit/s; 0 when absent or unreadable."""
    try:
        return round(int(stream.findtext(field) or 0) / 1000)
    except ValueError:
        return 0


def publishers(stat_xml: bytes) -> list[Publisher]:
    """Every publisher in application `live` whose stream name is a slug.

    Raises xml.etree.ElementTree.ParseError when the body is not XML.
    """
    found = []
    root = ET.fromstring(stat_xml)
    for application in root.iter("application"):
        if application.findtext("name") != "live":
            continue
        for stream in application.iter("stream"):
            name = stream.findtext("name") or ""
            if not valid_slug(name):
                continue
            for client in stream.iter("client"):
                if client.find("publishing") is not None:
                    found.append(
                        Publisher(
                            name,
                            client.findtext("id") or "",
                            _kbps(stream, "bw_in"),
                            _kbps(stream, "bw_video"),
                            _kbps(stream, "bw_audio"),
                        )
                    )
    return found


def stat_url(http_port: int) -> str:
    """Where this host's nginx serves rtmp_stat (loopback, plain HTTP)."""
    return f"http://127.0.0.1:{http_port}/rtmp_stat"
