"""GET /api/openapi.json: the OpenAPI 3.0 description of the HTTP API, kept in openapi.json."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

# Read once at import: the document is part of the release, not something that changes live.
DOCUMENT = (Path(__file__).parent / "openapi.json").read_bytes()


async def openapi(request: web.Request) -> web.Response:
    """The static OpenAPI document, as JSON."""
    return web.Response(body=DOCUMENT, content_type="application/json")
