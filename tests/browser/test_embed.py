"""Embeds in another site's page: an allowed site frames the player (it switches from offline to
live by itself, muted with an Unmute button) and the player with chat (it plays and chats with
the watch page); a site not in ONAIR_EMBED_ORIGINS is refused by CSP, and so is every other
page, the watch page included."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
from aiohttp import web
from playwright.async_api import Browser, Frame, Page, expect

from server.settings import Settings
from tests.browser.conftest import ARTIFACTS, LADDER_TIMEOUT, new_channel, open_page
from tests.browser.test_watch_live import wait_playing
from tests.conftest import LiveStack, free_port, wait_until

pytestmark = [pytest.mark.media, pytest.mark.slow]

FRAME = 'allow="autoplay; fullscreen" allowfullscreen style="border:0"'


@dataclass(frozen=True)
class Site:
    """Somebody else's web site (another origin: another port) with a page framing a URL."""

    origin: str

    def framing(self, src: str, width: int = 900, height: int = 420) -> str:
        """A page with an iframe of src."""
        frame = f'<iframe src="{html.escape(src)}" width="{width}" height="{height}" {FRAME}>'
        return self.pasting(frame + "</iframe>")

    def pasting(self, snippet: str) -> str:
        """A page with snippet pasted into it, as a site owner pastes the watch page's."""
        return f"{self.origin}/page?" + urlencode({"html": snippet})


async def site_page(request: web.Request) -> web.Response:
    body = "<!doctype html><title>A fan site</title><h1>Our stream</h1>" + request.query["html"]
    return web.Response(text=body, content_type="text/html")


@pytest.fixture
async def sites(aiohttp_server) -> AsyncIterator[tuple[Site, Site]]:  # type: ignore[no-untyped-def]
    """Two other sites: the first is allowed to embed, the second is not."""
    started = []
    for _ in range(2):
        app = web.Application()
        app.router.add_get("/page", site_page)
        server = await aiohttp_server(app, host="127.0.0.1", port=free_port())
        started.append(Site(f"http://127.0.0.1:{server.port}"))
    yield started[0], started[1]


@pytest.fixture
def settings(settings: Settings, sites: tuple[Site, Site]) -> Settings:
    return settings.with_changes(embed_origins=(sites[0].origin,))


async def embedded(page: Page, path: str) -> Frame:
    """The frame showing path, once its document has loaded."""

    async def framed() -> bool:
        return any(f.url.endswith(path) for f in page.frames)

    await wait_until(framed, 20, f"a frame showing {path}")
    frame = next(f for f in page.frames if f.url.endswith(path))
    await frame.wait_for_load_state()
    return frame


async def test_an_allowed_site_embeds_the_player_and_the_chat(
    live_stack: LiveStack,
    publish,  # type: ignore[no-untyped-def]
    browser: Browser,
    sites: tuple[Site, Site],
) -> None:
    allowed, _ = sites
    key = await new_channel(live_stack, "show", "Evening Show")

    # The player alone, framed while the channel is offline...
    player_only = await open_page(browser, allowed.framing(f"{live_stack.http}/embed/show"))
    frame = await embedded(player_only.page, "/embed/show")
    await expect(frame.locator("#offline-card")).to_contain_text("Evening Show is offline")
    await expect(frame.locator("#state")).to_have_text("Offline")
    await player_only.page.screenshot(path=str(ARTIFACTS / "embed-offline.png"))

    # ...goes live by itself when the streamer starts, muted, with an Unmute button.
    await publish(live_stack.rtmp(key), size="320x240")
    await wait_playing(frame, int(LADDER_TIMEOUT * 1000))
    await expect(frame.locator("#state")).to_have_text("Live")
    assert await frame.evaluate("() => document.getElementById('player').muted") is True
    unmute = frame.get_by_role("button", name="Unmute")
    await expect(unmute).to_be_visible()
    await player_only.page.screenshot(path=str(ARTIFACTS / "embed-player.png"))
    await unmute.click()
    await expect(unmute).to_be_hidden()
    assert await frame.evaluate("() => document.getElementById('player').muted") is False
    assert await player_only.problems() == []

    # The watch page's snippet, pasted into the site: the player with chat plays, and a message
    # sent in the frame reaches the watch page.
    watch = await open_page(browser, f"{live_stack.http}/watch/show")
    await watch.page.get_by_text("Embed on your site").click()
    snippet = await watch.page.get_by_label("Paste this where the player and chat").input_value()
    assert snippet == (
        f'<iframe src="{live_stack.http}/embed/show?chat=1" width="960" height="400"'
        f' title="Evening Show" {FRAME}></iframe>'
    )
    with_chat = await open_page(browser, allowed.pasting(snippet))
    frame = await embedded(with_chat.page, "/embed/show?chat=1")
    await wait_playing(frame)
    message = frame.get_by_label("Message", exact=True)
    await expect(message).to_be_enabled(timeout=20_000)
    await message.fill("hello from the fan site")
    await message.press("Enter")
    await expect(frame.locator("#messages")).to_contain_text("hello from the fan site")
    await expect(watch.page.locator("#messages")).to_contain_text("hello from the fan site")
    await with_chat.page.screenshot(path=str(ARTIFACTS / "embed-chat.png"))
    assert await with_chat.problems() == [] and await watch.problems() == []

    # On a phone-sized frame the chat goes below the player; the chat alone fills its frame.
    phone = await open_page(
        browser, allowed.framing(f"{live_stack.http}/embed/show?chat=1", 360, 640), phone=True
    )
    frame = await embedded(phone.page, "/embed/show?chat=1")
    await expect(frame.locator("#messages")).to_contain_text("hello from the fan site")
    video = await frame.locator("#player").bounding_box()
    chat = await frame.locator("#chat").bounding_box()
    assert video is not None and chat is not None and chat["y"] >= video["y"] + video["height"]
    await phone.page.screenshot(path=str(ARTIFACTS / "embed-chat-phone.png"))
    chat_only = await open_page(
        browser, allowed.framing(f"{live_stack.http}/embed/show/chat", 340, 500)
    )
    frame = await embedded(chat_only.page, "/embed/show/chat")
    await expect(frame.locator("#messages")).to_contain_text("hello from the fan site")
    assert await frame.locator("#player").count() == 0


async def refused(browser: Browser, url: str) -> str:
    """Frame url on a page and return Chromium's console words for the refused frame."""
    watched = await open_page(browser, url)
    said: list[str] = []
    watched.page.on("console", lambda msg: said.append(msg.text))
    await watched.page.reload()

    async def reported() -> bool:
        return any("frame-ancestors" in s for s in said)

    await wait_until(reported, 20, f"Chromium refusing to frame {url}")
    frame = next(f for f in watched.page.frames if f != watched.page.main_frame)
    # The framed document never ran: Chromium shows its error page in its place.
    assert await frame.locator("#embed, #watch").count() == 0
    return next(s for s in said if "frame-ancestors" in s)


async def test_other_sites_and_other_pages_cannot_frame_onair(
    live_stack: LiveStack, browser: Browser, sites: tuple[Site, Site]
) -> None:
    allowed, other = sites
    await new_channel(live_stack, "show", "Evening Show")
    words = await refused(browser, other.framing(f"{live_stack.http}/embed/show?chat=1"))
    assert re.search(rf"frame-ancestors {re.escape(allowed.origin)}", words), words
    # the watch page and the channel list refuse every site, the allowed one too
    for path in ("/watch/show", "/"):
        words = await refused(browser, allowed.framing(f"{live_stack.http}{path}"))
        assert "frame-ancestors 'none'" in words, words
