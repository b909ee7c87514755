"""Channels through the admin API: what an operator and a client see."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from server.channels.store import ChannelStore
from server.db import DB


async def test_create_list_get_rotate_delete(client: TestClient, admin: dict[str, str]) -> None:
    created = await client.post(
        "/api/channels", json={"slug": "news", "title": "News"}, headers=admin
    )
    assert created.status == 201
    body = await created.json()
    assert body["slug"] == "news"
    key = body["stream_key"]
    assert len(key) >= 22  # at least 128 bits in URL-safe base64

    listed = await (await client.get("/api/channels")).json()
    assert [c["slug"] for c in listed] == ["news"]
    assert listed[0] == {
        "slug": "news",
        "title": "News",
        "live": False,
        "viewers": 0,
        "started_at": None,
        "disabled": False,
    }
    one = await client.get("/api/channels/news")
    assert (await one.json())["title"] == "News"
    assert "stream_key" not in await one.text()

    db = client.app[DB]
    assert (await ChannelStore(db).for_key(key)) is not None
    rotated = await client.post("/api/channels/news/rotate-key", headers=admin)
    assert rotated.status == 200
    new_key = (await rotated.json())["stream_key"]
    assert new_key != key
    assert await ChannelStore(db).for_key(key) is None
    found = await ChannelStore(db).for_key(new_key)
    assert found is not None and found.slug == "news"

    deleted = await client.delete("/api/channels/news", headers=admin)
    assert deleted.status == 204
    assert (await client.get("/api/channels/news")).status == 404
    assert await ChannelStore(db).for_key(new_key) is None


async def test_key_is_stored_only_as_a_hash(client: TestClient, admin: dict[str, str]) -> None:
    created = await client.post("/api/channels", json={"slug": "hashed"}, headers=admin)
    key = (await created.json())["stream_key"]
    row = await client.app[DB].fetchrow("SELECT * FROM channels WHERE slug = 'hashed'")
    stored = " ".join(str(v) for v in row.values())
    assert key not in stored and key.encode() not in bytes(row["key_hash"])


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/channels"),
        ("POST", "/api/channels/news/rotate-key"),
        ("DELETE", "/api/channels/news"),
    ],
)
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": "Basic abc"}],
)
async def test_admin_calls_need_the_token(
    client: TestClient, method: str, path: str, headers: dict[str, str]
) -> None:
    response = await client.request(method, path, json={"slug": "news"}, headers=headers)
    assert response.status == 401
    # rotate-key is a channel's call: its streamer may make it too.
    assert (await response.json())["error"] in (
        "admin token required",
        "admin token or this channel's streamer login required",
    )


@pytest.mark.parametrize(
    "body",
    [
        {"slug": "Has-Caps"},
        {"slug": "-leading-dash"},
        {"slug": "a" * 41},
        {"slug": "../etc"},
        {"slug": ""},
        {"slug": 42},
        {"slug": None},
        {"title": "no slug"},
        {"slug": "ok", "title": 7},
        {"slug": "ok", "title": "x" * 201},
        {"slug": "ok", "title": "   "},
    ],
)
async def test_bad_channel_bodies_are_400(
    client: TestClient, admin: dict[str, str], body: object
) -> None:
    response = await client.post("/api/channels", json=body, headers=admin)
    assert response.status == 400
    assert "error" in await response.json()


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"slug"', b"\xff\xfe", b"", b"null"])
async def test_malformed_json_is_400(client: TestClient, admin: dict[str, str], raw: bytes) -> None:
    response = await client.post(
        "/api/channels", data=raw, headers={**admin, "Content-Type": "application/json"}
    )
    assert response.status == 400
    assert "error" in await response.json()


async def test_duplicate_slug_is_409(client: TestClient, admin: dict[str, str]) -> None:
    assert (await client.post("/api/channels", json={"slug": "twice"}, headers=admin)).status == 201
    again = await client.post("/api/channels", json={"slug": "twice"}, headers=admin)
    assert again.status == 409
    assert "already exists" in (await again.json())["error"]


@pytest.mark.parametrize(
    "path", ["/api/channels/UPPER", "/api/channels/..%2f..%2fetc", "/api/channels/nope"]
)
async def test_unknown_or_bad_slug_is_404(
    client: TestClient, admin: dict[str, str], path: str
) -> None:
    for method in ("GET", "DELETE"):
        response = await client.request(method, path, headers=admin)
        assert response.status == 404
        assert "error" in await response.json()
    rotated = await client.post(path + "/rotate-key", headers=admin)
    assert rotated.status == 404


async def test_oversized_body_is_413_json(client: TestClient, admin: dict[str, str]) -> None:
    response = await client.post("/api/channels", data=b"{" + b" " * 200_000 + b"}", headers=admin)
    assert response.status == 413
    assert "error" in await response.json()


async def test_wrong_method_and_unknown_route_are_json(client: TestClient) -> None:
    put = await client.put("/api/channels")
    assert put.status == 405
    assert "error" in await put.json()
    missing = await client.get("/api/nothing-here")
    assert missing.status == 404
    assert "error" in await missing.json()


async def test_patch_renames_disables_and_enables(
    client: TestClient, admin: dict[str, str]
) -> None:
    await client.post("/api/channels", json={"slug": "tv", "title": "TV"}, headers=admin)
    renamed = await client.patch("/api/channels/tv", json={"title": " Late TV "}, headers=admin)
    assert renamed.status == 200
    assert (await renamed.json())["title"] == "Late TV"
    off = await client.patch("/api/channels/tv", json={"disabled": True}, headers=admin)
    assert (await off.json())["disabled"] is True
    assert (await (await client.get("/api/channels/tv")).json())["disabled"] is True
    on = await client.patch("/api/channels/tv", json={"disabled": False}, headers=admin)
    body = await on.json()
    assert (body["title"], body["disabled"]) == ("Late TV", False)

    for body, words in (
        ({}, "send title and/or disabled"),
        ({"slug": "other"}, "unknown fields: slug"),
        ({"disabled": "yes"}, "disabled must be true or false"),
        ({"title": ""}, "title must be non-empty"),
        ({"title": "x" * 201}, "title must be non-empty"),
    ):
        bad = await client.patch("/api/channels/tv", json=body, headers=admin)
        assert bad.status == 400, body
        assert words in (await bad.json())["error"], body
    assert (await (await client.get("/api/channels/tv")).json())["title"] == "Late TV"
    assert (await client.patch("/api/channels/tv", json={"title": "No"})).status == 401
    missing = await client.patch("/api/channels/nope", json={"title": "N"}, headers=admin)
    assert missing.status == 404


async def test_one_token_list_for_every_role(client: TestClient, admin: dict[str, str]) -> None:
    for slug in ("crew", "rival"):
        await client.post("/api/channels", json={"slug": slug, "title": slug}, headers=admin)
    via_old = await client.post(
        "/api/channels/crew/moderators", json={"name": "Ann"}, headers=admin
    )
    assert via_old.status == 201
    upload = await client.post("/api/channels/crew/upload-token", headers=admin)
    made = await client.post("/api/channels/crew/moderators", json={"name": "Bob"}, headers=admin)
    assert made.status == 201
    bob = await made.json()
    assert len(bob["token"]) >= 32

    listed = await (await client.get("/api/channels/crew/tokens", headers=admin)).json()
    assert [(t["role"], t["name"]) for t in listed] == [
        ("moderator", "Ann"),
        ("uploader", "upload"),
        ("moderator", "Bob"),
    ]
    assert all("token" not in t for t in listed)
    # The moderators view is the same tokens, of one role.
    moderators = await (await client.get("/api/channels/crew/moderators", headers=admin)).json()
    assert [m["name"] for m in moderators] == ["Ann", "Bob"]

    # An uploader token made through /tokens uploads, in its channel only.
    tus = {"Tus-Resumable": "1.0.0", "Upload-Length": "10"}
    uploader = await client.post(
        "/api/channels/crew/tokens", json={"role": "uploader", "name": "cam"}, headers=admin
    )
    bearer = {"Authorization": f"Bearer {(await uploader.json())['token']}"}
    assert (await client.post("/api/channels/crew/uploads", headers=tus | bearer)).status == 201
    assert (await client.post("/api/channels/rival/uploads", headers=tus | bearer)).status == 401
    old = {"Authorization": f"Bearer {(await upload.json())['token']}"}
    assert (await client.post("/api/channels/crew/uploads", headers=tus | old)).status == 201

    # Revoked in one place, whatever the role; never through another channel's path.
    assert (
        await client.delete(f"/api/channels/rival/tokens/{bob['id']}", headers=admin)
    ).status == 404
    assert (
        await client.delete(f"/api/channels/crew/tokens/{bob['id']}", headers=admin)
    ).status == 204
    assert (
        await client.delete(f"/api/channels/crew/tokens/{bob['id']}", headers=admin)
    ).status == 404
    uploader_id = (await uploader.json())["id"]
    assert (
        await client.delete(f"/api/channels/crew/tokens/{uploader_id}", headers=admin)
    ).status == 204
    assert (await client.post("/api/channels/crew/uploads", headers=tus | bearer)).status == 401

    for body, words in (
        ({"role": "admin", "name": "x"}, "role must be one of moderator, uploader"),
        ({"role": "moderator", "name": "x"}, "POST /api/channels/<slug>/moderators"),
        ({"role": "uploader", "name": ""}, "name must be 1-64 characters"),
        ({"role": "uploader", "name": "a\x00b"}, "control characters"),
    ):
        bad = await client.post("/api/channels/crew/tokens", json=body, headers=admin)
        assert bad.status == 400 and words in (await bad.json())["error"], body
    assert (await client.get("/api/channels/crew/tokens")).status == 401
    assert (await client.get("/api/channels/nobody/tokens", headers=admin)).status == 404
