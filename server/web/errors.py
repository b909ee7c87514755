"""Domain errors and the one middleware that maps every error to a JSON response."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger("onair.http")


class ApiError(Exception):
    """An error the client caused or should know about; carries its HTTP status."""

    status = 400

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class NotFound(ApiError):
    """The thing named in the path does not exist."""

    status = 404


class Conflict(ApiError):
    """The request clashes with what exists (a taken slug)."""

    status = 409


class Unauthorized(ApiError):
    """Missing or wrong credentials."""

    status = 401


class Forbidden(ApiError):
    """Known credentials that may not do this (a streamer on another channel)."""

    status = 403


def json_error(status: int, message: str) -> web.Response:
    """The one error body: `{"error": "..."}`."""
    return web.json_response({"error": message}, status=status)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """ApiError → its status; aiohttp's own 4xx → JSON; anything else → a logged 500."""
    try:
        return await handler(request)
    except ApiError as err:
        return json_error(err.status, err.message)
    except web.HTTPException as err:
        if err.status < 400:
            raise
        # aiohttp's own errors (no route, wrong method, body too large) become JSON too.
        response = json_error(err.status, err.reason.lower())
        if "Allow" in err.headers:
            response.headers["Allow"] = err.headers["Allow"]
        return response
    except Exception:
        log.exception("unhandled error method=%s path=%s", request.method, request.path)
        return json_error(500, "internal error")


async def read_json_object(request: web.Request) -> dict[str, object]:
    """The body as a JSON object, or a 400 that says what was wrong."""
    try:
        body = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ApiError("body is not valid JSON") from err
    if not isinstance(body, dict):
        raise ApiError("body must be a JSON object")
    return body
