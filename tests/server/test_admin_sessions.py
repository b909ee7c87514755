"""Dashboard sessions over HTTP: sign-in, the cookie's flags, CSRF, sign-out, expiry, limits."""

from __future__ import annotations

import logging
import re

import pytest
from aiohttp.test_utils import TestClient

from server.admin.pages import SIGN_IN_TRIES
from server.admin.sessions import COOKIE
from server.db import DB
from tests.conftest import ADMIN_TOKEN

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


async def sign_in(client: TestClient, token: str = ADMIN_TOKEN, **headers: str) -> str:
    """Sign in through the form; returns the page's CSRF token."""
    response = await client.post(
        "/admin/sign-in", data={"token": token}, headers=headers, allow_redirects=False
    )
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == "/admin"
    page = await (await client.get("/admin")).text()
    found = CSRF_META.search(page)
    assert found is not None, page[:500]
    return found.group(1)


def cookie_value(client: TestClient) -> str:
    """The session cookie the client's jar holds."""
    return next(c.value for c in client.session.cookie_jar if c.key == COOKIE)


async def test_sign_in_form_and_a_strict_http_only_cookie(client: TestClient) -> None:
    page = await (await client.get("/admin")).text()
    assert re.search(r'<label for="token">Token</label>', page)
    assert '<button type="submit">Sign in</button>' in page

    response = await client.post(
        "/admin/sign-in", data={"token": ADMIN_TOKEN}, allow_redirects=False
    )
    assert response.status == 303
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    flags = {f.strip().split("=")[0].lower() for f in cookie.split(";")[1:]}
    assert {"httponly", "samesite", "path", "max-age"} <= flags, cookie
    assert "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "secure" not in flags  # plain HTTP here
    value = cookie.split(";")[0].split("=", 1)[1]
    assert ADMIN_TOKEN not in cookie and len(value) >= 32

    page = await (await client.get("/admin")).text()
    assert "<h1>Channels</h1>" in page and CSRF_META.search(page)

    # Behind nginx with TLS (a loopback peer saying https) the cookie is Secure.
    response = await client.post(
        "/admin/sign-in",
        data={"token": ADMIN_TOKEN},
        headers={"X-Forwarded-Proto": "https"},
        allow_redirects=False,
    )
    assert "Secure" in response.headers["Set-Cookie"]


async def test_the_api_takes_the_session_only_with_its_csrf_token(client: TestClient) -> None:
    csrf = await sign_in(client)
    refused = await client.post("/api/channels", json={"slug": "nocsrf"})
    assert refused.status == 403
    assert await refused.json() == {"error": "CSRF token missing or wrong"}
    wrong = await client.post(
        "/api/channels", json={"slug": "nocsrf"}, headers={"X-CSRF-Token": csrf[:-2] + "xx"}
    )
    assert wrong.status == 403
    assert (await client.get("/api/channels/nocsrf")).status == 404

    made = await client.post(
        "/api/channels", json={"slug": "viacookie", "title": "Via"}, headers={"X-CSRF-Token": csrf}
    )
    assert made.status == 201
    renamed = await client.patch(
        "/api/channels/viacookie", json={"title": "Renamed"}, headers={"X-CSRF-Token": csrf}
    )
    assert renamed.status == 200 and (await renamed.json())["title"] == "Renamed"

    # Without a session the same calls need the bearer token, as before.
    client.session.cookie_jar.clear()
    assert (await client.delete("/api/channels/viacookie")).status == 401
    with_csrf = await client.delete("/api/channels/viacookie", headers={"X-CSRF-Token": csrf})
    assert with_csrf.status == 401


async def test_sign_out_ends_the_session_on_the_server(client: TestClient) -> None:
    csrf = await sign_in(client)
    token = cookie_value(client)
    # Sign-out is a state change too: without the CSRF field it is refused, the session stays.
    assert (await client.post("/admin/sign-out", allow_redirects=False)).status == 403
    out = await client.post("/admin/sign-out", data={"csrf": csrf}, allow_redirects=False)
    assert out.status == 303 and out.headers["Location"] == "/admin"
    assert f"{COOKIE}=" in out.headers["Set-Cookie"] and "Max-Age=0" in out.headers["Set-Cookie"]

    # The old cookie, replayed by hand, no longer counts.
    replay = {"Cookie": f"{COOKIE}={token}", "X-CSRF-Token": csrf}
    client.session.cookie_jar.clear()
    again = await client.post("/api/channels", json={"slug": "after"}, headers=replay)
    assert again.status == 401
    page = await (await client.get("/admin", headers={"Cookie": f"{COOKIE}={token}"})).text()
    assert "Sign in" in page and "<h1>Channels</h1>" not in page


