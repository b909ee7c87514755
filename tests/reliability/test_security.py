"""Security via the public nginx: no secret in any log, private paths closed, no slug squatting."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
import socketio

from server.ops.nginx import nginx_binary
from server.settings import Settings
from tests.chat.conftest import Chatter
from tests.conftest import (
    ADMIN,
    ADMIN_TOKEN,
    ServeProcess,
    create_channel,
    create_moderator,
    ffmpeg_pids,
    get_json,
    running_nginx,
    stop_process,
    wait_until,
)
from tests.reliability.conftest import push_file

Connect = Callable[..., Awaitable[Chatter]]
pytestmark = [pytest.mark.media, pytest.mark.slow]

# Spellings of the private paths a public client might try; nginx normalises the path
# before it matches a location, and whatever reaches the server must not be them either.
PRIVATE = [
    ("POST", "/hooks/rtmp/publish"),
    ("POST", "//hooks/rtmp/publish"),
    ("POST", "/hooks/../hooks/rtmp/publish_done"),
    ("POST", "/%68ooks/rtmp/update"),
    ("POST", "/hooks%2Frtmp%2Fpublish"),
    ("POST", "/api/../hooks/rtmp/publish"),
    ("GET", "/metrics"),
    ("GET", "/metrics?format=text"),
    ("GET", "/./metrics"),
    ("GET", "/api/../metrics"),
    ("GET", "/%6detrics"),
    ("GET", "/metrics/"),
    ("GET", "/rtmp_stat"),
    ("GET", "//rtmp_stat"),
    ("GET", "//rtmp_stat/"),
]


async def from_outside(base: str, method: str, path: str) -> tuple[int, str]:
    """A request from 127.0.0.2: not the 127.0.0.1 that nginx's allow lists name."""
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.request(
            method,
            base + path,
            data="name=x&clientid=1&app=live",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            skip_auto_headers=["User-Agent"],
        ) as response,
    ):
        return response.status, await response.text()


async def test_private_endpoints_are_closed_on_the_public_server(
    settings: Settings, serve_process: ServeProcess
) -> None:
    async with running_nginx(settings):
        await serve_process(settings)
        public = f"http://127.0.0.1:{settings.http_port}"
        for method, path in PRIVATE:
            status, body = await from_outside(public, method, path)
            assert status in (403, 404, 405), (path, status, body[:200])
            assert "onair_" not in body and "<rtmp>" not in body, path
        # The pages people do see carry the security headers through nginx.
        await create_channel(f"http://127.0.0.1:{settings.server_port}", "sec")
        for page in ("/", "/watch/sec"):
            connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
            async with (
                aiohttp.ClientSession(connector=connector) as session,
                session.get(public + page) as response,
            ):
                assert response.status == 200
                headers = response.headers
                assert headers["X-Content-Type-Options"] == "nosniff"
                assert headers["X-Frame-Options"] == "DENY"
                assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
                assert "script-src" in headers["Content-Security-Policy"]


async def test_nginx_health_is_closed_on_the_public_server(
    settings: Settings, serve_process: ServeProcess
) -> None:
    async with running_nginx(settings):
        status, _ = await from_outside(
            f"http://127.0.0.1:{settings.http_port}", "GET", "/nginx-health"
        )
        assert status == 403


async def test_a_slug_is_not_a_stream_key(
    settings: Settings, serve_process: ServeProcess, tiny_flv: Path
) -> None:
    async with running_nginx(settings):
        server = await serve_process(settings)
        await create_channel(server.url, "victim")
        await create_channel(server.url, "mallory")
        for guess in ("victim", "mallory", "Victim", "victim ", "live/victim"):
            url = f"rtmp://127.0.0.1:{settings.rtmp_port}/live/{guess}"
            squatter = await push_file(tiny_flv, url)
            assert await asyncio.wait_for(squatter.wait(), 30) != 0, guess
        for slug in ("victim", "mallory"):
            _, body = await get_json(f"{server.url}/api/channels/{slug}")
            assert body["live"] is False
        assert "hook rejected kind=publish reason='unknown key'" in server.log()


