"""Arbitrary text in every path parameter (and the message page's query): a JSON 4xx, never a
500, never a file from outside the media volume."""

from __future__ import annotations

import http.client
import json
from urllib.parse import quote, urlsplit

import hypothesis
import pytest
import requests
from hypothesis import strategies as st

from tests.fuzz.conftest import FuzzServer

# Each has one {} for the drawn text; (method, template, admin, json_errors).
TARGETS = [
    ("GET", "/api/channels/{}", False, True),
    ("DELETE", "/api/channels/{}", True, True),
    ("POST", "/api/channels/{}/rotate-key", True, True),
    ("GET", "/api/channels/{}/messages", False, True),
    ("GET", "/api/channels/demo/messages?limit={}", False, True),
    ("GET", "/api/channels/demo/messages?before={}", False, True),
    ("GET", "/api/channels/{}/moderators", True, True),
    ("POST", "/api/channels/{}/moderators", True, True),
    ("DELETE", "/api/channels/demo/moderators/{}", True, True),
    ("DELETE", "/api/channels/{}/moderators/1", True, True),
    ("GET", "/api/channels/{}/recordings", False, True),
    ("DELETE", "/api/recordings/{}", True, True),
    ("GET", "/api/webhooks/{}/deliveries", True, True),
    ("POST", "/api/webhooks/1/deliveries/{}/redeliver", True, True),
    ("GET", "/hls/{}/master.m3u8", False, True),
    ("GET", "/hls/demo/{}/index.m3u8", False, True),
    ("GET", "/hls/{}/360p/index.m3u8", False, True),
    ("GET", "/vod/{}/0190a1b2c3d4e5f6a7b8/index.m3u8", False, True),
    ("GET", "/vod/demo/{}/video.mp4", False, True),
    ("GET", "/vod/demo/0190a1b2c3d4e5f6a7b8/{}", False, True),
    ("GET", "/thumb/{}.jpg", False, True),
    # The watch page answers a person: its 404 is an HTML page, not JSON.
    ("GET", "/watch/{}", False, False),
]
# Pieces that have opened files elsewhere: traversal, encoded traversal, NUL, separators,
# digits int() refuses, and the names of the canary files planted beside MEDIA_DIR.
NASTY = [
    "..",
    ".",
    "/",
    "\\",
    "%2e%2e",
    "%2E%2E",
    "%252e%252e",
    "..%2f",
    "%2f",
    "%5c",
    "%00",
    "\x00",
    "%ff",
    "~",
    "²",
    "١٢",
    "\u202e",
    "\ud7ff",
    "😀",
    "canary.txt",
    "master.m3u8",
    "index.m3u8",
    "live",
    "recordings",
    "0190a1b2c3d4e5f6a7b8",
    "a" * 41,
    "1" * 19,
]
# How the text goes on the wire: fully escaped, or with separators and escapes left as sent.
SAFE = ["", "/", "%", "/.%", "/%\\"]
MAX_TEXT = 300  # escaped, this still fits aiohttp's 8 KiB request line

segments = st.one_of(
    st.text(max_size=MAX_TEXT),
    st.lists(st.sampled_from(NASTY), min_size=1, max_size=8).map("".join),
    st.lists(st.one_of(st.sampled_from(NASTY), st.text(max_size=4)), max_size=12).map("/".join),
)


def send(server: FuzzServer, method: str, target: str, admin: bool) -> tuple[int, str, bytes]:
    """One request with the target exactly as given: no client-side normalising of `..`."""
    address = urlsplit(server.url)
    conn = http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)
    try:
        headers = {"Content-Type": "application/json", **(server.admin if admin else {})}
        body = b"{}" if method == "POST" else None
        conn.request(method, target, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def with_demo(fuzz_server: FuzzServer) -> FuzzServer:
    """Channel `demo` exists, so routes that name it reach their own validation."""
    requests.post(
        f"{fuzz_server.url}/api/channels",
        json={"slug": "demo"},
        headers=fuzz_server.admin,
        timeout=10,
    )
    return fuzz_server


@pytest.mark.parametrize(("method", "template", "admin", "json_errors"), TARGETS)
@hypothesis.settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)
@hypothesis.given(text=segments, safe=st.sampled_from(SAFE))
@hypothesis.example(text="../../canary.txt", safe="/.")
@hypothesis.example(text="%2e%2e/%2e%2e/canary.txt", safe="/%")
@hypothesis.example(text="..%2f..%2fcanary.txt", safe="%")
@hypothesis.example(text="de\x00mo", safe="")
@hypothesis.example(text="x" * 4000, safe="")
@hypothesis.example(text="²", safe="")
def test_path_parameter(
    with_demo: FuzzServer,
    method: str,
    template: str,
    admin: bool,
    json_errors: bool,
    text: str,
    safe: str,
) -> None:
    """Whatever the text, a 4xx (JSON for the API), never a 5xx, never the canary."""
    # Surrogates cannot be UTF-8; escape them the way a client sending raw bytes would.
    value = quote(text.encode("utf-8", "surrogatepass"), safe=safe)
    target = template.format(value)
    status, content_type, body = send(with_demo, method, target, admin)
    assert with_demo.canary not in body, f"{method} {target} served a file outside MEDIA_DIR"
    # A query value may be valid (`limit=5`); a path value never names something that exists.
    allowed = (200, 400) if "?" in template else (400, 404, 405)
    assert status in allowed, f"{method} {target} -> {status} {body[:200]!r}"
    if json_errors and status >= 400:
        assert content_type.startswith("application/json"), f"{target}: {content_type}"
        error = json.loads(body)["error"]
        assert isinstance(error, str)


def test_request_line_too_long(with_demo: FuzzServer) -> None:
    """Past aiohttp's 8 KiB request line the HTTP parser refuses it: a 4xx, not a crash."""
    status, _, body = send(with_demo, "GET", "/api/channels/" + "a" * 10_000, False)
    assert 400 <= status < 500, body[:200]
