"""The channel page's Simulcast section in Chromium: a destination added through the form is
relayed to a real "platform" (a second nginx-rtmp) while live, its state in words."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, expect

from bench.harness import wait_until
from bench.rtmp_platform import Platform
from server.settings import Settings
from tests.browser.conftest import ARTIFACTS, new_channel, open_page
from tests.browser.test_admin import sign_in
from tests.conftest import LiveStack

pytestmark = [pytest.mark.media]

LIVE_TIMEOUT = 90_000  # ms: publish, the relay's probe, the platform's handshake, a poll
KEY = "xyzw-1234-abcd-5678"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The platform is on loopback, which relays may reach only when the operator allows."""
    return settings.with_changes(relay_allow_private=True)


@pytest.fixture
async def platform() -> AsyncIterator[Platform]:
    started = Platform()
    await started.start()
    yield started
    await started.stop()


async def test_add_a_destination_watch_it_go_live_fail_and_manage_it(
    live_stack: LiveStack, browser: Browser, platform: Platform, publish
) -> None:  # type: ignore[no-untyped-def]
    stream_key = await new_channel(live_stack, "cast", "Cast")
    watched = await open_page(browser, f"{live_stack.http}/admin")
    page = watched.page
    await sign_in(page, live_stack.settings.admin_token)
    await page.goto(f"{live_stack.http}/admin/channels/cast")
    await expect(page.get_by_text("No destinations")).to_be_visible()

    async def add(name: str, server: str, key: str) -> None:
        await page.get_by_label("Destination name", exact=True).fill(name)
        await page.get_by_label("Server URL", exact=True).fill(server)
        await page.get_by_label("Platform stream key", exact=True).fill(key)
        await page.get_by_role("button", name="Add destination").click()

    await add("Nowhere", "http://example.com/live2", KEY)
    await expect(page.get_by_role("status")).to_have_text(
        "server must start with rtmp:// or rtmps://"
    )
    await add("YouTube", platform.server(), KEY)
    await expect(page.get_by_role("status")).to_have_text(
        "Destination YouTube added: it is relayed while the channel is live."
    )
    row = page.locator("#destinations li").filter(has_text="YouTube")
    await expect(row).to_contain_text("****5678")
    await expect(row).to_contain_text("Idle: relayed while the channel is live")
    assert KEY not in await page.content()

    await publish(live_stack.rtmp(stream_key), size="640x360", fps=30)
    await expect(row).to_contain_text("Live since", timeout=LIVE_TIMEOUT)
    await expect(row).to_contain_text(" sent", timeout=30_000)
    assert KEY in await platform.streams()
    await page.screenshot(path=ARTIFACTS / "admin-simulcast.png", full_page=True)

    await platform.kill()
    await expect(row).to_contain_text("Failing: ", timeout=60_000)
    await expect(row).to_contain_text("; retrying")
    await platform.start()
    await expect(row).to_contain_text("Live since", timeout=LIVE_TIMEOUT)

    await row.get_by_role("button", name="Disable").click()
    await expect(page.get_by_role("status")).to_have_text("YouTube disabled.")
    await expect(row).to_contain_text("Disabled")
    await row.get_by_role("button", name="Enable").click()
    await expect(row).to_contain_text("Live since", timeout=LIVE_TIMEOUT)

    # A platform gave a new key: typed into the row, the relay goes on with it.
    await row.get_by_role("button", name="New key").click()
    await page.get_by_label("New stream key for YouTube").fill("rotated-key-9999")
    await row.get_by_role("button", name="Save key").click()
    await expect(page.get_by_role("status")).to_have_text("New key saved for YouTube.")
    await expect(row).to_contain_text("****9999")

    async def under_the_new_key() -> bool:
        return "rotated-key-9999" in await platform.streams()

    await wait_until(under_the_new_key, LIVE_TIMEOUT / 1000, "the platform to get the new key")
    await expect(row).to_contain_text("Live since", timeout=LIVE_TIMEOUT)

    # At phone width the section fits.
    phone = await open_page(browser, f"{live_stack.http}/admin", phone=True)
    await sign_in(phone.page, live_stack.settings.admin_token)
    await phone.page.goto(f"{live_stack.http}/admin/channels/cast")
    await expect(phone.page.locator("#destinations li")).to_contain_text("Live since")
    width = await phone.page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390, f"the channel page scrolls sideways at phone width ({width} px)"
    await phone.page.locator("#destinations-heading").scroll_into_view_if_needed()
    await phone.page.screenshot(path=ARTIFACTS / "admin-simulcast-phone.png")

    await row.get_by_role("button", name="Delete").click()
    await expect(page.get_by_role("dialog")).to_contain_text("Delete the destination YouTube?")
    await page.get_by_role("button", name="Delete", exact=True).last.click()
    await expect(page.get_by_role("status")).to_have_text("Destination YouTube deleted.")
    await expect(page.locator("#destinations li")).to_have_count(0)
    for seen in (watched, phone):
        assert await seen.problems() == []
