"""HTTP around uploads: the upload token, listings, deleting a video, the ladder's files."""

from __future__ import annotations

import re

from aiohttp import web

from server import channels
from server.api import path_slug, require_admin
from server.errors import NotFound
from server.keys import DB, UPLOADS
from server.uploads.store import VIDEO_ID_RE, hash_token, new_token, upload_json, video_json
from server.uploads.tus import require_uploader
from transcoder import vod

routes = web.RouteTableDef()

RENDITION_RE = re.compile(r"^[a-z0-9]{1,16}$")
# Names ffmpeg writes in a rendition folder; anything else is 404, never a path.
FILE_RE = re.compile(r"^(index\.m3u8|init\.mp4|seg-[0-9]{1,9}\.m4s)$")


@routes.post("/api/channels/{slug}/upload-token")
async def create_upload_token(request: web.Request) -> web.Response:
    """Admin: a new upload token for the channel (shown this once; the old one stops working)."""
    require_admin(request)
    slug = path_slug(request)
    db = request.app[DB]
    await channels.get_channel(db, slug)
    token = new_token()
    await db.execute(
        "INSERT INTO upload_tokens (channel, token_hash) VALUES ($1, $2) "
        "ON CONFLICT (channel) DO UPDATE SET token_hash = $2, created_at = now()",
        slug,
        hash_token(token),
    )
    return web.json_response({"channel": slug, "token": token}, status=201)


@routes.get("/api/channels/{slug}/uploads")
async def list_uploads(request: web.Request) -> web.Response:
    """Admin or upload token: the channel's uploads, newest first."""
    slug = path_slug(request)
    db = request.app[DB]
    await channels.get_channel(db, slug)
    await require_uploader(request, slug)
    rows = await db.fetch(
        "SELECT * FROM uploads WHERE channel = $1 ORDER BY created_at DESC LIMIT 200", slug
    )
    return web.json_response([upload_json(r) for r in rows])


@routes.get("/api/channels/{slug}/videos")
async def list_videos(request: web.Request) -> web.Response:
    """The channel's videos, newest first, with progress while they transcode."""
    slug = path_slug(request)
    db = request.app[DB]
    await channels.get_channel(db, slug)
    rows = await db.fetch(
        "SELECT * FROM videos WHERE channel = $1 AND state <> 'deleted' "
        "ORDER BY created_at DESC LIMIT 1000",
        slug,
    )
    return web.json_response([video_json(r) for r in rows])


@routes.delete("/api/videos/{id}")
async def delete_video(request: web.Request) -> web.Response:
    """Admin or the channel's upload token: delete a video (its job stops, its files go)."""
    vid = request.match_info["id"]
    if not VIDEO_ID_RE.match(vid):
        raise NotFound(f"no video {vid[:40]}")
    channel = await request.app[DB].fetchval(
        "SELECT channel FROM videos WHERE id = $1 AND state <> 'deleted'", vid
    )
    if channel is None:
        raise NotFound(f"no video {vid}")
    await require_uploader(request, channel)
    await request.app[UPLOADS].queue.delete(vid)
    return web.Response(status=204)


async def _ready_dir(request: web.Request) -> tuple[str, str]:
    slug = path_slug(request)
    vid = request.match_info["id"]
    if not VIDEO_ID_RE.match(vid):
        raise NotFound("no such file")
    state = await request.app[DB].fetchval(
        "SELECT state FROM videos WHERE id = $1 AND channel = $2", vid, slug
    )
    if state != "ready":
        raise NotFound("no such file")
    return slug, vid


def _file(path: object, name: str) -> web.FileResponse:
    headers = {"Access-Control-Allow-Origin": "*"}
    if name.endswith(".m3u8"):
        headers["Cache-Control"] = "no-cache"
        headers["Content-Type"] = "application/vnd.apple.mpegurl"
    else:
        # A video's folder is never reused for other bytes: its files never change.
        headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return web.FileResponse(path, headers=headers)  # type: ignore[arg-type]


@routes.get("/videos/{slug}/{id}/{name}")
async def video_top_file(request: web.Request) -> web.StreamResponse:
    """master.m3u8 and poster.jpg of a ready video (nginx serves these from disk itself)."""
    slug, vid = await _ready_dir(request)
    name = request.match_info["name"]
    if name not in (vod.MASTER, vod.POSTER):
        raise NotFound("no such file")
    path = request.app[UPLOADS].video_dir(slug, vid) / name
    if not path.is_file():
        raise NotFound("no such file")
    return _file(path, name)


@routes.get("/videos/{slug}/{id}/{rendition}/{name}")
async def video_rendition_file(request: web.Request) -> web.StreamResponse:
    """A rendition's playlist, init segment or media segment."""
    slug, vid = await _ready_dir(request)
    rendition, name = request.match_info["rendition"], request.match_info["name"]
    if not RENDITION_RE.match(rendition) or not FILE_RE.match(name):
        raise NotFound("no such file")
    path = request.app[UPLOADS].video_dir(slug, vid) / rendition / name
    if not path.is_file():
        raise NotFound("no such file")
    return _file(path, name)
