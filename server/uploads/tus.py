"""tus 1.0 (core + creation, termination, expiration): bodies stream to disk, offset = file size.

Our own handler rather than aiohttp-tus 1.1.0 (2022): that package keeps upload state in its
own JSON files and knows nothing of channels, tokens, the free-space check before accepting,
ffprobe after the last byte, or the uploads table that the VOD queue and expiry work from.
The protocol is four small handlers; the rest is what Onair needs around them anyway.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import errno
import functools
import logging
import os
import unicodedata
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import PurePosixPath

import aiohttp
import asyncpg
from aiohttp import web

from server.channels import tokens
from server.channels.store import CHANNELS
from server.db import DB
from server.settings import SETTINGS
from server.uploads import metrics, store
from server.uploads.service import UPLOADS
from server.uploads.store import UPLOAD_ID_RE
from server.web.auth import PRINCIPAL, bearer_token, is_admin, path_slug
from server.web.errors import ApiError, NotFound, Unauthorized, json_error

log = logging.getLogger("onair.uploads")
routes = web.RouteTableDef()

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,termination,expiration"
OFFSET_TYPE = "application/offset+octet-stream"
FLUSH_BYTES = 512 * 1024  # what one upload holds in memory before it goes to disk
TOUCH_EVERY_S = 5.0  # a long PATCH refreshes `received` and keeps expiry away this often
LOCK_WAIT_S = 10.0  # a retried PATCH waits this long for the dropped one to let go
MAX_TITLE = 200
MAX_METADATA = 4096
IOV_MAX = 1024  # Linux's limit on buffers per writev

TusHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def tus(handler: TusHandler) -> TusHandler:
    """Every tus answer, errors too, carries Tus-Resumable (the spec asks for it)."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            response = await handler(request)
        except ApiError as err:
            response = json_error(err.status, err.message)
            response.headers.update(getattr(err, "headers", {}))
        response.headers["Tus-Resumable"] = TUS_VERSION
        return response

    return wrapped


class TusError(ApiError):
    """An ApiError that also sets tus headers (Tus-Version on 412, Upload-Offset on 409)."""

    def __init__(self, message: str, status: int, headers: dict[str, str]) -> None:
        super().__init__(message, status)
        self.headers = headers


def _check_version(request: web.Request) -> None:
    if request.headers.get("Tus-Resumable") != TUS_VERSION:
        raise TusError(
            f"Tus-Resumable: {TUS_VERSION} is required", 412, {"Tus-Version": TUS_VERSION}
        )


def _header_int(request: web.Request, name: str) -> int:
    raw = request.headers.get(name, "")
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise ApiError(f"{name} must be a whole number of bytes")
    return int(raw)


async def require_uploader(request: web.Request, channel: str) -> None:
    """401 unless the admin (token or session), the channel's streamer login or the bearer is
    one of the channel's upload tokens."""
    principal = request.get(PRINCIPAL)
    if is_admin(request) or (principal is not None and principal.channel == channel):
        return
    given = bearer_token(request)
    if given:
        secret = given.decode("utf-8", "surrogateescape")
        token = await tokens.find(request.app[DB], secret, "uploader")
        if token is not None and token.channel == channel:
            return
    raise Unauthorized("admin token or the channel's upload token required")


def _clean_text(value: str, limit: int) -> str:
    text = "".join(ch for ch in value if unicodedata.category(ch) not in ("Cc", "Cs"))
    return text.strip()[:limit]


