"""The pages over plain HTTP: security headers, no inline script, hashed static files, 404s."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from aiohttp.test_utils import TestClient

from server.channels.store import CHANNELS
from server.live.streams import STREAMS

SCRIPT_TAG = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)
ASSET_URL = re.compile(r'(?:src|href)="(/static/[^"]+)"')


async def make(client: TestClient, slug: str, title: str) -> None:
    """A channel straight in the database."""
    await client.app[CHANNELS].create(slug, title)


async def test_pages_carry_a_strict_csp_and_security_headers(client: TestClient) -> None:
    await make(client, "demo", "Demo")
    for path in ("/", "/watch/demo", "/watch/nobody"):
        response = await client.get(path)
        assert response.content_type == "text/html"
        csp = response.headers["Content-Security-Policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["default-src"] == "'self'"
        assert directives["script-src"] == "'self'"
        assert "unsafe" not in csp
        assert "blob:" in directives["media-src"] and "blob:" in directives["worker-src"]
        assert directives["frame-ancestors"] == "'none'"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
        assert "no-cache" in response.headers["Cache-Control"]
        html = await response.text()
        for attributes in SCRIPT_TAG.findall(html):
            assert 'src="/static/' in attributes, attributes  # no inline script, no CDN
        assert "//cdn" not in html and "https://" not in html


async def test_watch_page_names_its_controls(client: TestClient) -> None:
    await make(client, "demo", "Demo <Night>")
    response = await client.get("/watch/demo")
    assert response.status == 200
    html = await response.text()
    assert "Demo &lt;Night&gt;" in html and "<Night>" not in html
    for control, label in (("message", "Message"), ("name", "Name"), ("quality", "Quality")):
        assert re.search(rf'<label for="{control}"[^>]*>{label}</label>', html), control
    assert '<video id="player"' in html
    assert 'data-src="/hls/demo/master.m3u8"' in html


async def test_unknown_channel_is_an_html_404(client: TestClient) -> None:
    for path in ("/watch/nobody", "/watch/Not_A..Slug"):
        response = await client.get(path)
        assert response.status == 404
        assert response.content_type == "text/html"
        assert "No channel" in await response.text()


async def test_static_files_have_hashed_names_and_long_cache(client: TestClient) -> None:
    await make(client, "demo", "Demo")
    html = await (await client.get("/watch/demo")).text()
    urls = ASSET_URL.findall(html)
    names = {url.rsplit("/", 1)[1].split(".")[0] for url in urls}
    assert {"onair", "watch", "hls", "socket"} <= names, urls
    for url in urls:
        assert re.search(r"\.[0-9a-f]{12}\.(js|css)$", url), url
        response = await client.get(url)
        assert response.status == 200, url
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "Content-Security-Policy" not in response.headers
        stale = re.sub(r"\.[0-9a-f]{12}\.", ".000000000000.", url)
        assert (await client.get(stale)).status == 404
    assert (await client.get("/static/watch.js")).status == 404
    assert (await client.get("/static/../pages.py")).status == 404


async def test_channel_list_puts_live_channels_first(client: TestClient) -> None:
    await make(client, "first", "First Created")
    await make(client, "second", "Second Created")
    client.app[STREAMS].started["second"] = datetime.now(UTC)  # live, no ladder needed
    html = await (await client.get("/")).text()
    assert html.index("Second Created") < html.index("First Created")
    assert 'src="/thumb/second.jpg"' in html
    assert "/thumb/first.jpg" not in html


async def test_thumbnail_is_404_while_offline_or_not_ready(client: TestClient) -> None:
    await make(client, "demo", "Demo")
    assert (await client.get("/thumb/demo.jpg")).status == 404
    client.app[STREAMS].started["demo"] = datetime.now(UTC)
    assert (await client.get("/thumb/demo.jpg")).status == 404  # no segment yet
    assert (await client.get("/thumb/BAD.jpg")).status == 404
