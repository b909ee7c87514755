"""Who may do what: the admin bearer token, and path slugs that are never a path."""

from __future__ import annotations

import hmac

from aiohttp import web

from server.settings import SETTINGS
from server.web.errors import NotFound, Unauthorized
from transcoder.layout import valid_slug


def bearer_token(request: web.Request) -> bytes:
    """The `Authorization: Bearer …` token's bytes, or b"" when there is none."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return b""
    # aiohttp keeps undecodable header bytes as surrogates; surrogateescape gives them back.
    return given.strip().encode("utf-8", "surrogateescape")


def is_admin(request: web.Request) -> bool:
    """True when the request carries ONAIR_ADMIN_TOKEN; compared in constant time."""
    token = request.app[SETTINGS].admin_token
    given = bearer_token(request)
    return bool(token and given) and hmac.compare_digest(given, token.encode())


def require_admin(request: web.Request) -> None:
    """401 unless `Authorization: Bearer <ONAIR_ADMIN_TOKEN>`."""
    if not is_admin(request):
        raise Unauthorized("admin token required")


def path_slug(request: web.Request) -> str:
    """The slug in the path; anything off-pattern is 404, never a path or a query."""
    slug = request.match_info["slug"]
    if not valid_slug(slug):
        raise NotFound(f"no channel {slug[:60]}")
    return slug
