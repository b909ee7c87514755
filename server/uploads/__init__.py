"""Uploads: tus 1.0 resumable uploads into MEDIA_DIR/uploads, then a VOD ladder per video.

store.py is the two state machines in SQL, service.py the app-long lifecycle (space checks,
acceptance, termination, expiry), jobs.py the VOD queue under the compression gate, probe.py
ffprobe, tus.py the protocol, api.py tokens, listings, deletion and the ladder's files.
"""

from aiohttp import web

from server.uploads import api, tus
from server.uploads.service import Uploads, uploads

routes: list[web.AbstractRouteDef] = [*tus.routes, *api.routes]

__all__ = ["Uploads", "routes", "uploads"]
