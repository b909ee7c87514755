"""The watch page's chat in a real browser: text only, feedback, moderation, reconnects."""

from __future__ import annotations

import json
import re

import aiohttp
import pytest
from playwright.async_api import Browser, BrowserContext, Page, Route, expect

from tests.browser.conftest import Watched, new_channel, open_page
from tests.conftest import LiveStack

pytestmark = [pytest.mark.media]

ATTACK = "<img src=x onerror=\"window.__pwned=1;document.title='pwned'\">"


async def joined(watched: Watched) -> Page:
    """The page once its chat has joined (the message box turns on)."""
    await expect(watched.page.get_by_label("Message", exact=True)).to_be_enabled(timeout=10_000)
    return watched.page


async def say(page: Page, text: str) -> None:
    """Type a message and send it with Enter, as a keyboard user does."""
    box = page.get_by_label("Message", exact=True)
    await box.fill(text)
    await box.press("Enter")


async def pick_name(page: Page, name: str) -> None:
    """Choose a chat name in the Name field."""
    field = page.get_by_label("Name", exact=True)
    await field.fill(name)
    await field.press("Enter")
    await expect(page.locator("#chat-status")).to_have_text(f"You are {name}.")


async def test_message_appears_in_a_second_page_as_text_only(
    live_stack: LiveStack, browser: Browser
) -> None:
    await new_channel(live_stack, "talk")
    url = f"{live_stack.http}/watch/talk"
    alice = await open_page(browser, url)
    bob = await open_page(browser, url)
    alice_page, bob_page = await joined(alice), await joined(bob)
    await pick_name(alice_page, "alice")

    await say(alice_page, "hello from alice")
    last = bob_page.locator("#messages li").last
    await expect(last.locator(".who")).to_have_text("alice")
    await expect(last.locator(".text")).to_have_text("hello from alice")

    await say(alice_page, ATTACK)
    await expect(bob_page.locator("#messages li").last.locator(".text")).to_have_text(ATTACK)
    await expect(alice_page.locator("#messages li").last.locator(".text")).to_have_text(ATTACK)
    for page in (alice_page, bob_page):
        assert await page.locator("#messages img").count() == 0
        assert await page.evaluate("() => window.__pwned") is None
        assert await page.title() != "pwned"

    # Too many messages too fast: the page says so, and the text stays in the box.
    for i in range(8):
        await say(alice_page, f"spam {i}")
    await expect(alice_page.locator("#chat-status")).to_contain_text("too fast")
    assert (await alice_page.get_by_label("Message", exact=True).input_value()).startswith("spam")
    assert await alice.problems() == []
    assert await bob.problems() == []


async def test_moderator_deletes_sets_slow_mode_and_bans(
    live_stack: LiveStack, browser: Browser, admin: dict[str, str]
) -> None:
    await new_channel(live_stack, "modded")
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{live_stack.http}/api/channels/modded/moderators", json={"name": "mod"}, headers=admin
        ) as response,
    ):
        assert response.status == 201
        token = (await response.json())["token"]
    url = f"{live_stack.http}/watch/modded"
    moderator = await open_page(browser, f"{url}#token={token}")
    viewer = await open_page(browser, url)
    mod_page, viewer_page = await joined(moderator), await joined(viewer)
    assert "token" not in mod_page.url  # moved out of the address bar into local storage
    await expect(mod_page.locator("#mod-tools")).to_be_visible()
    await expect(viewer_page.locator("#mod-tools")).to_be_hidden()
    await pick_name(viewer_page, "spammer")

    await say(viewer_page, "buy cheap followers")
    spam = mod_page.locator("#messages li", has_text="buy cheap followers")
    await spam.get_by_role("button", name="Delete message from spammer").click()
    await expect(viewer_page.locator("#messages li", has_text="buy cheap")).to_have_count(0)
    await expect(spam).to_have_count(0)

    await mod_page.get_by_label("Slow mode", exact=True).select_option("5")
    await expect(viewer_page.locator("#slow-note")).to_have_text(
        "Slow mode: one message every 5 s."
    )
    await say(viewer_page, "one message")
    await expect(viewer_page.locator("#send")).to_have_text(re.compile(r"^Wait [1-5] s$"))
    await expect(viewer_page.locator("#send")).to_be_disabled()
    await mod_page.get_by_label("Slow mode", exact=True).select_option("0")
    await expect(viewer_page.locator("#slow-note")).to_be_hidden()

    await mod_page.get_by_label("Ban for", exact=True).select_option("3600")
    line = mod_page.locator("#messages li", has_text="one message")
    await line.get_by_role("button", name="Ban spammer").click()
    await expect(mod_page.locator("#chat-status")).to_have_text("spammer is banned.")
    await expect(viewer_page.locator("#send")).to_have_text("Send", timeout=10_000)
    await say(viewer_page, "am I still here?")
    await expect(viewer_page.locator("#chat-status")).to_have_text("You are banned from this chat.")
    assert await moderator.problems() == []
    assert await viewer.problems() == []


