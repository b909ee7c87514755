"""A stand-in for a streaming platform (YouTube, Twitch) on loopback: a separate nginx-rtmp
that takes any publish on application live2, as YouTube names it, optionally behind a TLS
front (nginx's stream module). The simulcast tests and bench/relay.py send relays to it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import xml.etree.ElementTree as ET
from pathlib import Path

import aiohttp

from bench.harness import open_tempdir, stop_process, wait_until
from server.ops.stack import free_port

STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")
RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")


class Platform:
    """A separate nginx-rtmp that takes any publish on application live2."""

    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        self.prefix = open_tempdir("onair-platform-")
        self.rtmp_port = free_port()
        self.http_port = free_port()
        self.tls_port = free_port() if tls else None
        self.tls = tls
        self.process: asyncio.subprocess.Process | None = None

    def server(self, host: str = "127.0.0.1") -> str:
        """The server URL a streamer types (rtmps:// through the TLS front when there is one)."""
        if self.tls_port:
            return f"rtmps://{host}:{self.tls_port}/live2"
        return f"rtmp://{host}:{self.rtmp_port}/live2"

    def play_url(self, key: str) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live2/{key}"

    def _config(self) -> str:
        stream = ""
        if self.tls:
            cert, key = self.tls
            stream = f"""
stream {{
    server {{
        listen 127.0.0.1:{self.tls_port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        proxy_pass 127.0.0.1:{self.rtmp_port};
    }}
}}"""
        return f"""
load_module {RTMP_MODULE};
{"load_module " + str(STREAM_MODULE) + ";" if self.tls else ""}
worker_processes 1;
daemon off;
pid {self.prefix}/nginx.pid;
error_log {self.prefix}/error.log info;
events {{ worker_connections 256; }}
rtmp {{
    server {{
        listen 127.0.0.1:{self.rtmp_port};
        application live2 {{ live on; }}
    }}
}}
http {{
    access_log off;
    client_body_temp_path {self.prefix}/body;
    proxy_temp_path {self.prefix}/proxy;
    fastcgi_temp_path {self.prefix}/fastcgi;
    uwsgi_temp_path {self.prefix}/uwsgi;
    scgi_temp_path {self.prefix}/scgi;
    server {{
        listen 127.0.0.1:{self.http_port};
        location /stat {{ rtmp_stat all; }}
    }}
}}
{stream}
"""

    async def start(self) -> None:
        conf = self.prefix / "nginx.conf"
        conf.write_text(self._config())
        self.process = await asyncio.create_subprocess_exec(
            "nginx", "-p", str(self.prefix), "-c", str(conf), "-e", str(self.prefix / "error.log"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # kill() takes the workers too
        )  # fmt: skip

        async def up() -> bool:
            if self.process is not None and self.process.returncode is not None:
                log = (self.prefix / "error.log").read_text()[-800:]
                raise AssertionError(f"the platform's nginx exited: {log}")
            return await self.answers()

        await wait_until(up, 20, "the platform's nginx to answer", interval=0.05)

    async def kill(self) -> None:
        """Gone without a word, as a platform's ingest that crashed."""
        if self.process is not None and self.process.returncode is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()

        async def workers_gone() -> bool:
            return not await self.answers()

        await wait_until(workers_gone, 10, "the platform's nginx workers to die")

    async def answers(self) -> bool:
        try:
            await self.stat()
            return True
        except (aiohttp.ClientError, OSError):
            return False

    async def stop(self) -> None:
        if self.process is not None:
            await stop_process(self.process)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)  # workers a killed master left
        shutil.rmtree(self.prefix, ignore_errors=True)

    async def stat(self) -> ET.Element:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{self.http_port}/stat") as response,
        ):
            return ET.fromstring(await response.text())

    async def streams(self) -> dict[str, int]:
        """Stream name -> bytes received, of every stream being published to live2."""
        root = await self.stat()
        return {
            s.findtext("name", ""): int(s.findtext("bytes_in", "0"))
            for s in root.iter("stream")
            if s.find("publishing") is not None
        }