def parse_metadata(raw: str) -> dict[str, str]:
    """Upload-Metadata: `key base64value` pairs separated by commas (values may be absent)."""
    if len(raw) > MAX_METADATA:
        raise ApiError("Upload-Metadata is too long")
    found: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in raw.split(","))):
        key, _, value = pair.partition(" ")
        if not key.isascii() or not key.isprintable() or " " in value.strip():
            raise ApiError("Upload-Metadata must be `key base64value` pairs")
        try:
            found[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as err:
            raise ApiError(f"Upload-Metadata value of {key[:40]} is not base64 UTF-8") from err
    return found


def _expires(request: web.Request) -> str:
    when = datetime.now(UTC) + timedelta(seconds=request.app[SETTINGS].upload_expiry_s)
    return format_datetime(when, usegmt=True)


@routes.options("/api/channels/{slug}/uploads")
async def discover(request: web.Request) -> web.Response:
    """tus discovery: version, extensions and the largest upload we take."""
    path_slug(request)
    return web.Response(
        status=204,
        headers={
            "Tus-Resumable": TUS_VERSION,
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": TUS_EXTENSIONS,
            "Tus-Max-Size": str(request.app[SETTINGS].upload_max_bytes),
        },
    )


@routes.post("/api/channels/{slug}/uploads")
@tus
async def create_upload(request: web.Request) -> web.Response:
    """tus creation: 201 + Location, or 413 (too big), 507 (no room), 401, 404."""
    slug = path_slug(request)
    _check_version(request)
    await request.app[CHANNELS].get(slug)
    await require_uploader(request, slug)
    if "Upload-Defer-Length" in request.headers:
        raise ApiError("Upload-Defer-Length is not supported; send Upload-Length")
    length = _header_int(request, "Upload-Length")
    limit = request.app[SETTINGS].upload_max_bytes
    if length > limit:
        metrics.UPLOADS.labels("too_large").inc()
        raise TusError(
            f"upload of {length} bytes is larger than the limit of {limit}",
            413,
            {"Tus-Max-Size": str(limit)},
        )
    if length == 0:
        raise ApiError("Upload-Length must be more than 0")
    meta = parse_metadata(request.headers.get("Upload-Metadata", ""))
    filename = _clean_text(meta.get("filename", ""), 255) or None
    stem = PurePosixPath(filename.replace("\\", "/")).stem if filename else ""
    title = _clean_text(meta.get("title", ""), MAX_TITLE) or stem[:MAX_TITLE] or "Untitled video"
    uid = await request.app[UPLOADS].create(slug, length, filename, title)
    return web.Response(
        status=201,
        headers={"Location": f"/api/uploads/{uid}", "Upload-Expires": _expires(request)},
    )


async def _upload_row(request: web.Request) -> asyncpg.Record:
    uid = request.match_info["id"]
    if not UPLOAD_ID_RE.match(uid):
        raise NotFound("no such upload")
    row = await store.get_upload(request.app[DB], uid)
    if row is None:
        raise NotFound("no such upload")
    await require_uploader(request, row["channel"])
    return row


def _gone(row: asyncpg.Record) -> TusError:
    why = f": {row['error']}" if row["error"] else ""
    return TusError(f"upload {row['state']}{why}", 410, {})


@routes.head("/api/uploads/{id}")
@tus
async def upload_offset(request: web.Request) -> web.Response:
    """tus HEAD: how many bytes we have (the data file's size), and the total."""
    _check_version(request)
    row = await _upload_row(request)
    if row["state"] == "done":
        offset = row["length"]
    elif row["state"] == "receiving":
        offset = await _size(request.app[UPLOADS].data_path(row["id"]))
    else:
        raise _gone(row)
    return web.Response(
        status=200,
        headers={
            "Upload-Offset": str(offset),
            "Upload-Length": str(row["length"]),
            "Cache-Control": "no-store",
        },
    )


async def _size(path: os.PathLike[str]) -> int:
    try:
        return (await asyncio.to_thread(os.stat, path)).st_size
    except FileNotFoundError:
        return 0


def _write_all(fd: int, parts: list[bytes]) -> None:
    """writev the parts as they came off the socket: no copy into one buffer first."""
    views = [memoryview(p) for p in parts if p]
    while views:
        done = os.writev(fd, views[:IOV_MAX])
        while done:
            if done >= len(views[0]):
                done -= len(views.pop(0))
            else:
                views[0] = views[0][done:]
                done = 0


async def _write(fd: int, parts: list[bytes]) -> None:
    """Write in a thread; if we are cancelled, the write still finishes before we go on."""
    task = asyncio.ensure_future(asyncio.to_thread(_write_all, fd, parts))
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task})
        raise


async def _touch(request: web.Request, uid: str, received: int) -> None:
    await store.touch_upload(request.app[DB], uid, received)


