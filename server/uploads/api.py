"""HTTP around uploads: the upload token, listings, deleting a video, the ladder's files."""

from __future__ import annotations

import re

from aiohttp import web

from server.channels import tokens
from server.channels.store import channel_in_path
from server.db import DB
from server.uploads import store
from server.uploads.service import UPLOADS
from server.uploads.store import VIDEO_ID_RE, upload_json, video_json
from server.uploads.tus import require_uploader
from server.web.auth import path_slug, require_channel
from server.web.errors import NotFound
from transcoder import vod

routes = web.RouteTableDef()

RENDITION_RE = re.compile(r"^[a-z0-9]{1,16}$")
# Names ffmpeg writes in a rendition folder; anything else is 404, never a path.
FILE_RE = re.compile(r"^(index\.m3u8|init\.mp4|seg-[0-9]{1,9}\.m4s)$")


@routes.post("/api/channels/{slug}/upload-token")
async def create_upload_token(request: web.Request) -> web.Response:
    """Admin or the channel's streamer: a new upload token for the channel (shown this once;
    the old one stops working)."""
    require_channel(request, path_slug(request))
    slug = await channel_in_path(request)
    _, token = await tokens.create(request.app[DB], slug, "uploader", "upload", only_one=True)
    return web.json_response({"channel": slug, "token": token}, status=201)


@routes.get("/api/channels/{slug}/uploads")
async def list_uploads(request: web.Request) -> web.Response:
    """Admin or upload token: the channel's uploads, newest first."""
    slug = await channel_in_path(request)
    await require_uploader(request, slug)
    rows = await store.of_channel(request.app[DB], slug)
    return web.json_response([upload_json(r) for r in rows])


@routes.get("/api/channels/{slug}/videos")
async def list_videos(request: web.Request) -> web.Response:
    """The channel's videos, newest first, with progress while they transcode."""
    slug = await channel_in_path(request)
    rows = await store.videos_of_channel(request.app[DB], slug)
    return web.json_response([video_json(r) for r in rows])


@routes.delete("/api/videos/{id}")
async def delete_video(request: web.Request) -> web.Response:
    """Admin or the channel's upload token: delete a video (its job stops, its files go)."""
    vid = request.match_info["id"]
    if not VIDEO_ID_RE.match(vid):
        raise NotFound(f"no video {vid[:40]}")
    row = await store.get_video(request.app[DB], vid)
    if row is None or row["state"] == "deleted":
        raise NotFound(f"no video {vid}")
    await require_uploader(request, row["channel"])
    await request.app[UPLOADS].jobs.delete(vid)
    return web.Response(status=204)


async def _ready_dir(request: web.Request) -> tuple[str, str]:
    slug = path_slug(request)
    vid = request.match_info["id"]
    if not VIDEO_ID_RE.match(vid):
        raise NotFound("no such file")
    if await store.video_state(request.app[DB], vid, slug) != "ready":
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
    path = request.app[UPLOADS].paths.video_dir(slug, vid) / name
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
    path = request.app[UPLOADS].paths.video_dir(slug, vid) / rendition / name
    if not path.is_file():
        raise NotFound("no such file")
    return _file(path, name)
