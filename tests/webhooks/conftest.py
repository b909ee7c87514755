"""Webhook fixtures: a real HTTP receiver on 127.0.0.1 that can stop listening and come back
on the same port, settings that allow it and retry quickly, and helpers over the admin API."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from server.settings import Settings
from tests.conftest import ADMIN


@dataclass(frozen=True)
class Received:
    """One POST the receiver got, and the status it answered."""

    event: str
    delivery: int
    signature: str
    raw: bytes
    status: int
    at: float  # when it arrived, unix seconds

    @property
    def body(self) -> Any:
        return json.loads(self.raw)


def _reserve(port: int) -> socket.socket:
    """A socket bound to 127.0.0.1:`port` (0: any free one) and not listening: connections to
    it are refused, as to a receiver that is down, while no other process can take the port
    (a port only remembered could be, by a test running beside this one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


class Receiver:
    """Keeps every POST to /hook; answers what `answer(body)` says (200 unless told)."""

    def __init__(self) -> None:
        self._socket = _reserve(0)
        self.port: int = self._socket.getsockname()[1]
        self.got: list[Received] = []
        self.answer: Callable[[Any], int] = lambda body: 200
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def delivered(self) -> list[Received]:
        """What it took (2xx), in arrival order."""
        return [r for r in self.got if 200 <= r.status < 300]

    async def start(self) -> None:
        """Listen on the reserved port."""
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, self._socket).start()

    async def stop(self) -> None:
        """Stop listening: connections are refused until start()."""
        if self._runner is not None:
            await self._runner.cleanup()  # closes the listening socket
            self._runner = None
            self._socket = _reserve(self.port)

    def close(self) -> None:
        """Give the port back (after stop)."""
        self._socket.close()

    async def _hook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        status = self.answer(json.loads(raw))
        self.got.append(
            Received(
                request.headers["Onair-Event"],
                int(request.headers["Onair-Delivery"]),
                request.headers["Onair-Signature"],
                raw,
                status,
                time.time(),
            )
        )
        return web.Response(status=status)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A receiver, not yet listening: tests start it when they want it up."""
    made = Receiver()
    yield made
    await made.stop()
    made.close()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Receivers may be on loopback (the test's is); retries come after 0.2 s, at most 1 s."""
    return settings.with_changes(
        webhook_allow_private=True, webhook_retry_first_s=0.2, webhook_retry_max_s=1.0
    )


async def api(
    base_url: str, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """One admin API call (the admin token unless other headers are given): status and JSON."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, base_url + path, json=body, headers=ADMIN if headers is None else headers
        ) as response,
    ):
        return response.status, await response.json(content_type=None)


async def add_webhook(
    base_url: str, url: str, events: list[str], channels: list[str] | None = None
) -> tuple[int, str]:
    """A webhook through the admin API: its id and secret."""
    body: dict[str, Any] = {"url": url, "events": events}
    if channels is not None:
        body["channels"] = channels
    status, made = await api(base_url, "POST", "/api/webhooks", body)
    assert status == 201, made
    return int(made["id"]), str(made["secret"])


async def deliveries(base_url: str, webhook_id: int) -> list[dict[str, Any]]:
    """The webhook's delivery log, oldest first."""
    status, found = await api(base_url, "GET", f"/api/webhooks/{webhook_id}/deliveries")
    assert status == 200, found
    return list(reversed(found))
