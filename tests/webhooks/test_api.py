"""The webhooks API: admin only, what an admin sends is checked, the secret is shown once,
receivers on private addresses are refused unless the operator allows them."""

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

HOOK = {"url": "http://127.0.0.1:9/hook", "events": ["stream.started"]}


async def post(client: TestClient, body: Any, **headers: str) -> tuple[int, Any]:
    response = await client.post("/api/webhooks", json=body, headers=headers or ADMIN)
    return response.status, await response.json()


async def test_webhooks_are_added_listed_and_deleted_and_the_secret_is_shown_once(
    client: TestClient,
) -> None:
    await client.app[CHANNELS].create("show", "Show")
    status, made = await post(client, HOOK | {"events": ["chat.message", "stream.started"]})
    assert status == 201, made
    assert made["secret"].startswith("whsec_") and len(made["secret"]) > 40
    # Events come back in the documented order, whatever order they were sent in.
    assert made["events"] == ["stream.started", "chat.message"] and made["channels"] is None
    sealed = await client.app[DB].fetchval("SELECT secret_sealed FROM webhooks")
    assert made["secret"].encode() not in sealed

    status, limited = await post(client, HOOK | {"channels": ["show", "show"]})
    assert status == 201 and limited["channels"] == ["show"]

    listed = await (await client.get("/api/webhooks", headers=ADMIN)).json()
    assert [w["id"] for w in listed] == [made["id"], limited["id"]]
    assert "secret" not in str(listed) and made["secret"] not in str(listed)

    log = await client.get(f"/api/webhooks/{made['id']}/deliveries", headers=ADMIN)
    assert log.status == 200 and await log.json() == []
    assert (await client.delete(f"/api/webhooks/{made['id']}", headers=ADMIN)).status == 204
    assert (await client.delete(f"/api/webhooks/{made['id']}", headers=ADMIN)).status == 404
    log = await client.get(f"/api/webhooks/{made['id']}/deliveries", headers=ADMIN)
    assert log.status == 404
    listed = await (await client.get("/api/webhooks", headers=ADMIN)).json()
    assert [w["id"] for w in listed] == [limited["id"]]


async def test_bad_webhooks_get_a_400_naming_the_problem(client: TestClient) -> None:
    for body, says in (
        ({"events": ["stream.started"]}, "url is required"),
        ({"url": HOOK["url"]}, "events is required"),
        (HOOK | {"colour": "red"}, "unknown fields: colour"),
        (HOOK | {"url": "ftp://example.com/x"}, "http:// or https://"),
        (HOOK | {"url": "http://user:pw@example.com/x"}, "user name or password"),
        (HOOK | {"url": "http:///x"}, "no host name"),
        (HOOK | {"url": "http://example.com/" + "a" * 2000}, "at most 2000"),
        (HOOK | {"events": []}, "events must be a non-empty list"),
        (HOOK | {"events": ["stream.exploded"]}, "unknown events: stream.exploded"),
        (HOOK | {"channels": []}, "channels must be left out"),
        (HOOK | {"channels": ["../etc"]}, "channels must be left out"),
    ):
        status, refused = await post(client, body)
        assert status == 400 and says in refused["error"], (body, refused)
    status, refused = await post(client, HOOK | {"channels": ["nobody-here"]})
    assert status == 404 and "nobody-here" in refused["error"]
    response = await client.post("/api/webhooks", data=b"[1]", headers=ADMIN)
    assert response.status == 400
    for method, path in (
        ("DELETE", "/api/webhooks/x1"),
        ("GET", "/api/webhooks/1" + "0" * 18 + "/deliveries"),
        ("POST", "/api/webhooks/1/deliveries/x/redeliver"),
        ("POST", "/api/webhooks/1/deliveries/2/redeliver"),
    ):
        response = await client.request(method, path, headers=ADMIN)
        assert response.status == 404, (method, path)


async def test_receivers_on_private_loopback_or_link_local_addresses_are_refused(
    settings: Settings, aiohttp_client
) -> None:  # type: ignore[no-untyped-def]
    client = await aiohttp_client(create_app(settings.with_changes(webhook_allow_private=False)))
    for url in (
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "https://10.1.2.3/hook",
        "http://192.168.1.20/hook",
        "http://169.254.169.254/latest/meta-data",  # a cloud's metadata service
        "http://[::1]/hook",
        "http://[fe80::1]/hook",
    ):
        status, refused = await post(client, HOOK | {"url": url})
        assert status == 400 and "ONAIR_WEBHOOK_ALLOW_PRIVATE" in refused["error"], url
        assert "private, loopback or link-local" in refused["error"]
    status, made = await post(client, HOOK | {"url": "https://93.184.215.14/hook"})
    assert status == 201, made


async def test_only_an_admin_manages_webhooks(client: TestClient) -> None:
    status, made = await post(client, HOOK)
    assert status == 201
    one = f"/api/webhooks/{made['id']}"
    calls = [
        ("POST", "/api/webhooks"),
        ("GET", "/api/webhooks"),
        ("DELETE", one),
        ("GET", one + "/deliveries"),
        ("POST", one + "/deliveries/1/redeliver"),
    ]
    wrong = {"Authorization": "Bearer not-the-admin-token-at-all"}
    for method, path in calls:
        for headers in ({}, wrong):
            response = await client.request(method, path, json=HOOK, headers=headers)
            assert response.status == 401, (method, path, headers)
            assert "admin token required" in (await response.json())["error"]

    await client.app[CHANNELS].create("mine", "Mine")
    _, login = await tokens.create(client.app[DB], "mine", "streamer", "Me")
    csrf = await sign_in(client, login)
    for method, path in calls:
        response = await client.request(method, path, json=HOOK, headers={"X-CSRF-Token": csrf})
        assert response.status == 403, (method, path)

    # An admin's session works with its CSRF token, and changes nothing without it.
    client.session.cookie_jar.clear()
    csrf = await sign_in(client)
    assert (await client.delete(one)).status in (401, 403)
    assert (await client.delete(one, headers={"X-CSRF-Token": csrf})).status == 204
