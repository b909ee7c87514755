"""The stable MP4 link: whichever of a recording's files is complete, opened once, sent with
ranges and validators of the file actually sent.

aiohttp's FileResponse opens by path (so a file deleted after we chose it is a 404) and
honours If-Range only as a date (an ETag there is ignored and the range served from other
bytes), which is why this one opens the file itself and checks If-Range both ways.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import BinaryIO

from aiohttp import hdrs, web

from server.web.errors import NotFound

CHUNK = 256 * 1024


def _open_first(candidates: Sequence[Path]) -> tuple[BinaryIO, os.stat_result] | None:
    """The first candidate that opens: a file deleted between the choice and here is skipped,
    and once open it stays readable to the end even if compression deletes it."""
    for path in candidates:
        try:
            fobj = path.open("rb")
        except FileNotFoundError:
            continue
        return fobj, os.fstat(fobj.fileno())
    return None


def _close_opened(opening: asyncio.Future[tuple[BinaryIO, os.stat_result] | None]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opened = opening.result()
        if opened is not None:
            opened[0].close()


def _if_range_holds(value: str, etag: str, last_modified: str) -> bool:
    """RFC 9110 13.1.5: a strong ETag or an exact date of the representation sent now."""
    value = value.strip()
    if value.startswith(('"', "W/")):
        return value == f'"{etag}"'
    try:
        return parsedate_to_datetime(value) == parsedate_to_datetime(last_modified)
    except (TypeError, ValueError):
        return False


def _byte_range(request: web.Request, size: int) -> tuple[int, int] | None:
    """(start, count) of the Range asked for, None for the whole file; 416 when unsatisfiable."""
    unsatisfiable = web.HTTPRequestRangeNotSatisfiable(
        headers={hdrs.CONTENT_RANGE: f"bytes */{size}"}
    )
    try:
        rng = request.http_range
    except ValueError as err:
        raise unsatisfiable from err
    if rng.start is None:  # no range, or `bytes=-`
        return None
    start, stop = rng.start, rng.stop
    if start < 0:  # bytes=-N: the last N bytes
        start, stop = max(0, size + start), size
    stop = size if stop is None else min(stop, size)
    if start >= size:
        raise unsatisfiable
    return start, stop - start


async def send_first(
    request: web.Request, candidates: Sequence[Path], headers: Mapping[str, str]
) -> web.StreamResponse:
    """Send the first of `candidates` that exists (404 when none does)."""
    opening = asyncio.ensure_future(asyncio.to_thread(_open_first, candidates))
    try:
        opened = await asyncio.shield(opening)
    except asyncio.CancelledError:  # the client left: close what the thread still opens
        opening.add_done_callback(_close_opened)
        raise
    if opened is None:
        raise NotFound("no such file")
    fobj, st = opened
    try:
        etag = f"{st.st_mtime_ns:x}-{st.st_size:x}"
        last_modified = formatdate(st.st_mtime, usegmt=True)
        response = web.StreamResponse(headers=headers)
        response.etag = etag
        response.headers[hdrs.LAST_MODIFIED] = last_modified
        response.headers[hdrs.ACCEPT_RANGES] = "bytes"
        if request.if_none_match is not None and any(
            tag.value in (etag, "*") for tag in request.if_none_match
        ):
            response.set_status(304)
            await response.prepare(request)
            return response
        wanted = None
        if_range = request.headers.get(hdrs.IF_RANGE)
        if hdrs.RANGE in request.headers and (
            if_range is None or _if_range_holds(if_range, etag, last_modified)
        ):
            wanted = _byte_range(request, st.st_size)
        start, count = wanted if wanted is not None else (0, st.st_size)
        if wanted is not None:
            response.set_status(206)
            response.headers[hdrs.CONTENT_RANGE] = f"bytes {start}-{start + count - 1}/{st.st_size}"
        response.content_length = count
        await response.prepare(request)
        if request.method != hdrs.METH_HEAD:
            await asyncio.to_thread(fobj.seek, start)
            while count > 0:
                data = await asyncio.to_thread(fobj.read, min(CHUNK, count))
                if not data:
                    break  # cannot happen for a file that is only ever replaced whole
                count -= len(data)
                await response.write(data)
        await response.write_eof()
        return response
    finally:
        fobj.close()  # read-only: nothing to flush, does not block
