"""`onair up`: private PostgreSQL, the server and nginx as children, stopped together.

With `--workers N` (N > 1) it runs N servers, each on its own loopback port behind nginx, and
a private redis-server for their shared chat and viewer counts unless ONAIR_REDIS_URL is set;
a server that dies is started again while the others carry on (one of them takes over the
host's hooks and ladders, server/owner.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import os
import secrets
import signal
import socket
import sys
from dataclasses import dataclass

import aiohttp

from server.channels.store import ChannelStore
from server.db import migrate_url
from server.ops import keylog, nginx
from server.ops.pgcluster import ClusterError, PgCluster
from server.ops.redis import PrivateRedis, RedisError
from server.settings import Settings, secrets_file_values

log = logging.getLogger("onair.up")

DEMO_SLUG = "demo"
SECRET_NAMES = ("admin_token", "hook_secret", "secret_key")
# A worker that dies this often within RESTART_WINDOW_S is not started again: the stack stops.
RESTART_LIMIT = 5
RESTART_WINDOW_S = 60.0


class StackError(Exception):
    """`onair up` cannot go on; the message is for the person at the terminal."""


@dataclass
class Child:
    """A process `onair up` started and must stop."""

    name: str
    process: asyncio.subprocess.Process
    port: int | None = None  # a server's loopback port


def ensure_secrets(settings: Settings) -> Settings:
    """Secrets not given in the environment are generated once into DATA_DIR/secrets.toml (0600)."""
    stored = secrets_file_values(settings.data_dir)
    missing = [n for n in SECRET_NAMES if not getattr(settings, n) and n not in stored]
    if missing:
        stored.update({n: secrets.token_urlsafe(32) for n in missing})
        path = settings.data_dir / "secrets.toml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.writelines(f'{k} = "{v}"\n' for k, v in stored.items())
    given = {n: stored[n] for n in SECRET_NAMES if not getattr(settings, n)}
    return settings.with_changes(**given)


def check_port_free(host: str, port: int, what: str, flag: str) -> None:
    """Fail with a plain sentence when something already listens on the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise StackError(
                    f"port {port} ({what}) is already in use on {host}: "
                    f"stop whatever uses it or choose another with {flag}"
                ) from err
            if err.errno == errno.EACCES:
                raise StackError(
                    f"port {port} ({what}) needs root on this machine; use {flag}"
                ) from err
            raise


def free_port() -> int:
    """A loopback port nobody listens on right now (for the server behind nginx)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_environ(settings: Settings) -> dict[str, str]:
    """The child server's environment: every setting we resolved, as ONAIR_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONAIR_")}
    for item in dataclasses.fields(settings):
        value = getattr(settings, item.name)
        if value is None:
            continue
        # Tuples travel as the comma-separated lists their parsers read.
        text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
        env["ONAIR_" + item.name.upper()] = text
    env["ONAIR_MEDIA_DIR"] = str(settings.media_root)
    return env