async def test_chat_comes_back_after_a_network_blip(
    live_stack: LiveStack, browser: Browser
) -> None:
    await new_channel(live_stack, "blip")
    url = f"{live_stack.http}/watch/blip"
    sender = await open_page(browser, url)
    reader = await open_page(browser, url)
    sender_page, reader_page = await joined(sender), await joined(reader)
    await pick_name(reader_page, "reader")

    # The network drops: the browser sees its connections fail, then it comes back.
    await reader_page.context.set_offline(True)
    await expect(reader_page.locator("#chat-status")).to_contain_text(
        "Reconnecting", timeout=15_000
    )
    await say(sender_page, "said while you were away")
    await reader_page.context.set_offline(False)
    await expect(reader_page.get_by_label("Message", exact=True)).to_be_enabled(timeout=20_000)
    await expect(reader_page.locator("#messages li", has_text="said while")).to_have_count(1)
    await expect(reader_page.get_by_label("Name", exact=True)).to_have_value("reader")
    await say(sender_page, "and after")
    await expect(reader_page.locator("#messages li").last).to_contain_text("and after")
    await say(reader_page, "reader is back")
    await expect(sender_page.locator("#messages li").last).to_contain_text("reader is back")
    assert await reader.problems() == []


async def test_past_broadcasts_are_listed_when_the_api_has_them(
    live_stack: LiveStack, browser: Browser
) -> None:
    await new_channel(live_stack, "archive")
    url = f"{live_stack.http}/watch/archive"
    plain = await open_page(browser, url)
    await joined(plain)
    # Without recordings (or while the endpoint 404s) the section is absent and nothing fails.
    await expect(plain.page.locator("#past")).to_be_hidden()
    assert await plain.problems() == []

    recordings = [
        {
            "id": "r1",
            "state": "ready",
            "started_at": "2025-01-02T20:00:00Z",
            "duration_s": 3725,
            "bytes": 123456789,
            "hls_url": "/vod/archive/r1/index.m3u8",
            "mp4_url": "/vod/archive/r1/recording.mp4",
        },
        {
            "id": "r0",
            "state": "recording",  # the live session itself: not a past broadcast
            "started_at": "2025-01-03T20:00:00Z",
            "duration_s": None,
            "bytes": 0,
            "hls_url": None,
            "mp4_url": None,
        },
        {
            "id": "r2",
            "state": "finalizing",
            "started_at": "2025-01-01T20:00:00Z",
            "duration_s": 65,
            "bytes": 1000,
            "hls_url": None,
            "mp4_url": "javascript:window.__pwned=1",
        },
    ]

    async def fake_recordings(context: BrowserContext) -> None:
        async def fulfil(route: Route) -> None:
            await route.fulfill(
                status=200, content_type="application/json", body=json.dumps(recordings)
            )

        await context.route("**/api/channels/archive/recordings", fulfil)

    listed = await open_page(browser, url, prepare=fake_recordings)
    past = listed.page.locator("#past")
    await expect(past).to_be_visible()
    await expect(past.get_by_role("heading", name="Past broadcasts")).to_be_visible()
    items = past.locator("li")
    await expect(items).to_have_count(2)
    await expect(items.first).to_contain_text("1:02:05")
    await expect(items.first.get_by_role("link", name="Download")).to_have_attribute(
        "href", f"{live_stack.http}/vod/archive/r1/recording.mp4"
    )
    await expect(items.nth(1)).to_contain_text("1:05 · processing")
    await expect(items.nth(1).get_by_role("link")).to_have_count(0)  # no javascript: link
    assert await listed.problems() == []
