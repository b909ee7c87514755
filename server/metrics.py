"""HTTP metrics and /metrics; every metric name starts with onair_."""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from server.errors import Handler

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class HttpStats(Collector):
    """Requests by route, method and status, and their latency, counted in plain ints.

    Every request passes here, so it is the hottest metric: a prometheus `labels()` lookup
    plus locked increments cost ~10 % of a playlist request; a dict update costs ~1 %.
    Exposed as `onair_http_requests_total` and `onair_http_request_duration_seconds`.
    """

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = buckets
        self.requests: dict[tuple[str, str, int], int] = {}
        # (route, method) -> per-bucket counts (the last one is +Inf) and the sum of seconds.
        self.latency: dict[tuple[str, str], tuple[list[int], list[float]]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """One answered request. The server is one thread: no lock is needed."""
        key = (route, method, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        hist = self.latency.get((route, method))
        if hist is None:
            hist = self.latency[route, method] = ([0] * (len(self.bounds) + 1), [0.0])
        hist[0][bisect_left(self.bounds, seconds)] += 1
        hist[1][0] += seconds

    def collect(self) -> Iterator[Metric]:
        """The two metric families, as a Counter and a Histogram would expose them."""
        requests = CounterMetricFamily(
            "onair_http_requests_total",
            "HTTP requests answered",
            labels=["route", "method", "status"],
        )
        for (route, method, status), count in self.requests.items():
            requests.add_metric([route, method, str(status)], count)
        yield requests
        latency = HistogramMetricFamily(
            "onair_http_request_duration_seconds",
            "Time to answer an HTTP request",
            labels=["route", "method"],
        )
        les = [*map(floatToGoString, self.bounds), "+Inf"]
        for (route, method), (counts, total) in self.latency.items():
            cumulative, buckets = 0, []
            for bound, count in zip(les, counts, strict=True):
                cumulative += count
                buckets.append((bound, float(cumulative)))
            latency.add_metric([route, method], buckets, sum_value=total[0])
        yield latency


HTTP_STATS = HttpStats()
REGISTRY.register(HTTP_STATS)
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
CHAT_REDIS_DEGRADED = Gauge(
    "onair_chat_redis_degraded",
    "1 while Redis is unreachable and this process serves chat to its own clients only",
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
        HTTP_STATS.observe(
            route_name(request), request.method, status, time.perf_counter() - started
        )


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition."""
    response = web.Response(body=generate_latest())
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return response
