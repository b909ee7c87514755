"""Bots: an admin makes a channel's bot token; with it `POST /api/channels/<slug>/messages` says
something in the room with role `bot` (live and in history); a wrong, another channel's or a
revoked token is refused, and so is bad text."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from server.channels.store import CHANNELS
from server.settings import Settings
from tests.chat.conftest import Chatter
from tests.conftest import ADMIN, Serve

Connect = Callable[..., Awaitable[Chatter]]


async def call(
    method: str, url: str, body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, json=body, headers=headers) as response,
    ):
        return response.status, await response.json(content_type=None)


async def test_a_bot_posts_in_its_channel_with_its_role(
    chat_settings: Settings, serve: Serve, connect: Connect
) -> None:
    server = await serve(chat_settings)
    await server.app[CHANNELS].create("show", "Show")
    await server.app[CHANNELS].create("other", "Other")
    admin = ADMIN["Authorization"].removeprefix("Bearer ")
    status, made = await call("POST", f"{server.url}/api/channels/show/bots", {"name": "Quiz Bot"})
    assert status == 401  # no admin token
    status, made = await call(
        "POST", f"{server.url}/api/channels/show/bots", {"name": "Quiz Bot"}, admin
    )
    assert status == 201 and made["name"] == "Quiz Bot" and len(made["token"]) > 20
    bot = made["token"]
    status, _ = await call(
        "POST", f"{server.url}/api/channels/show/tokens", {"role": "bot", "name": "x"}, admin
    )
    assert status == 400  # bots are made where their chat name is checked

    viewer = await connect(server.url, "10.0.0.1")
    assert (await viewer.call("join", {"channel": "show", "name": "Ann"}))["ok"]
    status, posted = await call(
        "POST", f"{server.url}/api/channels/show/messages", {"text": " Question 1: <b>?</b>"}, bot
    )
    assert status == 201, posted
    got = await viewer.wait_for("message", lambda m: m["id"] == posted["id"])
    assert got["text"] == "Question 1: <b>?</b>"
    assert got["user"] == {"id": f"b-{made['id']}", "name": "Quiz Bot", "role": "bot"}
    # a late joiner sees it in history, with its role
    late = await connect(server.url, "10.0.0.2")
    joined = await late.call("join", {"channel": "show"})
    assert [(m["text"], m["user"]["role"]) for m in joined["history"]] == [
        ("Question 1: <b>?</b>", "bot")
    ]

    # Refused: no token, a wrong one, an admin's, in another channel, bad text, revoked.
    url = f"{server.url}/api/channels/show/messages"
    assert (await call("POST", url, {"text": "hi"}))[0] == 401
    assert (await call("POST", url, {"text": "hi"}, "not-a-bot-token-" + "x" * 20))[0] == 401
    assert (await call("POST", url, {"text": "hi"}, admin))[0] == 401
    other = f"{server.url}/api/channels/other/messages"
    assert (await call("POST", other, {"text": "hi"}, bot))[0] == 403
    status, error = await call("POST", url, {"text": "   "}, bot)
    assert status == 400 and "empty" in error["error"]
    status, error = await call("POST", url, {"text": "x" * 501}, bot)
    assert status == 400 and "too long" in error["error"]
    status, _ = await call(
        "DELETE", f"{server.url}/api/channels/show/tokens/{made['id']}", None, admin
    )
    assert status == 204
    status, error = await call("POST", url, {"text": "still here?"}, bot)
    assert status == 401, error
    assert viewer.texts("show") == ["Question 1: <b>?</b>"]
    assert viewer.texts("other") == []


async def test_a_bot_has_its_own_rate_limit(
    chat_settings: Settings, serve: Serve, connect: Connect
) -> None:
    server = await serve(chat_settings.with_changes(chat_rate_messages=3))
    await server.app[CHANNELS].create("show", "Show")
    admin = ADMIN["Authorization"].removeprefix("Bearer ")
    _, made = await call("POST", f"{server.url}/api/channels/show/bots", {"name": "Ticker"}, admin)
    url = f"{server.url}/api/channels/show/messages"
    statuses = [
        (await call("POST", url, {"text": f"tick {i}"}, made["token"]))[0] for i in range(5)
    ]
    assert statuses == [201, 201, 201, 429, 429]
