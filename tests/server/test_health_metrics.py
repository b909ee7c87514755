"""/healthz names what failed; /metrics counts requests per route."""

from __future__ import annotations

from aiohttp.test_utils import TestClient


async def test_healthz_names_missing_nginx(client: TestClient) -> None:
    # No nginx listens on the configured port in this test: health must say so.
    response = await client.get("/healthz")
    assert response.status == 503
    body = await response.json()
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["disk"] == "ok"
    assert body["checks"]["nginx"].startswith("nginx: unreachable")
    assert "nginx" in body["status"]


async def test_metrics_count_requests_by_route(client: TestClient) -> None:
    for _ in range(3):
        await client.get("/api/channels/some-slug")
    text = await (await client.get("/metrics")).text()
    line = next(
        ln
        for ln in text.splitlines()
        if ln.startswith("onair_http_requests_total{")
        and 'route="/api/channels/{slug}"' in ln
        and 'status="404"' in ln
    )
    assert float(line.rsplit(" ", 1)[1]) >= 3
    assert "onair_http_request_duration_seconds_bucket" in text
    assert "some-slug" not in text  # labels are routes, not paths