async def test_sessions_expire_when_idle_and_when_old(client: TestClient) -> None:
    csrf = await sign_in(client)
    db = client.app[DB]

    async def create(slug: str, csrf: str) -> int:
        response = await client.post(
            "/api/channels", json={"slug": slug}, headers={"X-CSRF-Token": csrf}
        )
        return response.status

    assert await create("fresh", csrf) == 201
    await db.execute("UPDATE admin_sessions SET seen_at = now() - interval '3 hours'")
    assert await create("idle", csrf) == 401

    csrf = await sign_in(client)
    await db.execute("UPDATE admin_sessions SET created_at = now() - interval '13 hours'")
    assert await create("old", csrf) == 401


async def test_wrong_tokens_are_rate_limited_and_never_logged(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="onair.admin")
    wrong = "not-the-admin-token-" + "x" * 12
    for _ in range(SIGN_IN_TRIES):
        response = await client.post("/admin/sign-in", data={"token": wrong})
        assert response.status == 401
        assert "That token is not valid." in await response.text()
        assert COOKIE not in response.cookies
    limited = await client.post("/admin/sign-in", data={"token": ADMIN_TOKEN})
    assert limited.status == 429 and int(limited.headers["Retry-After"]) > 0
    assert "Too many wrong tokens" in await limited.text()
    assert "reason=wrong_token" in caplog.text and "reason=rate_limited" in caplog.text
    assert wrong not in caplog.text and ADMIN_TOKEN not in caplog.text


async def test_sign_in_from_another_site_is_refused(client: TestClient) -> None:
    response = await client.post(
        "/admin/sign-in",
        data={"token": ADMIN_TOKEN},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
    )
    assert response.status == 403
    assert COOKIE not in response.cookies


async def test_a_streamer_login_manages_only_its_own_channel(
    client: TestClient, admin: dict[str, str]
) -> None:
    for slug in ("mine", "theirs"):
        await client.post("/api/channels", json={"slug": slug}, headers=admin)
    made = await client.post(
        "/api/channels/mine/tokens", json={"role": "streamer", "name": "Sam"}, headers=admin
    )
    assert made.status == 201
    login = await made.json()
    # Signing in lands on the streamer's own channel page.
    response = await client.post(
        "/admin/sign-in", data={"token": login["token"]}, allow_redirects=False
    )
    assert response.status == 303
    home = await client.get("/admin", allow_redirects=False)
    assert home.status == 303 and home.headers["Location"] == "/admin/channels/mine"
    page = await (await client.get("/admin/channels/mine")).text()
    found = CSRF_META.search(page)
    assert found is not None and "New streamer login" not in page
    h = {"X-CSRF-Token": found.group(1)}

    async def status(method: str, path: str, body: object | None = None) -> int:
        response = await client.request(method, path, json=body, headers=h)
        return response.status

    # Its own channel: key, title, moderators, bans, tokens (not streamer logins).
    assert await status("POST", "/api/channels/mine/rotate-key") == 200
    assert await status("PATCH", "/api/channels/mine", {"title": "Sam's"}) == 200
    assert await status("PATCH", "/api/channels/mine", {"disabled": True}) == 403
    assert await status("POST", "/api/channels/mine/moderators", {"name": "Mo"}) == 201
    assert await status("GET", "/api/channels/mine/bans") == 200
    assert (
        await status("POST", "/api/channels/mine/tokens", {"role": "uploader", "name": "u"}) == 201
    )
    assert (
        await status("POST", "/api/channels/mine/tokens", {"role": "streamer", "name": "x"}) == 403
    )
    assert await status("DELETE", f"/api/channels/mine/tokens/{login['id']}") == 403
    assert await status("POST", "/api/channels/mine/upload-token") == 201

    # Anything else: refused in the API, and the page sends it back to its own channel.
    for method, path in (
        ("POST", "/api/channels/theirs/rotate-key"),
        ("GET", "/api/channels/theirs/moderators"),
        ("GET", "/api/channels/theirs/tokens"),
        ("GET", "/api/channels/theirs/bans"),
        ("POST", "/api/channels/theirs/upload-token"),
        ("DELETE", "/api/channels/theirs"),
        ("DELETE", "/api/channels/mine"),
    ):
        assert await status(method, path) == 403, path
    assert await status("POST", "/api/channels", {"slug": "more"}) == 403
    other = await client.get("/admin/channels/theirs", allow_redirects=False)
    assert other.status == 303 and other.headers["Location"] == "/admin/channels/mine"
    assert (await client.get("/api/channels/mine")).status == 200  # public reads stay public

    # Revoking the login ends its sessions at once.
    revoked = await client.delete(f"/api/channels/mine/tokens/{login['id']}", headers=admin)
    assert revoked.status == 204
    assert await status("POST", "/api/channels/mine/rotate-key") == 401
