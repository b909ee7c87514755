"""HTTP metrics and GET /metrics; every metric name starts with onair_ (each capability
defines its own in its package)."""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from server.web.errors import Handler

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
