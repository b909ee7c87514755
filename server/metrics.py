"""HTTP metrics and /metrics; every metric name starts with onair_."""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from server.errors import Handler

HTTP_REQUESTS = Counter(
    "onair_http_requests_total", "HTTP requests answered", ["route", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "onair_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
HOOK_DECISIONS = Counter(
    "onair_ingest_hook_decisions_total", "nginx-rtmp hook answers", ["hook", "decision"]
)
PLAYLIST_REQUESTS = Counter(
    "onair_hls_playlist_requests_total", "Playlist requests through the server", ["result"]
)
VIEWERS_GAUGE = Gauge("onair_hls_viewers", "Viewer sessions per channel", ["channel"])
RECORDINGS = Gauge("onair_recordings", "Recordings by state (deleted ones not counted)", ["state"])
RECORDINGS_BYTES = Gauge(
    "onair_recordings_stored_bytes", "Bytes of recordings kept, by state", ["state"]
)
COMPRESS_BACKLOG = Gauge(
    "onair_recordings_compress_backlog", "Finalized recordings waiting for H.265 compression"
)
COMPRESS_BACKLOG_SECONDS = Gauge(
    "onair_recordings_compress_backlog_seconds", "Media seconds waiting for H.265 compression"
)
RECORDINGS_DELETED = Counter(
    "onair_recordings_deleted_total", "Recordings deleted, by reason: age, water, admin", ["reason"]
)
MEDIA_USED = Gauge("onair_media_used_bytes", "Bytes used on the media volume")
MEDIA_FREE = Gauge("onair_media_free_bytes", "Bytes free on the media volume")
MEDIA_SIZE = Gauge("onair_media_size_bytes", "Size of the media volume in bytes")


# Chat.
CHAT_CONNECTED = Gauge(
    "onair_chat_connected_clients", "Socket.IO clients connected to this process"
)
CHAT_ACCEPTED = Counter("onair_chat_messages_accepted_total", "Chat messages accepted")
CHAT_REJECTED = Counter(
    "onair_chat_messages_rejected_total", "Chat messages refused, by reason", ["reason"]
)
CHAT_FANOUT = Histogram(
    "onair_chat_fanout_seconds",
    "From accepting a message to handing it to every local client and the Redis bus",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
CHAT_PENDING = Gauge("onair_chat_pending_writes", "Accepted messages not yet written to PostgreSQL")
CHAT_WRITE_FAILURES = Counter(
    "onair_chat_write_failures_total", "Batched chat writes to PostgreSQL that failed and wait"
)
CHAT_DROPPED = Counter(
    "onair_chat_messages_dropped_total",
    "Accepted messages never stored (channel deleted, or the write buffer overflowed)",
)


def route_name(request: web.Request) -> str:
    """The route's pattern (`/api/channels/{slug}`), so labels stay bounded whatever the path."""
    route = request.match_info.route
    resource = route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count and time every request by route."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as err:
        status = err.status
        raise
    finally:
        route = route_name(request)
        HTTP_REQUESTS.labels(route, request.method, str(status)).inc()
        HTTP_LATENCY.labels(route, request.method).observe(time.perf_counter() - started)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition."""
    response = web.Response(body=generate_latest())
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return response