@routes.patch("/api/uploads/{id}")
@tus
async def upload_chunk(request: web.Request) -> web.Response:
    """tus PATCH: append the body at Upload-Offset, streaming to disk; the last byte accepts."""
    _check_version(request)
    if request.content_type != OFFSET_TYPE:
        raise ApiError(f"Content-Type must be {OFFSET_TYPE}", 415)
    offset = _header_int(request, "Upload-Offset")
    row = await _upload_row(request)
    if row["state"] != "receiving":
        raise _gone(row)
    uid, length = row["id"], row["length"]
    declared = request.content_length
    if declared is not None and offset + declared > length:
        raise ApiError(f"the body goes past Upload-Length {length}", 413)
    uploads = request.app[UPLOADS]
    lock = uploads.lock(uid)
    try:
        async with asyncio.timeout(LOCK_WAIT_S):
            await lock.acquire()
    except TimeoutError as err:
        raise ApiError("another request is still writing this upload", 409) from err
    try:
        return await _receive(request, uid, offset, length, row)
    finally:
        lock.release()
        if not lock.locked():
            uploads.locks.pop(uid, None)


async def _receive(
    request: web.Request, uid: str, offset: int, length: int, row: asyncpg.Record
) -> web.Response:
    uploads = request.app[UPLOADS]
    path = uploads.data_path(uid)
    try:
        fd = await asyncio.to_thread(os.open, path, os.O_WRONLY | os.O_APPEND)
    except FileNotFoundError as err:
        raise TusError("upload removed", 410, {}) from err
    loop = asyncio.get_running_loop()
    status, message = 204, ""
    try:
        have = os.fstat(fd).st_size
        if have != offset:
            raise TusError(
                f"Upload-Offset {offset} does not match the {have} bytes received",
                409,
                {"Upload-Offset": str(have)},
            )
        parts: list[bytes] = []  # received, not yet on disk (at most FLUSH_BYTES and a chunk)
        pending = 0
        written = have
        last_touch = loop.time()
        try:
            while True:
                chunk = await request.content.readany()
                if not chunk:
                    break
                room = length - written - pending
                if len(chunk) > room:
                    parts.append(chunk[:room])
                    pending += room
                    status, message = 413, f"the body goes past Upload-Length {length}"
                    break
                parts.append(chunk)
                pending += len(chunk)
                if pending >= FLUSH_BYTES:
                    batch, parts, size = parts, [], pending
                    pending = 0
                    await _write(fd, batch)
                    written += size
                    metrics.UPLOAD_BYTES.inc(size)
                    if loop.time() - last_touch >= TOUCH_EVERY_S:
                        last_touch = loop.time()
                        await _touch(request, uid, written)
        except (aiohttp.ClientError, ConnectionError, asyncio.IncompleteReadError) as err:
            # The connection dropped: keep every byte that arrived, the client resumes from it.
            status, message = 400, f"the body ended early ({type(err).__name__})"
        finally:
            if parts:
                await _write(fd, parts)
                metrics.UPLOAD_BYTES.inc(pending)
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        status, message = 507, "the media volume is full; resume later"
        metrics.UPLOADS.labels("no_space").inc()
    finally:
        received = os.fstat(fd).st_size
        os.close(fd)
        await _touch(request, uid, received)
    headers = {"Upload-Offset": str(received), "Upload-Expires": _expires(request)}
    if status == 204 and received == length:
        try:
            await uploads.accept(uid, row["channel"], row["title"])
        except ApiError as err:
            raise TusError(err.message, err.status, headers) from err
    if status != 204:
        raise TusError(message, status, headers)
    return web.Response(status=204, headers=headers)


@routes.delete("/api/uploads/{id}")
@tus
async def terminate_upload(request: web.Request) -> web.Response:
    """tus termination: the upload and its bytes are gone (409 once it became a video)."""
    _check_version(request)
    row = await _upload_row(request)
    if row["state"] in ("rejected", "expired", "terminated"):
        raise _gone(row)
    await request.app[UPLOADS].terminate(row["id"])
    return web.Response(status=204)
