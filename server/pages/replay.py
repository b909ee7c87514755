"""A past broadcast's page: the recording plays with its chat scrolling in sync.

The page carries the recording's clock (where it sits on the wall clock); replay.js fetches
the chat messages of the broadcast's time range and shows each when the video reaches it.
"""

from __future__ import annotations

import json

from aiohttp import web

from server.channels.store import CHANNELS
from server.db import DB
from server.pages.render import PAGES
from server.recordings import store
from server.recordings.store import ID_RE, PLAYABLE, recording_json
from server.web.errors import NotFound
from transcoder.layout import valid_slug

routes = web.RouteTableDef()


@routes.get("/watch/{slug}/recordings/{id}")
async def replay(request: web.Request) -> web.Response:
    """The recording in the player, its chat beside it in step with the video."""
    pages = request.app[PAGES]
    slug, rid = request.match_info["slug"], request.match_info["id"]
    missing = pages.render("not_found.html", status=404, slug=slug[:60],
                           missing="No such broadcast")  # fmt: skip
    if not valid_slug(slug) or not ID_RE.match(rid):
        return missing
    try:
        channel = await request.app[CHANNELS].get(slug)
    except NotFound:
        return missing
    row = await store.of_channel_one(request.app[DB], slug, rid)
    if row is None or row["state"] not in PLAYABLE:
        return missing
    recording = recording_json(row)
    return pages.render(
        "replay.html",
        channel=channel,
        recording=recording,
        clock=json.dumps(recording["clock"] or []),
    )
