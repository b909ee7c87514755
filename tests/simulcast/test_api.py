"""The destinations API: what a streamer types is checked, keys go out masked, each channel
sees only its own."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from server.app import create_app
from server.channels import tokens
from server.channels.store import CHANNELS
from server.db import DB
from server.settings import Settings
from tests.conftest import ADMIN
from tests.server.test_admin_sessions import sign_in

KEY = "abcd-efgh-ijkl-mnop-qrst"
YOUTUBE = {"name": "YouTube", "server": "rtmp://a.rtmp.youtube.com/live2", "key": KEY}


async def post(client: TestClient, slug: str, body: Any, **headers: str) -> tuple[int, Any]:
    response = await client.post(
        f"/api/channels/{slug}/destinations", json=body, headers=headers or ADMIN
    )
    return response.status, await response.json()


async def test_destinations_are_added_listed_edited_and_deleted_with_the_key_masked(
    client: TestClient,
) -> None:
    await client.app[CHANNELS].create("show", "Show")
    status, made = await post(client, "show", YOUTUBE)
    assert status == 201, made
    assert made["key"] == "****qrst" and made["enabled"] is True and made["state"] == "idle"
    assert made["server"] == YOUTUBE["server"] and made["last_error"] is None
    sealed = await client.app[DB].fetchval("SELECT key_sealed FROM destinations")
    assert KEY.encode() not in sealed

    twitch = {"name": "Twitch", "server": "rtmps://live.twitch.tv:443/app", "key": "live_1_x"}
    status, second = await post(client, "show", twitch | {"enabled": False})
    assert status == 201 and second["enabled"] is False
    status, again = await post(client, "show", YOUTUBE)
    assert status == 409 and "YouTube" in again["error"]

    listed = await (await client.get("/api/channels/show/destinations", headers=ADMIN)).json()
    assert [d["name"] for d in listed] == ["YouTube", "Twitch"]
    assert KEY not in str(listed)

    response = await client.patch(
        f"/api/destinations/{made['id']}", json={"key": "new-key-9876", "enabled": False},
        headers=ADMIN,
    )  # fmt: skip
    changed = await response.json()
    assert response.status == 200 and changed["key"] == "****9876" and changed["enabled"] is False
    for body, says in (
        ({}, "send name, server, key and/or enabled"),
        ({"colour": "red"}, "unknown fields: colour"),
        ({"enabled": "yes"}, "enabled must be true or false"),
        ({"name": "Twitch"}, "already has a destination named 'Twitch'"),
        ({"server": "ftp://x/y"}, "rtmp:// or rtmps://"),
    ):
        response = await client.patch(f"/api/destinations/{made['id']}", json=body, headers=ADMIN)
        assert response.status in (400, 409) and says in (await response.json())["error"], body

    assert (await client.delete(f"/api/destinations/{made['id']}", headers=ADMIN)).status == 204
    assert (await client.delete(f"/api/destinations/{made['id']}", headers=ADMIN)).status == 404
    assert (await client.patch("/api/destinations/x1", json={}, headers=ADMIN)).status == 404
    listed = await (await client.get("/api/channels/show/destinations", headers=ADMIN)).json()
    assert [d["name"] for d in listed] == ["Twitch"]


async def test_a_channel_has_at_most_ten_destinations(client: TestClient) -> None:
    await client.app[CHANNELS].create("busy", "Busy")
    for n in range(10):
        status, _ = await post(client, "busy", YOUTUBE | {"name": f"Platform {n}"})
        assert status == 201
    status, refused = await post(client, "busy", YOUTUBE | {"name": "One too many"})
    assert status == 409 and "at most 10 destinations" in refused["error"]


async def test_bad_destinations_get_a_400_naming_the_problem(client: TestClient) -> None:
    await client.app[CHANNELS].create("show", "Show")
    for body, says in (
        ({"server": YOUTUBE["server"], "key": KEY}, "name is required"),
        ({"name": "Y", "key": KEY}, "server is required"),
        ({"name": "Y", "server": YOUTUBE["server"]}, "key is required"),
        (YOUTUBE | {"server": "https://youtube.com/live2"}, "rtmp:// or rtmps://"),
        (YOUTUBE | {"server": "rtmp://a.rtmp.youtube.com"}, "application path"),
        (YOUTUBE | {"server": "rtmp://" + "a" * 600 + "/x"}, "at most 512"),
        (YOUTUBE | {"key": "two words"}, "without spaces"),
        (YOUTUBE | {"name": ""}, "name must be a non-empty string"),
        (YOUTUBE | {"enabled": 1}, "enabled must be true or false"),
    ):
        status, refused = await post(client, "show", body)
        assert status == 400 and says in refused["error"], (body, refused)
    status, _ = await post(client, "nobody-here", YOUTUBE)
    assert status == 404
    assert (await client.get("/api/channels/show/destinations")).status == 401


async def test_private_and_loopback_servers_are_refused_unless_the_operator_allows_them(
    settings: Settings, aiohttp_client
) -> None:  # type: ignore[no-untyped-def]
    client = await aiohttp_client(create_app(settings.with_changes(relay_allow_private=False)))
    await client.app[CHANNELS].create("show", "Show")
    for server in (
        "rtmp://127.0.0.1:1935/live",
        "rtmp://localhost/live",
        "rtmp://10.1.2.3/live",
        "rtmps://169.254.169.254/latest",  # a cloud's metadata service
        "rtmp://[::1]/live",
    ):
        status, refused = await post(client, "show", YOUTUBE | {"server": server})
        assert status == 400 and "ONAIR_RELAY_ALLOW_PRIVATE" in refused["error"], server
    status, made = await post(client, "show", YOUTUBE | {"server": "rtmp://93.184.215.14/live"})
    assert status == 201, made


async def test_a_streamer_manages_only_their_own_channels_destinations(
    client: TestClient,
) -> None:
    await client.app[CHANNELS].create("mine", "Mine")
    await client.app[CHANNELS].create("theirs", "Theirs")
    _, theirs = await post(client, "theirs", YOUTUBE)
    _, login = await tokens.create(client.app[DB], "mine", "streamer", "Me")
    csrf = await sign_in(client, login)
    as_streamer = {"X-CSRF-Token": csrf}

    status, mine = await post(client, "mine", YOUTUBE, **as_streamer)
    assert status == 201, mine
    status, _ = await post(client, "theirs", YOUTUBE | {"name": "Mine too"}, **as_streamer)
    assert status == 403
    assert (await client.get("/api/channels/theirs/destinations")).status == 403
    url = f"/api/destinations/{theirs['id']}"
    assert (await client.patch(url, json={"enabled": False}, headers=as_streamer)).status == 403
    assert (await client.delete(url, headers=as_streamer)).status == 403
    own = f"/api/destinations/{mine['id']}"
    assert (await client.patch(own, json={"enabled": False}, headers=as_streamer)).status == 200
    # Without the CSRF header the session changes nothing.
    assert (await client.delete(own)).status in (401, 403)
    assert (await client.delete(own, headers=as_streamer)).status == 204
