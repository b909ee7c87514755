"""nginx-rtmp hooks as nginx calls them: key checks, rename, drop on rotate, caller checks."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request

from server.channels.store import CHANNELS
from server.live.hooks import HookRejected, check_caller
from server.live.streams import STREAMS
from server.settings import SETTINGS, Settings


def form(name: str, clientid: str = "7", **extra: str) -> dict[str, str]:
    """The fields nginx-rtmp posts (notify_method post)."""
    return {"app": "live", "name": name, "clientid": clientid, "addr": "203.0.113.9", **extra}


async def hook(client: TestClient, kind: str, data: Any, secret: str | None = None) -> Any:
    if secret is None:
        secret = client.app[SETTINGS].hook_secret
    return await client.post(
        f"/hooks/rtmp/{kind}?secret={secret}", data=data, allow_redirects=False
    )


@pytest.fixture
async def channel_key(client: TestClient) -> str:
    _, key = await client.app[CHANNELS].create("studio", "Studio")
    return key


async def test_publish_renames_to_slug_and_done_goes_offline(
    client: TestClient, channel_key: str
) -> None:
    accepted = await hook(client, "publish", form(channel_key))
    assert accepted.status == 302
    assert accepted.headers["Location"] == "studio"
    assert client.app[STREAMS].started_at("studio") is not None
    listed = await (await client.get("/api/channels/studio")).json()
    assert listed["live"] is True and listed["started_at"]

    second = await hook(client, "publish", form(channel_key, clientid="8"))
    assert second.status == 403  # already live

    update = await hook(client, "update", form(channel_key))
    assert update.status == 200

    done = await hook(client, "publish_done", form(channel_key))
    assert done.status == 200
    assert client.app[STREAMS].started_at("studio") is None
    again = await hook(client, "publish", form(channel_key, clientid="9"))
    assert again.status == 302


async def test_unknown_and_disabled_keys_are_refused(client: TestClient, channel_key: str) -> None:
    assert (await hook(client, "publish", form("not-a-key"))).status == 403
    assert (await hook(client, "publish", form("studio"))).status == 403  # the slug is not a key
    await client.app[CHANNELS].set_disabled("studio", True)
    assert (await hook(client, "publish", form(channel_key))).status == 403
    assert client.app[STREAMS].started_at("studio") is None


async def test_update_drops_a_rotated_or_disabled_publisher(
    client: TestClient, channel_key: str
) -> None:
    assert (await hook(client, "publish", form(channel_key))).status == 302
    await client.app[CHANNELS].rotate_key("studio")
    assert (await hook(client, "update", form(channel_key))).status == 403

    new_key = await client.app[CHANNELS].rotate_key("studio")
    await hook(client, "publish_done", form(channel_key))
    assert (await hook(client, "publish", form(new_key, clientid="3"))).status == 302
    await client.app[CHANNELS].set_disabled("studio", True)
    assert (await hook(client, "update", form(new_key, clientid="3"))).status == 403


@pytest.mark.parametrize("secret", ["", "wrong-secret-wrong-secret"])
async def test_hooks_need_the_secret(client: TestClient, channel_key: str, secret: str) -> None:
    for kind in ("publish", "update", "publish_done"):
        assert (await hook(client, kind, form(channel_key), secret=secret)).status == 403
    assert client.app[STREAMS].started_at("studio") is None


@pytest.mark.parametrize(
    "data",
    [
        {"app": "live", "clientid": "1"},  # no name
        {"app": "live", "name": "x"},  # no client id
        {"app": "live", "name": "x" * 1000, "clientid": "1"},
        "not a form at all",
    ],
)
async def test_malformed_hook_is_400(client: TestClient, data: Any) -> None:
    assert (await hook(client, "publish", data)).status == 400


async def test_other_application_is_refused(client: TestClient, channel_key: str) -> None:
    response = await hook(client, "publish", {**form(channel_key), "app": "other"})
    assert response.status == 403


def test_hook_from_outside_is_refused(settings: Settings) -> None:
    app = web.Application()
    app[SETTINGS] = settings

    class Transport:
        def get_extra_info(self, name: str, default: object = None) -> object:
            return ("203.0.113.5", 40000) if name == "peername" else default

    request = make_mocked_request(
        "POST",
        f"/hooks/rtmp/publish?secret={settings.hook_secret}",
        app=app,
        transport=Transport(),
    )
    with pytest.raises(HookRejected) as caught:
        check_caller(request)
    assert caught.value.status == 403
    assert caught.value.reason == "caller not allowed"


async def test_no_key_in_metrics(client: TestClient, channel_key: str) -> None:
    await hook(client, "publish", form(channel_key))
    await hook(client, "publish", form(channel_key, clientid="2"))
    await hook(client, "publish_done", form(channel_key))
    text = await (await client.get("/metrics")).text()
    assert channel_key not in text
    assert 'onair_ingest_hook_decisions_total{decision="accepted",hook="publish"}' in text
