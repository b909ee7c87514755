"""Schemathesis drives every operation in server/web/openapi.json: no 5xx, every error is JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from schemathesis import Case, CheckContext, GenerationMode, Response

from server.app import create_app
from tests.fuzz.conftest import FuzzServer

DOCUMENT = Path(__file__).parents[2] / "server" / "web" / "openapi.json"
# Enough to reach each handler's validation and database paths; small enough for CI on 2 cores.
MAX_EXAMPLES = 25

schema = schemathesis.openapi.from_dict(json.loads(DOCUMENT.read_text()))
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=MAX_EXAMPLES,
    deterministic=True,
)


def error_is_json(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """DESIGN: every 4xx body is `{"error": "..."}` (HEAD has no body to check)."""
    if response.status_code < 400 or case.method.upper() == "HEAD":
        return None
    body = response.json()
    assert isinstance(body, dict), f"error body is not a JSON object: {response.text[:200]!r}"
    assert isinstance(body.get("error"), str), f"error body has no error string: {body!r}"
    return None


@pytest.fixture
def seeded(fuzz_server: FuzzServer) -> FuzzServer:
    """A channel named like the schema's example, so reads and admin writes go past the 404."""
    requests.post(
        f"{fuzz_server.url}/api/channels",
        json={"slug": "demo", "title": "Demo"},
        headers=fuzz_server.admin,
        timeout=10,
    )
    return fuzz_server


@schema.parametrize()
@hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_api(case: Case[Any], seeded: FuzzServer) -> None:
    """Zero server errors, and every error answer is the JSON error shape."""
    response = case.call(base_url=seeded.url, headers=seeded.admin, timeout=10)
    if case.path == "/healthz" and response.status_code == 503:
        # No nginx runs beside this app, so its 503 is the documented answer, not a crash.
        assert set(response.json()) == {"status", "checks"}
        return
    case.validate_response(
        response,
        checks=[schemathesis.checks.not_a_server_error, error_is_json],
        headers=seeded.admin,
    )


def test_document_is_served_and_complete(fuzz_server: FuzzServer) -> None:
    """GET /api/openapi.json is server/web/openapi.json; it names every /api route the app has."""
    served = requests.get(f"{fuzz_server.url}/api/openapi.json", timeout=10)
    assert served.status_code == 200
    assert served.headers["Content-Type"].startswith("application/json")
    document = served.json()
    assert document == json.loads(DOCUMENT.read_text())
    documented = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    app = create_app(fuzz_server.settings)  # built, never started: only its routes are read
    routes = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
        and (route.resource.canonical.startswith("/api/") or route.resource.canonical == "/healthz")
        and route.method != "HEAD"
    }
    assert routes - documented == set()
