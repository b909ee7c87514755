"""Schemathesis against a real, receiving upload: garbage PATCH/HEAD answers 4xx, never 5xx."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from schemathesis import Case, GenerationMode

from tests.fuzz.conftest import FuzzServer, fuzz_server  # noqa: F401 (the fixture)

DOCUMENT = Path(__file__).parents[2] / "server" / "web" / "openapi.json"
MAX_EXAMPLES = 40

schema = schemathesis.openapi.from_dict(json.loads(DOCUMENT.read_text())).include(
    path="/api/uploads/{id}", method=["PATCH", "HEAD"]
)
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=MAX_EXAMPLES,
    deterministic=True,
)


@pytest.fixture(scope="module")
def upload(fuzz_server: FuzzServer) -> tuple[FuzzServer, str]:  # noqa: F811
    """Channel `tus` and one upload of 1 MiB waiting for bytes."""
    requests.post(
        f"{fuzz_server.url}/api/channels",
        json={"slug": "tus", "title": "tus"},
        headers=fuzz_server.admin,
        timeout=10,
    )
    response = requests.post(
        f"{fuzz_server.url}/api/channels/tus/uploads",
        headers={**fuzz_server.admin, "Tus-Resumable": "1.0.0", "Upload-Length": str(1 << 20)},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return fuzz_server, response.headers["Location"].rsplit("/", 1)[1]


@schema.parametrize()
@hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_tus_requests_on_a_real_upload(case: Case[Any], upload: tuple[FuzzServer, str]) -> None:
    """Whatever the headers and body, a real upload answers 2xx or 4xx, with tus headers."""
    server, uid = upload
    case.path_parameters = {"id": uid}
    response = case.call(base_url=server.url, headers=server.admin, timeout=10)
    assert response.status_code < 500, response.text[:300]
    if response.status_code != 405:  # a method the route lacks never reaches the tus handler
        assert response.headers.get("tus-resumable") == ["1.0.0"]
    if response.status_code >= 400 and case.method.upper() != "HEAD":
        assert isinstance(response.json().get("error"), str)
