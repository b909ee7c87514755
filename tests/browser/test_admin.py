"""The admin dashboard in Chromium against a real stack and a real FFmpeg publisher."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest
from playwright.async_api import Browser, Page, expect

from server.db import DB
from server.recordings.service import RECORDINGS
from server.recordings.store import new_id
from tests.browser.conftest import ARTIFACTS, LADDER_TIMEOUT, Watched, new_channel, open_page
from tests.browser.test_chat_page import joined, pick_name, say
from tests.conftest import LiveStack, Publisher, get_json
from tests.recordings.conftest import make_part
from transcoder.recordings import media

pytestmark = [pytest.mark.media]

LIVE_TIMEOUT = 60_000  # ms: nginx-rtmp's publish hook, then the list's next refresh
# Rotating the key drops the publisher at nginx-rtmp's next update hook (every 10 s) or so.
DROP_TIMEOUT = 30.0
TIMES = "\N{MULTIPLICATION SIGN}"  # how the page writes sizes and speeds
A_KEY = re.compile(r"\S{20,}")  # what any stream key the page shows looks like


async def sign_in(page: Page, token: str) -> None:
    """Type a token and press Sign in, as an operator does."""
    await page.get_by_label("Token", exact=True).fill(token)
    await page.get_by_role("button", name="Sign in").click()


async def signed_in(browser: Browser, stack: LiveStack, phone: bool = False) -> Watched:
    """The channels page after signing in with the admin token."""
    watched = await open_page(browser, f"{stack.http}/admin", phone=phone)
    await sign_in(watched.page, stack.settings.admin_token)
    await expect(watched.page.get_by_role("heading", name="Channels", exact=True)).to_be_visible()
    return watched


async def create(page: Page, slug: str, title: str) -> str:
    """Create a channel through the form; returns the stream key the page shows once."""
    await page.get_by_label("Slug", exact=True).fill(slug)
    await page.get_by_label("Title", exact=True).fill(title)
    await page.get_by_role("button", name="Create", exact=True).click()
    key = page.get_by_label("Stream key", exact=True)
    await expect(key).to_have_text(A_KEY)
    return (await key.text_content() or "").strip()


async def tus_create(stack: LiveStack, slug: str, token: str) -> int:
    """The status of a tus upload creation with this bearer token."""
    headers = {"Tus-Resumable": "1.0.0", "Upload-Length": "10", "Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{stack.http}/api/channels/{slug}/uploads", headers=headers) as response,
    ):
        return response.status


async def exited(publisher: Publisher, timeout: float) -> bool:
    """True when the publishing FFmpeg has ended within timeout (nginx dropped it)."""
    try:
        await asyncio.wait_for(publisher.process.wait(), timeout)
    except TimeoutError:
        return False
    return True


async def expect_live_panel(page: Page) -> None:
    """The channel page's live panel with a publisher: source, every rung's speed, the charts."""
    await expect(page.locator("#live-badge")).to_have_text("Live", timeout=LIVE_TIMEOUT)
    await expect(page.locator("#live-source")).to_contain_text("H264")
    await expect(page.locator("#live-source")).to_contain_text(f"640{TIMES}360 at 30 fps")
    speeds = page.locator('#live-rungs td[data-label="Speed"]')
    await expect(speeds.first).to_be_visible(timeout=LADDER_TIMEOUT * 1000)
    await expect(speeds.filter(has_text="…")).to_have_count(0, timeout=LADDER_TIMEOUT * 1000)
    rate = re.compile(r"[1-9][\d.]* (kbit|Mbit)/s \(video")
    await expect(page.locator("#live-input")).to_have_text(rate, timeout=LADDER_TIMEOUT * 1000)
    for speed in await speeds.all_text_contents():
        assert re.fullmatch(rf"\d+\.\d\d{TIMES}", speed), speed
    viewers = await page.locator("#viewers-chart").get_attribute("aria-label")
    assert viewers is not None and re.fullmatch(
        r"Viewers over the last hour: peak \d+, now \d+", viewers
    )


async def test_operator_signs_in_creates_goes_live_rotates_and_deletes(
    live_stack: LiveStack, browser: Browser, publish
) -> None:  # type: ignore[no-untyped-def]
    watched = await open_page(browser, f"{live_stack.http}/admin")
    page = watched.page
    await page.screenshot(path=ARTIFACTS / "admin-sign-in.png")
    await sign_in(page, "not-the-admin-token-at-all")
    await expect(page.get_by_role("alert")).to_have_text("That token is not valid.")
    await sign_in(page, live_stack.settings.admin_token)
    await expect(page.get_by_role("heading", name="Channels", exact=True)).to_be_visible()

    key = await create(page, "show", "The Show")
    server = (await page.get_by_label("Server", exact=True).text_content() or "").strip()
    assert server == f"rtmp://127.0.0.1:{live_stack.settings.rtmp_port}/live"
    row = page.locator('tr[data-slug="show"]')
    await expect(row.get_by_label("Title of show")).to_have_value("The Show")

    publisher = await publish(f"{server}/{key}")
    await expect(row.locator(".badge")).to_have_text("Live", timeout=LIVE_TIMEOUT)
    await expect(row.locator("td").nth(3)).not_to_be_empty()  # uptime
    await page.screenshot(path=ARTIFACTS / "admin-channels.png", full_page=True)

    await row.get_by_role("link", name="Manage show").click()
    viewer = await joined(await open_page(browser, f"{live_stack.http}/watch/show"))
    await pick_name(viewer, "fan")
    await say(viewer, "hello from the audience")
    await expect_live_panel(page)
    await expect(page.locator("#live-viewers")).to_have_text("1", timeout=LIVE_TIMEOUT)
    await expect(page.locator("#viewers-chart-peak")).to_have_text(re.compile(r"^peak 1, now "))
    await expect(page.locator("#chat-chart-peak")).to_have_text(re.compile(r"^peak 1, now "))
    await page.screenshot(path=ARTIFACTS / "admin-channel-live.png", full_page=True)
    phone = await signed_in(browser, live_stack, phone=True)
    await phone.page.goto(f"{live_stack.http}/admin/channels/show")
    await expect_live_panel(phone.page)
    width = await phone.page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390, f"the channel page scrolls sideways at phone width ({width} px)"
    await phone.page.screenshot(path=ARTIFACTS / "admin-channel-phone.png", full_page=True)
    assert await phone.problems() == []

    # The key is shown once: neither the channel page nor a reload brings it back.
    await page.goto(f"{live_stack.http}/admin")
    await expect(page.get_by_label("Stream key", exact=True)).to_be_hidden()
    assert key not in await page.content()
    row = page.locator('tr[data-slug="show"]')

    await row.get_by_role("button", name="Rotate key").click()
    new_key = page.get_by_label("Stream key", exact=True)
    await expect(new_key).to_have_text(A_KEY)
    assert (await new_key.text_content() or "").strip() != key
    assert await exited(publisher, DROP_TIMEOUT), "the old key's publisher kept streaming"
    await expect(row.locator(".badge")).to_have_text("Offline", timeout=LIVE_TIMEOUT)

    title = row.get_by_label("Title of show")
    await title.fill("Late show")
    await row.get_by_role("button", name="Save title").click()
    await expect(page.get_by_role("status")).to_have_text("Title of show saved.")
    assert (await get_json(f"{live_stack.http}/api/channels/show"))[1]["title"] == "Late show"

    await row.get_by_role("button", name="Disable").click()
    await expect(row.locator(".badge")).to_have_text("Disabled")
    assert (await get_json(f"{live_stack.http}/api/channels/show"))[1]["disabled"] is True
    await row.get_by_role("button", name="Enable").click()
    await expect(row.locator(".badge")).to_have_text("Offline")

    # Delete asks first; Cancel keeps the channel.
    await row.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("Delete channel show?")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(page.get_by_role("status")).to_have_text("Nothing deleted.")
    assert (await get_json(f"{live_stack.http}/api/channels/show"))[0] == 200
    await row.get_by_role("button", name="Delete").click()
    await dialog.get_by_role("button", name="Delete channel").click()
    await expect(page.locator('tr[data-slug="show"]')).to_have_count(0)
    assert (await get_json(f"{live_stack.http}/api/channels/show"))[0] == 404

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("Token", exact=True)).to_be_visible()
    assert await watched.problems() == []


async def test_channels_page_at_phone_width_by_keyboard(
    live_stack: LiveStack, browser: Browser
) -> None:
    watched = await open_page(browser, f"{live_stack.http}/admin", phone=True)
    page = watched.page
    await page.screenshot(path=ARTIFACTS / "admin-sign-in-phone.png")
    # Keyboard only: the token field has focus on arrival; Enter signs in.
    await expect(page.get_by_label("Token", exact=True)).to_be_focused()
    await page.keyboard.type(live_stack.settings.admin_token)
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Channels", exact=True)).to_be_visible()
    # Keyboard only: focus the Slug field, type, Tab to Title, Enter submits the form.
    await page.get_by_label("Slug", exact=True).focus()
    await page.keyboard.type("phone-show")
    await page.keyboard.press("Tab")
    await page.keyboard.type("On the phone")
    await page.keyboard.press("Enter")
    await expect(page.get_by_label("Stream key", exact=True)).to_have_text(A_KEY)
    await expect(page.locator('tr[data-slug="phone-show"]')).to_be_visible()
    width = await page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways at phone width ({width} px)"
    await page.screenshot(path=ARTIFACTS / "admin-channels-phone.png", full_page=True)
    assert await watched.problems() == []


async def test_moderators_and_bans_through_the_channel_page_act_on_a_live_chat(
    live_stack: LiveStack, browser: Browser
) -> None:
    await new_channel(live_stack, "talk", "Talk")
    admin = await signed_in(browser, live_stack)
    page = admin.page
    await page.locator('tr[data-slug="talk"]').get_by_role("link", name="Manage talk").click()
    await expect(page.get_by_role("heading", name="Talk", exact=True)).to_be_visible()

    # the embed code for other sites, ready to copy
    embed = page.get_by_label("Embed", exact=True)
    await expect(embed).to_contain_text(f'src="{live_stack.http}/embed/talk?chat=1"')
    await page.get_by_label("Name", exact=True).fill("mod")
    await page.get_by_role("button", name="Add moderator").click()
    link = page.get_by_label("Moderator link", exact=True)
    await expect(link).to_have_text(re.compile(r"/watch/talk#token=\S{20,}$"))
    moderator_url = (await link.text_content() or "").strip()
    moderators = page.locator("#tokens li")
    await expect(moderators).to_have_count(1)
    await expect(moderators.first).to_contain_text("mod")

    # The link makes a moderator on the watch page; they ban a viewer.
    moderator = await open_page(browser, moderator_url)
    viewer = await open_page(browser, f"{live_stack.http}/watch/talk")
    mod_page, viewer_page = await joined(moderator), await joined(viewer)
    await expect(mod_page.locator("#mod-tools")).to_be_visible()
    await pick_name(viewer_page, "troll")
    await say(viewer_page, "first words")
    line = mod_page.locator("#messages li", has_text="first words")
    await line.get_by_role("button", name="Ban troll").click()
    await expect(mod_page.locator("#chat-status")).to_have_text("troll is banned.")
    await say(viewer_page, "still here?")
    await expect(viewer_page.locator("#chat-status")).to_have_text("You are banned from this chat.")

    # Unban on the channel page: the viewer may talk again at once.
    bans = page.locator("#bans li")
    await expect(bans).to_have_count(1, timeout=15_000)  # the page refreshes every 5 s
    await expect(bans.first).to_contain_text("troll")
    await page.screenshot(path=ARTIFACTS / "admin-channel.png", full_page=True)
    await bans.first.get_by_role("button", name="Unban").click()
    await expect(page.get_by_role("status")).to_have_text("troll may chat again.")
    await expect(bans).to_have_count(0)
    # A banned page stops offering the box; coming back (a reload) they may talk again.
    await viewer_page.reload()
    await joined(viewer)
    await say(viewer_page, "back again")
    back = mod_page.locator("#messages li", has_text="back again")
    await expect(back.locator(".who")).to_have_text("troll")  # the same name, unbanned

    # Revoke: the moderator's next action is refused.
    await moderators.first.get_by_role("button", name="Revoke").click()
    await expect(moderators).to_have_count(0)
    await back.get_by_role("button", name="Delete message from troll").click()
    await expect(mod_page.locator("#chat-status")).to_have_text("Only moderators can do that.")
    await expect(viewer_page.locator("#messages li", has_text="back again")).to_have_count(1)

    # Other roles are listed and revoked in the same place: an upload token, shown once.
    await page.get_by_role("button", name="New upload token").click()
    secret = page.get_by_label("New token", exact=True)
    await expect(secret).to_have_text(A_KEY)
    await expect(moderators).to_have_count(1)
    await expect(moderators.first).to_contain_text("upload token")
    upload = await tus_create(live_stack, "talk", (await secret.text_content() or "").strip())
    assert upload == 201

    # A bot, named in the same field: its token, shown once, posts in the viewer's chat as a bot.
    await page.get_by_label("Name", exact=True).fill("Quiz Bot")
    await page.get_by_role("button", name="Add bot").click()
    await expect(page.locator("#new-token-use")).to_contain_text("/api/channels/talk/messages")
    await expect(moderators).to_have_count(2)
    await expect(moderators.nth(1)).to_contain_text("Quiz Bot")
    bot = (await secret.text_content() or "").strip()
    async with aiohttp.ClientSession() as http:
        said = await http.post(
            f"{live_stack.http}/api/channels/talk/messages",
            json={"text": "Question one!"},
            headers={"Authorization": f"Bearer {bot}"},
        )
        assert said.status == 201, await said.text()
    line = viewer_page.locator("#messages li", has_text="Question one!")
    await expect(line.locator(".bot-tag")).to_have_text("bot")
    await expect(line.locator(".who")).to_have_text("Quiz Bot")
    for watched in (admin, moderator, viewer):
        assert await watched.problems() == []


async def test_channel_page_lists_a_recording_and_deletes_it_after_asking(
    live_stack: LiveStack, browser: Browser
) -> None:
    app = live_stack.app
    recordings = app[RECORDINGS]
    await recordings.recovered.wait()
    await new_channel(live_stack, "archive", "Archive")
    rid = new_id()
    folder = recordings.directory("archive", rid)
    folder.mkdir(parents=True)
    await make_part(folder / "part-0001.ts", 4)
    made = await media.finalize(folder, recordings.tools, "test")
    await app[DB].execute(
        "INSERT INTO recordings (id, channel, state, host, started_at, duration_s, bytes) "
        "VALUES ($1, 'archive', 'ready', $2, now(), $3, $4)",
        rid, recordings.node, made.duration_s, made.bytes,
    )  # fmt: skip

    admin = await signed_in(browser, live_stack)
    page = admin.page
    await page.goto(f"{live_stack.http}/admin/channels/archive")
    item = page.locator(f'#recordings li[data-id="{rid}"]')
    await expect(item).to_contain_text("ready")
    await expect(item).to_contain_text(re.compile(r"\d+ (kB|MB)"))
    await expect(item.get_by_role("link", name="MP4")).to_have_attribute(
        "href", re.compile(rf"^/vod/archive/{rid}/")
    )
    await item.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("Delete the recording of")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(item).to_have_count(1)
    await item.get_by_role("button", name="Delete").click()
    await dialog.get_by_role("button", name="Delete", exact=True).click()
    await expect(page.get_by_role("status")).to_have_text("Recording deleted.")
    await expect(item).to_have_count(0)
    assert not folder.exists()
    assert (await get_json(f"{live_stack.http}/api/channels/archive/recordings"))[1] == []
    assert await admin.problems() == []


async def test_channel_page_needs_a_session(live_stack: LiveStack, browser: Browser) -> None:
    await new_channel(live_stack, "private")
    watched = await open_page(browser, f"{live_stack.http}/admin/channels/private")
    await expect(watched.page.get_by_label("Token", exact=True)).to_be_visible()
    assert watched.page.url == f"{live_stack.http}/admin"


async def test_a_streamer_signs_in_to_their_own_channel_only(
    live_stack: LiveStack, browser: Browser
) -> None:
    await new_channel(live_stack, "sam", "Sam's show")
    await new_channel(live_stack, "rival", "Rival")
    admin = await signed_in(browser, live_stack)
    page = admin.page
    await page.goto(f"{live_stack.http}/admin/channels/sam")
    await page.get_by_role("button", name="New streamer login").click()
    login = page.get_by_label("New token", exact=True)
    await expect(login).to_have_text(A_KEY)
    await expect(page.locator("#tokens li").first).to_contain_text("streamer login")
    secret = (await login.text_content() or "").strip()

    streamer = await open_page(browser, f"{live_stack.http}/admin")
    mine = streamer.page
    await sign_in(mine, secret)
    await expect(mine.get_by_role("heading", name="Sam's show", exact=True)).to_be_visible()
    assert mine.url == f"{live_stack.http}/admin/channels/sam"
    await expect(mine.get_by_role("link", name="Channels")).to_have_count(0)
    await expect(mine.get_by_role("button", name="New streamer login")).to_have_count(0)
    own_login = mine.locator("#tokens li", has_text="streamer login")
    await expect(own_login).to_have_count(1)
    await expect(own_login.get_by_role("button", name="Revoke")).to_have_count(0)
    await mine.get_by_role("button", name="Rotate key").click()
    await expect(mine.get_by_label("Stream key", exact=True)).to_have_text(A_KEY)
    await mine.screenshot(path=ARTIFACTS / "admin-streamer.png", full_page=True)

    await mine.goto(f"{live_stack.http}/admin/channels/rival")
    assert mine.url == f"{live_stack.http}/admin/channels/sam"
    await mine.goto(f"{live_stack.http}/admin")
    assert mine.url == f"{live_stack.http}/admin/channels/sam"
    await mine.get_by_role("button", name="Sign out").click()
    await expect(mine.get_by_label("Token", exact=True)).to_be_visible()
    for watched in (admin, streamer):
        assert await watched.problems() == []
