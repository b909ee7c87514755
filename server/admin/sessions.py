"""Dashboard sessions: the cookie, its CSRF token, expiry, and the middleware that turns a
live session into the request's Principal. All of admin_sessions' SQL is here.

The cookie holds 192 random bits, stored only as a SHA-256 hash (like stream keys). A
session ends after IDLE of no use or ABSOLUTE after sign-in, whichever comes first, and at
"Sign out". A request that changes state (anything but GET, HEAD, OPTIONS) counts the
session only with its CSRF token in the `X-CSRF-Token` header (the pages' scripts) or a
`csrf` form field (the sign-out form); without it the request is refused, never run as
anonymous.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
from aiohttp import web

from server.db import DB
from server.web.auth import PRINCIPAL, Principal, bearer_token
from server.web.errors import ApiError, Handler
from server.web.net import browser_is_https, request_address

log = logging.getLogger("onair.admin")

COOKIE = "onair_session"
CSRF_HEADER = "X-CSRF-Token"
IDLE = timedelta(hours=2)
ABSOLUTE = timedelta(hours=12)
# seen_at is written at most this often per session: not one UPDATE per request.
TOUCH_EVERY = timedelta(minutes=1)
SAFE_METHODS = frozenset(("GET", "HEAD", "OPTIONS"))


@dataclass(frozen=True)
class Session:
    """A live session: who it is and the CSRF token its pages carry."""

    principal: Principal
    csrf: str


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


class SessionStore:
    """admin_sessions in the app's pool."""

    def __init__(self, db: asyncpg.Pool) -> None:
        self.db = db

    async def create(
        self, principal: Principal, token_id: int | None = None
    ) -> tuple[str, Session]:
        """A new session; returns the cookie value (never stored) and the session. A streamer's
        session names the token it signed in with: revoking that token ends the session."""
        token, csrf = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        await self.db.execute(
            "INSERT INTO admin_sessions (token_hash, role, channel, csrf, token_id)"
            " VALUES ($1, $2, $3, $4, $5)",
            _hash(token),
            principal.role,
            principal.channel,
            csrf,
            token_id,
        )
        return token, Session(principal, csrf)

    async def get(self, token: str) -> Session | None:
        """The live session for a cookie value, or None (unknown, idle too long, too old);
        its seen_at moves forward at most once per TOUCH_EVERY."""
        digest = _hash(token)
        row = await self.db.fetchrow(
            """SELECT role, channel, csrf, seen_at < now() - $4::interval AS stale
               FROM admin_sessions
               WHERE token_hash = $1 AND seen_at > now() - $2::interval
                 AND created_at > now() - $3::interval""",
            digest,
            IDLE,
            ABSOLUTE,
            TOUCH_EVERY,
        )
        if row is None:
            return None
        if row["stale"]:
            await self.db.execute(
                "UPDATE admin_sessions SET seen_at = now() WHERE token_hash = $1", digest
            )
        return Session(Principal(row["role"], row["channel"]), row["csrf"])

    async def delete(self, token: str) -> None:
        """End a session (Sign out)."""
        await self.db.execute("DELETE FROM admin_sessions WHERE token_hash = $1", _hash(token))

    async def purge_expired(self) -> int:
        """Drop sessions past either expiry; returns how many went."""
        done = await self.db.execute(
            "DELETE FROM admin_sessions WHERE seen_at <= now() - $1::interval"
            " OR created_at <= now() - $2::interval",
            IDLE,
            ABSOLUTE,
        )
        return int(done.split()[-1])


SESSIONS: web.AppKey[SessionStore] = web.AppKey("admin_sessions", SessionStore)
# The request's live session (beside web.auth's PRINCIPAL): the pages render its CSRF token.
SESSION: web.RequestKey[Session] = web.RequestKey("admin_session", Session)
SIGN_IN_PATH = "/admin/sign-in"


async def admin_sessions(app: web.Application) -> AsyncIterator[None]:
    """The app's SessionStore (after db.postgres); expired sessions are purged at start."""
    app[SESSIONS] = SessionStore(app[DB])
    gone = await app[SESSIONS].purge_expired()
    if gone:
        log.info("admin sessions expired purged=%d", gone)
    yield


def set_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    """The session cookie: HttpOnly, SameSite=Strict, Secure behind TLS, for ABSOLUTE."""
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(ABSOLUTE.total_seconds()),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=browser_is_https(request),
    )


def clear_cookie(request: web.Request, response: web.StreamResponse) -> None:
    """Tell the browser to forget the session cookie."""
    response.del_cookie(COOKIE, path="/", secure=browser_is_https(request), samesite="Strict")


async def csrf_given(request: web.Request) -> str:
    """The CSRF token the request carries: the header, else a urlencoded form's field."""
    header = request.headers.get(CSRF_HEADER, "")
    if header or request.content_type != "application/x-www-form-urlencoded":
        return header
    form = await request.post()
    value = form.get("csrf", "")
    return value if isinstance(value, str) else ""


async def request_session(request: web.Request) -> Session | None:
    """The live session named by the request's cookie, or None."""
    token = request.cookies.get(COOKIE, "")
    if not token or len(token) > 64:
        return None
    return await request.app[SESSIONS].get(token)


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """For /api and /admin: a live session cookie becomes request[PRINCIPAL]; a state change
    without the session's CSRF token is a 403. A bearer token, when given, wins."""
    path = request.path
    if COOKIE not in request.cookies or bearer_token(request) or path == SIGN_IN_PATH:
        return await handler(request)
    if not (path.startswith("/api/") or path == "/admin" or path.startswith("/admin/")):
        return await handler(request)
    session = await request_session(request)
    if session is not None:
        if request.method not in SAFE_METHODS:
            given = await csrf_given(request)
            if not given or not hmac.compare_digest(given.encode(), session.csrf.encode()):
                log.warning(
                    "admin request refused reason=csrf method=%s path=%s address=%s",
                    request.method,
                    path,
                    request_address(request),
                )
                raise ApiError("CSRF token missing or wrong", 403)
        request[PRINCIPAL] = session.principal
        request[SESSION] = session
    return await handler(request)
