"""Who may do what: the admin bearer token or a dashboard session, and path slugs that are
never a path."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from aiohttp import web

from server.settings import SETTINGS
from server.web.errors import Forbidden, NotFound, Unauthorized
from transcoder.layout import valid_slug


def bearer_token(request: web.Request) -> bytes:
    """The `Authorization: Bearer …` token's bytes, or b"" when there is none."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return b""
    # aiohttp keeps undecodable header bytes as surrogates; surrogateescape gives them back.
    return given.strip().encode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class Principal:
    """Who a dashboard session signed in as: the admin, or one channel's streamer."""

    role: str  # "admin" or "streamer"
    channel: str | None  # the streamer's channel


# Set by the admin sessions middleware (server/admin/sessions.py) when the request carries a
# live session cookie and, for a state change, its CSRF token.
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal", Principal)


def is_admin(request: web.Request) -> bool:
    """True for `Authorization: Bearer <ONAIR_ADMIN_TOKEN>` (constant-time compare) or an
    admin's dashboard session."""
    principal = request.get(PRINCIPAL)
    if principal is not None and principal.role == "admin":
        return True
    token = request.app[SETTINGS].admin_token
    given = bearer_token(request)
    return bool(token and given) and hmac.compare_digest(given, token.encode())


def require_admin(request: web.Request) -> None:
    """401 unless the admin token or an admin's dashboard session (403 for a streamer's)."""
    if is_admin(request):
        return
    if request.get(PRINCIPAL) is not None:
        raise Forbidden("only an admin may do this")
    raise Unauthorized("admin token required")


def require_channel(request: web.Request, slug: str) -> None:
    """401 unless the admin or a streamer session of this channel; 403 for a streamer of
    another channel."""
    if is_admin(request):
        return
    principal = request.get(PRINCIPAL)
    if principal is not None and principal.role == "streamer":
        if principal.channel == slug:
            return
        raise Forbidden("a streamer manages only their own channel")
    raise Unauthorized("admin token or this channel's streamer login required")


def path_slug(request: web.Request) -> str:
    """The slug in the path; anything off-pattern is 404, never a path or a query."""
    slug = request.match_info["slug"]
    if not valid_slug(slug):
        raise NotFound(f"no channel {slug[:60]}")
    return slug
