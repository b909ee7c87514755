"""Arbitrary JSON text in request bodies and arbitrary bytes in the admin header: never a 500."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import hypothesis
from hypothesis import strategies as st

from tests.fuzz.conftest import FuzzServer

# Every code point, lone surrogates and NUL included: JSON can spell them all ("\ud800").
ANY_TEXT = st.text(st.characters(codec=None, categories=None), max_size=250)
SETTINGS = hypothesis.settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)


def post(server: FuzzServer, path: str, body: bytes, auth: bytes) -> tuple[int, bytes]:
    """POST raw bytes with a raw Authorization header."""
    address = urlsplit(server.url)
    conn = http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)
    try:
        conn.putrequest("POST", path)
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Authorization", auth)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def assert_json_4xx(status: int, body: bytes) -> None:
    """DESIGN: bad input is a 4xx with `{"error": "..."}`."""
    assert 400 <= status < 500, f"{status} {body[:200]!r}"
    assert isinstance(json.loads(body)["error"], str)


@SETTINGS
@hypothesis.given(title=ANY_TEXT)
@hypothesis.example(title="a\x00b")
@hypothesis.example(title="\ud800")
def test_channel_title(fuzz_server: FuzzServer, title: str) -> None:
    """Any title is stored (201) or refused with a JSON 400."""
    body = json.dumps({"slug": "t", "title": title}).encode()
    status, answer = post(
        fuzz_server, "/api/channels", body, fuzz_server.admin["Authorization"].encode()
    )
    if status == 201:
        address = urlsplit(fuzz_server.url)
        conn = http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)
        conn.request("DELETE", "/api/channels/t", headers=fuzz_server.admin)
        assert conn.getresponse().status == 204
        conn.close()
        return
    assert_json_4xx(status, answer)


@SETTINGS
@hypothesis.given(name=ANY_TEXT)
def test_moderator_name(fuzz_server: FuzzServer, name: str) -> None:
    """Any moderator name is accepted (201) or refused with a JSON 4xx."""
    auth = fuzz_server.admin["Authorization"].encode()
    post(fuzz_server, "/api/channels", b'{"slug": "mods"}', auth)
    body = json.dumps({"name": name}).encode()
    status, answer = post(fuzz_server, "/api/channels/mods/moderators", body, auth)
    if status != 201:
        assert_json_4xx(status, answer)


@SETTINGS
@hypothesis.given(value=st.binary(max_size=200).filter(lambda b: not set(b) & set(b"\r\n\x00")))
@hypothesis.example(value=b"Bearer \xe9\xff")
def test_admin_header_bytes(fuzz_server: FuzzServer, value: bytes) -> None:
    """Any Authorization bytes short of the token are a JSON 401 (or the parser's 400)."""
    status, answer = post(fuzz_server, "/api/channels", b"{}", value)
    assert status in (400, 401), f"{status} {answer[:200]!r}"
    if status == 401:
        assert_json_4xx(status, answer)
