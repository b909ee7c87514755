"""HTTP: list and delete recordings; serve the VOD playlist and the MP4 it points into."""

from __future__ import annotations

from aiohttp import web

from server.channels.store import channel_in_path
from server.db import DB
from server.recordings import store
from server.recordings.download import send_first
from server.recordings.service import RECORDINGS
from server.recordings.store import ID_RE, MP4_LINK, PLAYABLE, recording_json
from server.web.auth import path_slug, require_admin, require_channel
from server.web.errors import NotFound
from transcoder.recordings import media

routes = web.RouteTableDef()
VOD_FILES = (*media.VOD_FILES, MP4_LINK)


@routes.get("/api/channels/{slug}/recordings")
async def list_recordings(request: web.Request) -> web.Response:
    """Every recording of the channel, newest first (deleted ones are gone)."""
    slug = await channel_in_path(request)
    rows = await store.of_channel(request.app[DB], slug)
    return web.json_response([recording_json(r) for r in rows])


@routes.delete("/api/recordings/{id}")
async def delete_recording(request: web.Request) -> web.Response:
    """Admin or the channel's streamer: delete a recording and its files (409 while it is
    still recording)."""
    rid = request.match_info["id"]
    if not ID_RE.match(rid):
        raise NotFound(f"no recording {rid[:40]}")
    row = await store.get(request.app[DB], rid)
    if row is None:
        require_admin(request)  # an unknown id tells nobody but an admin that it is unknown
        raise NotFound(f"no recording {rid}")
    require_channel(request, row["channel"])
    await request.app[RECORDINGS].delete(rid, "admin")
    return web.Response(status=204)


@routes.get("/vod/{slug}/{id}/{name}")
async def vod_file(request: web.Request) -> web.StreamResponse:
    """The VOD playlist (never cached), the MP4 it points into (ranges, cached for good) and
    the download link, recording.mp4: the complete file of the moment, revalidated."""
    slug = path_slug(request)
    rid, name = request.match_info["id"], request.match_info["name"]
    if not ID_RE.match(rid) or name not in VOD_FILES:
        raise NotFound("no such file")
    row = await store.vod_row(request.app[DB], rid, slug)
    if row is None or row["state"] not in PLAYABLE:
        raise NotFound("no such file")
    directory = request.app[RECORDINGS].directory(slug, rid)
    headers = {"Access-Control-Allow-Origin": "*"}
    if name == MP4_LINK:
        # Its bytes change once, when compression replaces the original: the ETag and
        # Last-Modified are the served file's, so caches revalidate and a resumed download
        # (If-Range) across the swap gets the new file whole instead of mixed ranges.
        headers["Cache-Control"] = "no-cache"
        headers["Content-Type"] = "video/mp4"
        headers["Content-Disposition"] = f'inline; filename="{slug}-{rid}.mp4"'
        # The compressed file is renamed into place whole before the row says so, and the
        # original is deleted only after that rename: of the two, one is always complete.
        # The row may be stale by the time of the open, so the other is tried after it.
        names = [*media.COMPRESSED_FILES, media.ORIGINAL]
        if row["compressed_at"] is None:
            names.reverse()
        return await send_first(request, [directory / n for n in names], headers)
    path = directory / name
    if not path.is_file():
        raise NotFound("no such file")
    if name.endswith(".m3u8"):
        headers["Cache-Control"] = "no-cache"  # it changes when compression replaces the file
        headers["Content-Type"] = "application/vnd.apple.mpegurl"
    else:
        # A file name is never reused for other bytes (the compressed copy gets a new one).
        headers["Cache-Control"] = "public, max-age=31536000, immutable"
        headers["Content-Type"] = "video/mp4"
        headers["Content-Disposition"] = f'inline; filename="{slug}-{rid}.mp4"'
    return web.FileResponse(path, headers=headers)
