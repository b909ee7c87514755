"""Browser fixtures: Debian's headless Chromium driven by Playwright, pages that record errors."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from server.channels.store import CHANNELS
from tests.conftest import LiveStack, wait_until

ROOT = Path(__file__).resolve().parents[2]
# The apt package `chromium` (./dev.sh test installs it); Playwright never downloads a browser.
CHROMIUM = Path(os.environ.get("ONAIR_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Screenshots and other artefacts of a run; README links committed copies in docs/screenshots.
ARTIFACTS = Path(os.environ.get("ONAIR_TEST_ARTIFACTS", ROOT / "build" / "test-artifacts"))
LADDER_TIMEOUT = 120.0  # the ladder runs slower than real time on 2 shared cores
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

# Runs in every page before its own scripts: counts CSP violations the page would hide.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI);
});
"""


@dataclass
class Watched:
    """A page plus the script errors and CSP violations it reported."""

    page: Page
    errors: list[str] = field(default_factory=list)

    async def problems(self) -> list[str]:
        """Uncaught script errors, CSP reports in the console and violation events."""
        violations = await self.page.evaluate("() => window.__cspViolations || []")
        return [*self.errors, *(f"csp: {v}" for v in violations)]


@pytest.fixture(scope="session")
def chromium() -> Path:
    """The system Chromium; its absence fails the browser tests (they are not optional)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `./dev.sh test` installs the apt package chromium")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    """A fresh headless Chromium (a new temporary profile each launch)."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_FLAGS, headless=True
        )
        yield launched
        await launched.close()


async def open_page(
    browser: Browser,
    url: str,
    *,
    phone: bool = False,
    prepare: Callable[[BrowserContext], Awaitable[None]] | None = None,
) -> Watched:
    """A page in its own context (own storage, like another person), recording its errors."""
    context: BrowserContext = await browser.new_context(
        viewport=PHONE if phone else DESKTOP,
        is_mobile=phone,
        has_touch=phone,
        device_scale_factor=2 if phone else 1,
    )
    await context.add_init_script(RECORD_VIOLATIONS)
    if prepare is not None:
        await prepare(context)
    page = await context.new_page()
    watched = Watched(page)
    page.on("pageerror", lambda err: watched.errors.append(f"pageerror: {err}"))
    page.on(
        "console",
        lambda msg: (
            watched.errors.append(f"console: {msg.text}")
            if msg.type == "error" and "Content Security Policy" in msg.text
            else None
        ),
    )
    response = await page.goto(url)
    assert response is not None and response.ok, url
    return watched


async def new_channel(stack: LiveStack, slug: str, title: str | None = None) -> str:
    """Create a channel in the stack's database; returns its stream key."""
    _, key = await stack.app[CHANNELS].create(slug, title or slug.title())
    return key


async def wait_h264_rung(stack: LiveStack, slug: str) -> str:
    """Wait for a master playlist with an HEVC and a playable H.264 variant; returns the master."""
    master = ""

    async def ready() -> bool:
        nonlocal master
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{stack.http}/hls/{slug}/master.m3u8") as response:
                if response.status != 200:
                    return False
                master = await response.text()
            found = re.search(r"CODECS=\"avc1[^\"]*\"[^\n]*\n([^\n]+)", master)
            if found is None or "hvc1" not in master:
                return False
            async with session.get(f"{stack.http}/hls/{slug}/{found.group(1)}") as response:
                return response.status == 200 and "#EXTINF" in await response.text()

    await wait_until(ready, LADDER_TIMEOUT, f"an H.264 rung with segments for {slug}")
    return master
