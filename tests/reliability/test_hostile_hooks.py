"""nginx-rtmp hooks under hostile input: fuzzed forms get 2xx/4xx, a slow sender blocks no one."""

from __future__ import annotations

import asyncio
import http.client
import time
from urllib.parse import urlencode, urlsplit

import hypothesis
import pytest
from hypothesis import strategies as st

from tests.fuzz.conftest import FuzzServer

HOOKS = ("publish", "publish_done", "update")
FIELD = st.text(st.characters(codec=None, categories=None), max_size=40)
FORMS = st.dictionaries(
    st.one_of(st.sampled_from(["name", "clientid", "app", "addr", "call", "tcurl"]), FIELD),
    st.one_of(FIELD, st.text(max_size=600)),
    max_size=8,
)
SETTINGS = hypothesis.settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)


def hook(
    server: FuzzServer, kind: str, body: bytes, content_type: str, secret: str | None = None
) -> int:
    """POST a hook body; the HTTP status."""
    address = urlsplit(server.url)
    conn = http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)
    query = urlencode({"secret": server.settings.hook_secret if secret is None else secret})
    try:
        conn.request("POST", f"/hooks/rtmp/{kind}?{query}", body, {"Content-Type": content_type})
        return conn.getresponse().status
    finally:
        conn.close()


def surrogate_safe(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


@SETTINGS
@hypothesis.given(kind=st.sampled_from(HOOKS), form=FORMS)
@hypothesis.example(kind="publish", form={"name": "x" * 600, "clientid": "1"})
@hypothesis.example(kind="publish", form={"name": "\x00", "clientid": "\ud800", "app": "live"})
@hypothesis.example(kind="update", form={"name": "k", "clientid": "1", "app": "../live"})
def test_fuzzed_hook_forms_are_never_5xx(
    fuzz_server: FuzzServer, kind: str, form: dict[str, str]
) -> None:
    """Any form nginx-rtmp could be tricked into sending is allowed, refused or renamed."""
    body = urlencode({k: surrogate_safe(v) for k, v in form.items()}).encode()
    status = hook(fuzz_server, kind, body, "application/x-www-form-urlencoded")
    assert status in (200, 302, 400, 403), status


@SETTINGS
@hypothesis.given(
    kind=st.sampled_from(HOOKS),
    body=st.binary(max_size=2000),
    content_type=st.sampled_from(
        ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain", ""]
    ),
    secret=st.one_of(st.none(), st.text(max_size=30)),
)
def test_fuzzed_hook_bytes_are_never_5xx(
    fuzz_server: FuzzServer, kind: str, body: bytes, content_type: str, secret: str | None
) -> None:
    """Raw bytes under any content type, with or without the secret: 2xx or 4xx."""
    status = hook(fuzz_server, kind, body, content_type, secret)
    assert 200 <= status < 500, status


@pytest.mark.slow
async def test_a_hook_sent_byte_by_byte_blocks_no_other_hook(fuzz_server: FuzzServer) -> None:
    """A sender trickling its body keeps only its own request waiting."""
    address = urlsplit(fuzz_server.url)
    body = urlencode({"name": "nobody-key", "clientid": "slow", "app": "live"}).encode()
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    secret = urlencode({"secret": fuzz_server.settings.hook_secret})
    writer.write(
        f"POST /hooks/rtmp/publish_done?{secret} HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    await writer.drain()
    form = urlencode({"name": "k", "clientid": "9"}).encode()
    slowest = 0.0
    for i, byte in enumerate(body):
        writer.write(bytes([byte]))
        await writer.drain()
        if i % 8 == 0:  # meanwhile, nginx's other hooks get their answers at once
            started = time.monotonic()
            status = await asyncio.to_thread(
                hook, fuzz_server, "update", form, "application/x-www-form-urlencoded"
            )
            slowest = max(slowest, time.monotonic() - started)
            assert status == 200
        await asyncio.sleep(0.05)
    status_line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    await writer.wait_closed()
    assert status_line.startswith(b"HTTP/1.1 200"), status_line
    assert slowest < 2.0, slowest
