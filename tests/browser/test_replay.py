"""A past broadcast replays with its chat in step: each message appears when the video reaches
the moment it was sent (by the recording's clock), seeking shows exactly the messages up to
there, and messages from before or after the broadcast never appear."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import Browser, Page, expect

from server.channels.store import CHANNELS
from server.db import DB
from server.recordings.service import RECORDINGS
from server.recordings.store import new_id
from tests.browser.conftest import ARTIFACTS, open_page
from tests.browser.test_watch_live import wait_playing
from tests.conftest import LiveStack
from tests.recordings.conftest import make_part
from transcoder.recordings import media

pytestmark = [pytest.mark.media, pytest.mark.slow]

# The recording's first frame was ingested at START; it restarted (a second part) 60 s later.
START = datetime(2026, 12, 7, 20, 0, 0, tzinfo=UTC)
SAID = [  # (seconds after START on the wall, text); the second part begins at media 8 s
    (-30.0, "before the show"),
    (2.0, "first!"),
    (5.0, "hello from Seoul"),
    (61.0, "back again"),  # media 8 + 1 = 9 s: in the second part
    (200.0, "after the show"),
]
SHOWN = {"first!": 2.0, "hello from Seoul": 5.0, "back again": 9.0}

STATE = """() => ({
  time: document.getElementById("player").currentTime,
  texts: [...document.querySelectorAll("#replay-messages .text")].map((e) => e.textContent),
})"""


async def start_replay(page: Page) -> None:
    """Press "Play the broadcast" when the page could not start with sound by itself (no
    gesture on it yet); a page the viewer reached by a click may start on its own."""
    await page.wait_for_function(
        "() => !document.getElementById('player').paused"
        " || !document.getElementById('start-replay').hidden",
        timeout=60_000,
    )
    button = page.get_by_role("button", name="Play the broadcast", exact=True)
    if await button.is_visible():
        await button.click()


async def seek(page: Page, seconds: float) -> None:
    await page.evaluate(
        "(t) => { const v = document.getElementById('player'); v.pause(); v.currentTime = t; }",
        seconds,
    )


async def test_a_recording_replays_its_chat_in_sync(
    live_stack: LiveStack, browser: Browser
) -> None:
    app = live_stack.app
    recordings = app[RECORDINGS]
    await recordings.recovered.wait()
    await app[CHANNELS].create("past", "Past Broadcasts")
    rid = new_id()
    folder = recordings.directory("past", rid)
    folder.mkdir(parents=True)
    await make_part(folder / "part-0001.ts", 12, size="640x360")
    info = await media.finalize(folder, recordings.tools, "test")
    clock = [[0, START.timestamp()], [8, START.timestamp() + 60]]
    await app[DB].execute(
        "INSERT INTO recordings (id, channel, state, host, started_at, ended_at, duration_s,"
        " bytes, codec, clock) VALUES ($1, 'past', 'ready', $2, $3, $4, $5, $6, 'h264', $7)",
        rid, recordings.node, START - timedelta(seconds=2), START + timedelta(seconds=80),
        info.duration_s, info.bytes, json.dumps(clock),
    )  # fmt: skip
    for offset, text in SAID:
        sent = START + timedelta(seconds=offset)
        ms = int(sent.timestamp() * 1000)
        await app[DB].execute(
            "INSERT INTO chat_messages (id, channel, user_id, user_name, user_role, ip_hash,"
            " body, created_at) VALUES ($1, 'past', 'g-1', 'Ann', 'viewer', 'x', $2, $3)",
            f"{ms:012x}{secrets.token_hex(8)}", text, sent,
        )  # fmt: skip

    watched = await open_page(browser, f"{live_stack.http}/watch/past/recordings/{rid}")
    page = watched.page
    status = page.locator("#replay-status")
    await expect(status).to_have_text("3 messages appear as the video reaches them.")
    await expect(page.locator("#replay-messages li")).to_have_count(0)  # nothing played yet
    # a replay has sound, so it waits for its viewer to start it
    await page.get_by_role("button", name="Play the broadcast", exact=True).click()
    await wait_playing(page, 60_000)

    # While it plays, exactly the messages sent up to the current moment are shown.
    async def consistent() -> bool:
        state = await page.evaluate(STATE)
        # a busy page may run its update a little late, never early
        due = [t for t, at in SHOWN.items() if at <= state["time"] - 2.0]
        assert set(state["texts"]) >= set(due), state
        assert all(SHOWN[t] <= state["time"] + 0.3 for t in state["texts"]), state
        return "first!" in state["texts"]

    while not await consistent():
        await page.wait_for_timeout(100)

    # Seeking moves the chat: forward past the restart, then back before the first message.
    await seek(page, 9.5)
    await expect(page.locator("#replay-messages .text")).to_have_text(
        ["first!", "hello from Seoul", "back again"]
    )
    await expect(page.locator("#replay-messages time").nth(2)).to_have_text("0:09")
    await page.screenshot(path=str(ARTIFACTS / "replay.png"))
    await seek(page, 3.0)
    await expect(page.locator("#replay-messages .text")).to_have_text(["first!"])
    await seek(page, 0.5)
    await expect(page.locator("#replay-messages .text")).to_have_count(0)
    assert await watched.problems() == []

    # A broadcast that is not there, or not this channel's, is a plain 404 page.
    missing = await page.goto(f"{live_stack.http}/watch/other/recordings/{rid}")
    assert missing is not None and missing.status == 404
    await expect(page.get_by_role("heading", name="No such broadcast")).to_be_visible()