async def wait_http(url: str, process: asyncio.subprocess.Process, timeout: float) -> None:
    """Poll until `url` answers at all (any status), or the process dies, or time runs out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with aiohttp.ClientSession() as session:
        while process.returncode is None:
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)):
                    return
            except (aiohttp.ClientError, TimeoutError):
                if loop.time() > deadline:
                    raise StackError(f"{url} did not answer within {timeout:.0f} s") from None
                await asyncio.sleep(0.1)
    raise StackError(f"the server exited with code {process.returncode} while starting")


async def ensure_demo_channel(database_url: str) -> str | None:
    """Create channel `demo` on first start; returns its key then, None on later starts."""
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        store = ChannelStore(conn)
        if await store.exists(DEMO_SLUG):
            return None
        _, key = await store.create(DEMO_SLUG, "Demo channel")
        return key
    finally:
        await conn.close()


def admin_token_hint(settings: Settings) -> str:
    """Where the admin token lives, without printing it."""
    if os.environ.get("ONAIR_ADMIN_TOKEN"):
        return "ONAIR_ADMIN_TOKEN from the environment"
    return f"admin_token in {settings.data_dir / 'secrets.toml'}"


def banner(settings: Settings, demo_key: str | None) -> str:
    """What a streamer and a viewer need, printed once the stack is up."""
    host = "localhost" if settings.http_host in ("0.0.0.0", "::") else settings.http_host
    rtmp = f"rtmp://{host}:{settings.rtmp_port}/live"
    key = demo_key or "(shown on first start; new one: onair channel rotate-key demo)"
    return "\n".join(
        [
            "Onair is up.",
            f"  OBS server:  {rtmp}",
            f"  Stream key:  {key}",
            f"  Watch:       {settings.base_url}/watch/{DEMO_SLUG}",
            f"  Admin token: {admin_token_hint(settings)}",
            f"  Data:        {settings.data_dir}",
            "Press Ctrl-C to stop.",
        ]
    )


class Stack:
    """Starts the children in dependency order and stops them in reverse."""

    def __init__(self, settings: Settings, ports: list[int] | None = None) -> None:
        """ports: each server's loopback port (default: settings.server_port, one server)."""
        self.settings = settings
        self.ports = ports or [settings.server_port]
        self.children: list[Child] = []
        self.cluster: PgCluster | None = None
        self.redis: PrivateRedis | None = None
        self.layout = nginx.NginxLayout(settings.data_dir / "nginx")
        self.restarts: list[float] = []

    async def _spawn(self, port: int) -> asyncio.subprocess.Process:
        """`onair serve` on `port`, in its own session (Ctrl-C reaches `onair up` only)."""
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server",
            "serve",
            env=server_environ(self.settings.with_changes(server_port=port)),
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )

    async def _start_server(self, index: int) -> None:
        port = self.ports[index]
        name = "server" if len(self.ports) == 1 else f"server {index + 1}"
        child = Child(name, await self._spawn(port), port)
        self.children.append(child)
        await wait_http(f"http://127.0.0.1:{port}/healthz", child.process, timeout=60)

    async def restart(self, child: Child) -> bool:
        """Start a dead worker again (N > 1), unless it keeps dying; False: give up."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        self.restarts = [t for t in self.restarts if now - t < RESTART_WINDOW_S] + [now]
        if len(self.restarts) > RESTART_LIMIT:
            return False
        print(
            f"onair up: {child.name} exited with code {child.process.returncode}; "
            "starting it again",
            file=sys.stderr,
            flush=True,
        )
        await asyncio.sleep(1.0)  # not a tight loop when it dies at once
        assert child.port is not None
        child.process = await self._spawn(child.port)
        return True

    async def start(self) -> None:
        """Bring everything up or raise StackError (having stopped what had started)."""
        s = self.settings
        check_port_free(s.http_host, s.http_port, "HTTP", "--http-port")
        check_port_free(s.http_host, s.rtmp_port, "RTMP", "--rtmp-port")
        s.media_root.mkdir(parents=True, exist_ok=True)
        if s.database_url is None:
            self.cluster = PgCluster(s.data_dir / "postgres")
            try:
                process = await self.cluster.start()
            except ClusterError as err:
                raise StackError(f"PostgreSQL: {err}") from err
            self.children.append(Child("postgres", process))
            s = self.settings = s.with_changes(database_url=self.cluster.url())
        assert s.database_url is not None
        await migrate_url(s.database_url)
        if len(self.ports) > 1 and s.redis_url is None:
            self.redis = PrivateRedis(s.data_dir / "redis")
            try:
                process = await self.redis.start()
            except RedisError as err:
                raise StackError(str(err)) from err
            self.children.append(Child("redis", process))
            s = self.settings = s.with_changes(redis_url=self.redis.url())

        # The first server up takes the owner lock; the others start beside it.
        await self._start_server(0)
        await asyncio.gather(*(self._start_server(i) for i in range(1, len(self.ports))))

        self.layout.prefix.mkdir(parents=True, exist_ok=True)
        values = nginx.config_values(s, self.layout.prefix)
        if len(self.ports) > 1:
            values["server_ports"] = [str(p) for p in self.ports]
            values["hooks_listen"] = f"127.0.0.1:{free_port()}"
        nginx.write_config(self.layout, values)
        nginx.test_config(self.layout)
        notice = await asyncio.to_thread(keylog.purge_notice, self.layout.prefix)
        if notice:
            print(notice, file=sys.stderr, flush=True)
        proxy = await nginx.start_nginx(self.layout)
        self.children.append(Child("nginx", proxy))
        try:
            await wait_http(f"http://127.0.0.1:{s.http_port}/nginx-health", proxy, timeout=20)
        except StackError as err:
            raise StackError(f"nginx: {err}; {nginx.error_log_tail(self.layout)}") from err
        # Last, so a start that fails halfway never loses the key it would have shown.
        assert s.database_url is not None
        demo_key = await ensure_demo_channel(s.database_url)
        print(banner(s, demo_key), flush=True)

    async def wait(self, stop: asyncio.Event) -> Child | None:
        """Until `stop` is set (None) or a child exits first (that child). With several
        workers a dead one is started again (the others serve meanwhile, and one of them
        takes over the hooks and ladders); one that keeps dying stops the stack."""
        while True:
            waits = {asyncio.ensure_future(c.process.wait()): c for c in self.children}
            stopper = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait([stopper, *waits], return_when=asyncio.FIRST_COMPLETED)
            for task in [stopper, *waits]:
                task.cancel()
            if stopper in done:
                return None
            dead = next(waits[task] for task in done if task in waits)
            if dead.port is None or len(self.ports) == 1 or stop.is_set():
                return dead
            if not await self.restart(dead):
                return dead

    async def stop(self) -> None:
        """Stop the server first, then nginx, then PostgreSQL.

        The server goes first so its FFmpeg pulls end (playlists get ENDLIST, recordings are
        finalized): nginx-rtmp's graceful quit waits for every RTMP connection to close.
        """
        # Every server at once: a worker on its way out never takes over from the owner.
        await asyncio.gather(*(stop_server(c) for c in self.children if c.port is not None))
        order = {"nginx": 1, "redis": 2, "postgres": 3}
        for child in sorted(self.children, key=lambda c: order.get(c.name, 0)):
            if child.process.returncode is not None:
                continue
            if child.name == "nginx":
                await nginx.stop_nginx(child.process)
            elif child.name == "redis" and self.redis is not None:
                await self.redis.stop()
            elif child.name == "postgres" and self.cluster is not None:
                await self.cluster.stop()
            else:
                await stop_server(child)


async def stop_server(child: Child) -> None:
    """SIGTERM (the server stops its FFmpeg and flushes chat), SIGKILL of its group after 30 s."""
    if child.process.returncode is not None:
        return
    child.process.terminate()
    try:
        await asyncio.wait_for(child.process.wait(), 30)
    except TimeoutError:
        os.killpg(child.process.pid, signal.SIGKILL)
        await child.process.wait()


def why_child_failed(stack: Stack, child: Child) -> str:
    """A sentence naming the child that died first, with its own last words when we have them."""
    reason = f"{child.name} exited first with code {child.process.returncode}"
    if child.name == "nginx":
        reason += ": " + nginx.error_log_tail(stack.layout).strip()
    elif child.name == "postgres" and stack.cluster is not None:
        reason += ": " + stack.cluster.log_tail()
    elif child.name == "redis" and stack.redis is not None:
        reason += ": " + stack.redis.log_tail()
    return reason


async def run_stack(settings: Settings) -> int:
    """`onair up` from start to the last child stopped; returns the exit code."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings = ensure_secrets(settings)
    if "ONAIR_SERVER_PORT" not in os.environ:
        settings = settings.with_changes(server_port=free_port())
        ports = [settings.server_port] + [free_port() for _ in range(settings.workers - 1)]
    else:
        # A given port is the first worker's; the others take the ones after it.
        ports = [settings.server_port + i for i in range(settings.workers)]
    stack = Stack(settings, ports)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        starting = asyncio.ensure_future(stack.start())
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait([starting, stopper], return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            print("onair up: stopped while starting", file=sys.stderr)
            return 130
        stopper.cancel()
        starting.result()
        failed = await stack.wait(stop)
        if failed is not None:
            print(f"onair up: {why_child_failed(stack, failed)}", file=sys.stderr)
            return 1
        print("onair up: stopping", file=sys.stderr)
        return 0
    except (StackError, nginx.NginxError) as err:
        print(f"onair up: {err}", file=sys.stderr)
        return 1
    finally:
        await stack.stop()
