"""/admin: sign in with a token, the channels page, a channel's page, sign out.

The pages only render; every change goes through the JSON API (the session cookie plus the
CSRF token the page carries), so the dashboard can do nothing the API would not allow.
"""

from __future__ import annotations

import hmac
import logging
import time
from urllib.parse import urlsplit

from aiohttp import web

from server.admin.sessions import (
    COOKIE,
    SESSION,
    SESSIONS,
    SIGN_IN_PATH,
    clear_cookie,
    set_cookie,
)
from server.channels import tokens
from server.channels.store import CHANNELS
from server.chat.limits import TokenBucket
from server.db import DB
from server.pages.render import PAGES
from server.settings import SETTINGS
from server.web.auth import PRINCIPAL, Principal, path_slug
from server.web.errors import NotFound
from server.web.net import address_key, browser_host, request_address

log = logging.getLogger("onair.admin")
routes = web.RouteTableDef()

# Wrong tokens per address: 5, then one more every 12 s.
SIGN_IN_TRIES = 5
SIGN_IN_PERIOD = 60.0
MAX_TOKEN = 256


class SignInLimiter:
    """Wrong-token buckets per address (an IPv6 /64): a right token costs nothing."""

    def __init__(self) -> None:
        self.buckets: dict[str, TokenBucket] = {}

    def allowed(self, key: str) -> bool:
        """True while the address may try another token."""
        bucket = self.buckets.get(key)
        return bucket is None or bucket.has_token()

    def failed(self, key: str) -> None:
        """Count a wrong token; full buckets are forgotten so the table stays small."""
        now = time.monotonic()
        for old in [k for k, b in self.buckets.items() if k != key and b.full(now)]:
            del self.buckets[old]
        bucket = self.buckets.setdefault(key, TokenBucket(SIGN_IN_TRIES, SIGN_IN_PERIOD))
        if bucket.has_token(now):
            bucket.take()


LIMITER: web.AppKey[SignInLimiter] = web.AppKey("admin_sign_in_limiter", SignInLimiter)


def obs_server(request: web.Request) -> str:
    """The OBS "Server" field: rtmp://<public host>[:port]/live."""
    settings = request.app[SETTINGS]
    host = urlsplit(settings.public_url).hostname if settings.public_url else None
    host = host or urlsplit(f"//{request.host}").hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    port = "" if settings.rtmp_port == 1935 else f":{settings.rtmp_port}"
    return f"rtmp://{host}{port}/live"


async def check_token(request: web.Request, token: str) -> tuple[Principal, int | None] | None:
    """Who the token signs in as (and the streamer token's id), or None."""
    admin = request.app[SETTINGS].admin_token
    if admin and hmac.compare_digest(token.encode("utf-8", "surrogateescape"), admin.encode()):
        return Principal("admin", None), None
    streamer = await tokens.find(request.app[DB], token, "streamer")
    if streamer is not None:
        return Principal("streamer", streamer.channel), streamer.id
    return None


def same_origin(request: web.Request) -> bool:
    """A form post from another site (login CSRF) carries a foreign Origin."""
    origin = request.headers.get("Origin")
    return origin is None or urlsplit(origin).netloc == browser_host(request)


@routes.get("/admin")
async def admin_home(request: web.Request) -> web.Response:
    """The channels page when signed in, else the sign-in form."""
    pages = request.app[PAGES]
    session = request.get(SESSION)
    if session is None:
        return pages.render("admin_sign_in.html", error="")
    if session.principal.role == "streamer":
        raise web.HTTPSeeOther(f"/admin/channels/{session.principal.channel}")
    return pages.render("admin_channels.html", csrf=session.csrf, obs_server=obs_server(request))


@routes.get("/admin/channels/{slug}")
async def admin_channel(request: web.Request) -> web.Response:
    """One channel's page: key, tokens, bans, recordings, videos. For the admin or that
    channel's streamer; another channel's streamer goes back to their own, anyone else to
    the sign-in form."""
    pages = request.app[PAGES]
    session = request.get(SESSION)
    if session is None:
        raise web.HTTPSeeOther("/admin")
    slug = request.match_info["slug"]
    principal = session.principal
    if principal.role == "streamer" and principal.channel != slug:
        raise web.HTTPSeeOther(f"/admin/channels/{principal.channel}")
    try:
        channel = await request.app[CHANNELS].get(path_slug(request))
    except NotFound:
        return pages.render("not_found.html", status=404, slug=slug[:60])
    return pages.render(
        "admin_channel.html",
        csrf=session.csrf,
        channel=channel,
        obs_server=obs_server(request),
        role=principal.role,
    )


@routes.post(SIGN_IN_PATH)
async def sign_in(request: web.Request) -> web.Response:
    """Check the token; a right one starts a session and goes to /admin."""
    pages = request.app[PAGES]
    if not same_origin(request):
        return pages.render("admin_sign_in.html", status=403, error="Sign in from this site.")
    who = request_address(request)
    key = address_key(who)
    limiter = request.app[LIMITER]
    if not limiter.allowed(key):
        log.warning("admin sign-in refused reason=rate_limited address=%s", who)
        response = pages.render(
            "admin_sign_in.html",
            status=429,
            error="Too many wrong tokens from your address. Try again in a minute.",
        )
        response.headers["Retry-After"] = str(int(SIGN_IN_PERIOD / SIGN_IN_TRIES))
        return response
    form = await request.post()
    token = form.get("token", "")
    found = None
    if isinstance(token, str) and 0 < len(token) <= MAX_TOKEN:
        found = await check_token(request, token)
    if found is None:
        limiter.failed(key)
        log.warning("admin sign-in refused reason=wrong_token address=%s", who)
        return pages.render("admin_sign_in.html", status=401, error="That token is not valid.")
    principal, token_id = found
    cookie, _ = await request.app[SESSIONS].create(principal, token_id)
    log.info(
        "admin signed in role=%s channel=%s address=%s", principal.role, principal.channel, who
    )
    response = web.HTTPSeeOther("/admin")
    set_cookie(request, response, cookie)
    raise response


@routes.post("/admin/sign-out")
async def sign_out(request: web.Request) -> web.Response:
    """End the session server-side (the middleware has checked its CSRF token)."""
    if request.get(PRINCIPAL) is not None:
        await request.app[SESSIONS].delete(request.cookies[COOKIE])
        log.info("admin signed out address=%s", request_address(request))
    response = web.HTTPSeeOther("/admin")
    clear_cookie(request, response)
    raise response


def setup(app: web.Application) -> None:
    """Add the /admin pages."""
    app[LIMITER] = SignInLimiter()
    app.add_routes(routes)