async def test_admin_moderator_and_hook_secrets_never_reach_a_log(
    settings: Settings, serve_process: ServeProcess, connect: Connect
) -> None:
    async with running_nginx(settings) as prefix:
        server = await serve_process(settings, log_level="DEBUG")
        public = f"http://127.0.0.1:{settings.http_port}"
        key = await create_channel(public, "quiet")
        token = await create_moderator(public, "quiet")
        wrong_admin = "wrong-admin-token-0123456789abcdef"
        wrong_moderator = "wrong-moderator-token-0123456789abcdef"
        async with aiohttp.ClientSession() as session:
            for auth in (ADMIN, {"Authorization": f"Bearer {wrong_admin}"}):
                async with session.get(f"{public}/api/channels/quiet/moderators", headers=auth):
                    pass
        mod = await connect(public, "10.4.0.1", token=token)
        assert (await mod.call("join", {"channel": "quiet"}))["ok"]
        assert (await mod.call("message", {"channel": "quiet", "text": "hello"}))["ok"]
        assert (await mod.call("slow_mode", {"channel": "quiet", "seconds": 0}))["ok"]
        with pytest.raises(socketio.exceptions.ConnectionError):
            await connect(public, "10.4.0.2", token=wrong_moderator)
        await mod.sio.disconnect()
        logs = {"server": server.log()}
        for path in prefix.rglob("*.log"):
            logs[str(path)] = path.read_text(errors="replace")
        secrets = {
            "admin token": ADMIN_TOKEN,
            "wrong admin token": wrong_admin,
            "moderator token": token,
            "wrong moderator token": wrong_moderator,
            "hook secret": settings.hook_secret,
            "stream key": key,
        }
        assert "chat join channel=quiet" in logs["server"]  # the log did see the session
        for where, text in logs.items():
            for what, secret in secrets.items():
                assert secret not in text, f"{what} in {where}"


def compiled_log_paths() -> list[Path]:
    """The log files nginx writes when a config names none (`nginx -V`: --*-log-path=)."""
    found = subprocess.run(
        [nginx_binary(), "-V"], capture_output=True, text=True, check=True
    ).stderr
    paths = re.findall(r"--(?:http-log|error-log)-path=(\S+)", found)
    return [Path(p) for p in paths if p.startswith("/")]


async def test_a_stream_key_used_to_publish_reaches_no_log(
    settings: Settings, serve_process: ServeProcess, tiny_flv: Path
) -> None:
    async with running_nginx(settings) as prefix:
        server = await serve_process(settings, log_level="DEBUG")
        key = await create_channel(server.url, "secretive")
        publisher = await push_file(tiny_flv, f"rtmp://127.0.0.1:{settings.rtmp_port}/live/{key}")

        async def live(want: bool) -> bool:
            return (await get_json(f"{server.url}/api/channels/secretive"))[1]["live"] is want

        await wait_until(lambda: live(True), 30, "the channel to go live")
        await stop_process(publisher, signal.SIGINT)
        await wait_until(lambda: live(False), 30, "the channel to go offline")
        logs = [server.log_path, *prefix.rglob("*"), *compiled_log_paths()]
        # nginx-rtmp logs a session when it closes: give a worker that is still writing a moment.
        await asyncio.sleep(1)
    for path in logs:
        if path.is_file():
            assert key.encode() not in path.read_bytes(), f"stream key in {path}"
    assert "publish accepted channel=secretive" in server.log()


def process_environ(pid: int) -> str:
    """A process's environment as /proc shows it (NUL-separated NAME=value)."""
    return Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")


async def test_ffmpeg_starts_without_the_servers_secrets(
    settings: Settings,
    serve_process: ServeProcess,
    publish,  # type: ignore[no-untyped-def]
) -> None:
    """The server's environment holds the admin token, the hook secret, the secret key and
    the database URL (a password, where it has one); a live ladder's FFmpeg gets none of it."""
    async with running_nginx(settings):
        server = await serve_process(settings)
        key = await create_channel(server.url, "envless")
        await publish(f"rtmp://127.0.0.1:{settings.rtmp_port}/live/{key}", size="320x240")
        pids: list[int] = []

        async def ladder_running() -> bool:
            nonlocal pids
            pids = ffmpeg_pids(settings.media_root / "live")
            return bool(pids)

        await wait_until(ladder_running, 60, "the ladder's FFmpeg to run")
        environ = process_environ(pids[0])
        server_environ = process_environ(server.process.pid)
        assert settings.database_url is not None
        secrets = {
            "admin token": ADMIN_TOKEN,
            "hook secret": settings.hook_secret,
            "secret key": settings.secret_key,
            "database URL": settings.database_url,
        }
        for what, secret in secrets.items():
            assert secret in server_environ, what  # the test holds what it means to
            assert secret not in environ, f"the {what} reached FFmpeg's environment"
        assert "ONAIR_" not in environ
        names = sorted(entry.split("=", 1)[0] for entry in environ.split("\0") if entry)
        assert "PATH" in names, names
