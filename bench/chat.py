"""Chat benchmark: message fan-out latency, server CPU and memory against connected clients.

Run from the repository root:

    .venv/bin/python bench/chat.py                 # 10/100/500/1000 clients, 30 s windows
    .venv/bin/python bench/chat.py --quick         # same sizes, 8 s windows (~2-3 min)
    .venv/bin/python bench/chat.py --redis         # two `onair serve` processes sharing Redis
    .venv/bin/python bench/chat.py --ab DIR        # A/B: DIR's server (A) vs this one (B)
    .venv/bin/python bench/chat.py --raw           # light websocket clients (for big rooms)

It starts a private PostgreSQL (PgCluster in a temp folder), optionally redis-server, and one
or two `onair serve` processes as systemd runs them, creates one channel through the admin API
and joins N python-socketio clients (websocket transport, as the watch page uses) to it,
growing N step by step. At each size it measures, for a window of W seconds each:

- idle: everyone connected and joined, nobody talking — server CPU-seconds (pings, the
  viewers ticker);
- talking: S senders emit `message` at a fixed total rate R; every other client records
  send → receive (the sender's clock is the same machine's). Server CPU-seconds again, over
  the window; a saturated server's backlog is then left to drain (until every message
  arrived or nothing arrived for 3 s) so late deliveries count in the latency, not as lost.

Figures: fan-out latency p50/p99/max, server CPU-seconds per 1,000 clients per minute (idle
and talking), CPU microseconds per delivered message, server RSS growth per 1,000 connected
clients. The clients run in this process and share the cores with the server; the bench
records its own CPU too, so a saturated client side shows. The per-connection and
per-address chat rate limits are raised (they are settings) because every client comes from
127.0.0.1.

With --ab DIR (another checkout's server: `git archive <commit> server transcoder | tar -x
-C DIR`, as bench/http_load.py takes it) the whole run is made twice, first against DIR's
server (A), then against this checkout's (B), and the report gives B/A size by size.

With --raw the clients are minimal Engine.IO/Socket.IO websocket clients (aiohttp, offering
permessage-deflate as browsers do) that join, answer pings and read each message's send
time: cheap enough for thousands of clients on the cores the server also uses.

After the runs, the "write floor": CPU µs per write of one chat-sized frame to as many
loopback connections as the room had, with the servers stopped — the system call share of
a delivery that the server's code cannot go below.

Results: bench/results/chat-<date>[-tag].json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import resource
import secrets
import shutil
import signal
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import socketio  # noqa: E402
import uvloop  # noqa: E402
from harness import cpu_seconds, free_port, open_tempdir, stop_process, wait_for  # noqa: E402
from host import describe_host, write_results  # noqa: E402
from http_load import load, version  # noqa: E402

from server.ops.pgcluster import PgCluster  # noqa: E402
from server.ops.stack import server_environ  # noqa: E402
from server.settings import Settings  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SLUG = "bench"
SIZES = (10, 100, 500, 1000)
CONNECT_CONCURRENCY = 50
DRAIN_IDLE_S = 3.0
WS_TIMEOUT = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def own_cpu() -> float:
    """CPU seconds this bench process (the clients) has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def per_thousand_per_minute(cpu_s: float, seconds: float, clients: int) -> float:
    """CPU-seconds per 1,000 clients per minute from one window's CPU-seconds."""
    return cpu_s / seconds * 60 / (clients / 1000)


@dataclass
class ChatStack:
    """The private servers the clients talk to."""

    urls: list[str]
    pids: list[int]
    admin_token: str
    redis_pid: int | None = None

    @property
    def server_pids(self) -> list[int]:
        """Every process whose CPU counts as the chat's cost."""
        return self.pids + ([self.redis_pid] if self.redis_pid else [])


@asynccontextmanager
async def chat_stack(servers: int, use_redis: bool, code: Path) -> AsyncIterator[ChatStack]:
    """PostgreSQL, optionally Redis, and `servers` x `onair serve` (the `server` package in
    folder `code`) on free loopback ports."""
    async with AsyncExitStack() as stack:
        work = open_tempdir("onair-bench-chat-")
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        cluster = PgCluster(work / "pg")
        stack.push_async_callback(cluster.stop)
        await cluster.start()
        redis_url, redis_pid = None, None
        if use_redis:
            port = free_port()
            redis = await asyncio.create_subprocess_exec(
                "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            stack.push_async_callback(stop_process, redis)
            redis_url, redis_pid = f"redis://127.0.0.1:{port}/0", redis.pid
            await asyncio.sleep(0.5)
        admin = secrets.token_urlsafe(16)
        common = {
            "database_url": cluster.url(),
            "redis_url": redis_url,
            "admin_token": admin,
            "hook_secret": secrets.token_urlsafe(16),
            "secret_key": secrets.token_urlsafe(16),
            "min_free_bytes": 0,
            # Every bench client comes from 127.0.0.1: lift the per-address and
            # per-connection limits so the senders' fixed rate is never refused.
            "chat_rate_messages": 1_000_000,
            "chat_rate_ip_messages": 1_000_000,
            "chat_rate_joins": 1_000_000,
            "chat_rate_ip_joins": 1_000_000,
        }
        urls, pids = [], []
        for n in range(servers):
            settings = Settings(
                data_dir=work / f"data{n}",
                media_dir=work / "media",
                http_host="127.0.0.1",
                http_port=free_port(),
                server_port=free_port(),
                rtmp_port=free_port(),
                **common,  # type: ignore[arg-type]
            )
            settings.data_dir.mkdir()
            log = (work / f"server{n}.log").open("wb")
            stack.callback(log.close)
            server = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "server", "serve",
                env=server_environ(settings), cwd=code,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True,
            )  # fmt: skip
            stack.push_async_callback(stop_process, server)
            url = f"http://127.0.0.1:{settings.server_port}"
            await wait_for(f"{url}/metrics", 60, f"onair serve #{n}")
            urls.append(url)
            pids.append(server.pid)
        yield ChatStack(urls, pids, admin, redis_pid)


class RawClient:
    """A websocket-only Socket.IO v5 client that does what a chat viewer's page does and no
    more: connect, join, answer pings, hand each `message` event to a handler, send messages
    with an ack."""

    def __init__(self, session: aiohttp.ClientSession, on_message: Any) -> None:
        self.session = session
        self.on_message = on_message
        self.acks: dict[int, Any] = {}
        self.next_ack = 0
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.reader: asyncio.Task[None] | None = None

    async def connect(self, url: str, name: str) -> dict[str, Any]:
        """Open the websocket (offering permessage-deflate, as browsers do) and join."""
        ws = await self.session.ws_connect(
            f"{url}/socket.io/?EIO=4&transport=websocket", compress=15, timeout=WS_TIMEOUT
        )
        self.ws = ws
        if not (await ws.receive_str(timeout=30)).startswith("0"):  # Engine.IO open
            raise RuntimeError("no Engine.IO open packet")
        await ws.send_str("40")
        if not (await ws.receive_str(timeout=30)).startswith("40"):
            raise RuntimeError("Socket.IO connect refused")
        self.reader = asyncio.create_task(self.read())
        joined = asyncio.get_running_loop().create_future()
        await self.emit("join", {"channel": SLUG, "name": name}, callback=joined.set_result)
        ack: dict[str, Any] = await asyncio.wait_for(joined, 60)
        return ack

    async def emit(self, event: str, data: Any, callback: Any) -> None:
        assert self.ws is not None
        self.next_ack += 1
        self.acks[self.next_ack] = callback
        await self.ws.send_str(f"42{self.next_ack}" + json.dumps([event, data]))

    async def read(self) -> None:
        assert self.ws is not None
        async for frame in self.ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                break
            text = frame.data
            if text == "2":
                await self.ws.send_str("3")
            elif text.startswith('42["message"'):
                await self.on_message(json.loads(text[2:])[1])
            elif text.startswith("43"):
                digits = len(text) - len(text[2:].lstrip("0123456789"))
                callback = self.acks.pop(int(text[2:digits]), None)
                if callback is not None:
                    callback(json.loads(text[digits:])[0])

    async def disconnect(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            await asyncio.gather(self.reader, return_exceptions=True)


@dataclass
class Clients:
    """Connected, joined python-socketio clients and what they received."""

    session: aiohttp.ClientSession
    raw: bool = False
    clients: list[Any] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    recording: bool = False
    refused: int = 0

    def on_message(self, index: int) -> Any:
        """A handler for client `index`: records send → receive for others' messages."""

        async def handler(data: dict[str, Any]) -> None:
            now = time.time()
            if not self.recording:
                return
            sender, _, sent = data.get("text", "").partition(" ")
            if sender != str(index) and sent:
                self.latencies.append(now - float(sent))

        return handler

    async def grow(self, stack: ChatStack, target: int) -> float:
        """Connect and join clients until there are `target`; returns the seconds it took."""
        started = time.monotonic()
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def one(index: int) -> Any:
            async with gate:
                url = stack.urls[index % len(stack.urls)]
                if self.raw:
                    client: Any = RawClient(self.session, self.on_message(index))
                    ack = await client.connect(url, f"b{index}")
                else:
                    client = socketio.AsyncClient(reconnection=False, http_session=self.session)
                    client.on("message", self.on_message(index))
                    await client.connect(url, transports=["websocket"], wait_timeout=30)
                    join = {"channel": SLUG, "name": f"b{index}"}
                    ack = await client.call("join", join, timeout=60)
                if not ack.get("ok"):
                    raise RuntimeError(f"join refused: {ack}")
                return client

        self.clients += await asyncio.gather(*(one(i) for i in range(len(self.clients), target)))
        return time.monotonic() - started

    async def talk(self, senders: int, rate: float, seconds: float) -> int:
        """`senders` clients send at `rate` messages/s in total for `seconds`; returns sent."""
        interval = senders / rate
        sent = 0

        def acked(ack: Any) -> None:
            if not (isinstance(ack, dict) and ack.get("ok")):
                self.refused += 1

        async def sender(index: int) -> None:
            nonlocal sent
            client = self.clients[index]
            # Staggered starts spread the senders evenly over one interval.
            next_at = time.monotonic() + interval * index / senders
            deadline = time.monotonic() + seconds
            while next_at < deadline:
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                text = f"{index} {time.time():.6f}"
                await client.emit("message", {"channel": SLUG, "text": text}, callback=acked)
                sent += 1
                next_at += interval

        await asyncio.gather(*(sender(i) for i in range(min(senders, len(self.clients)))))
        return sent

    async def close(self) -> None:
        """Disconnect everyone."""
        await asyncio.gather(*(c.disconnect() for c in self.clients), return_exceptions=True)


async def create_channel(stack: ChatStack) -> None:
    """The one channel everyone joins."""
    headers = {"Authorization": f"Bearer {stack.admin_token}"}
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.post(
            f"{stack.urls[0]}/api/channels", json={"slug": SLUG, "title": "Chat bench"}
        ) as r,
    ):
        r.raise_for_status()


async def measure(
    sizes: Sequence[int],
    seconds: float,
    senders: int,
    rate: float,
    servers: int,
    use_redis: bool,
    deadline: float,
    code: Path = ROOT,
    raw: bool = False,
) -> list[dict[str, Any]]:
    """Grow the room through `sizes`; at each, an idle window and a talking window."""
    rows: list[dict[str, Any]] = []
    async with chat_stack(servers, use_redis, code) as stack:
        await create_channel(stack)
        await asyncio.sleep(1)
        rss0 = sum(rss_bytes(p) for p in stack.pids)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            clients = Clients(session, raw)
            try:
                for size in sizes:
                    # Connecting, two windows and settling: do not start what cannot finish.
                    needed = 2 * seconds + 10 + size * 0.05
                    if time.monotonic() + needed > deadline:
                        print(f"chat: skipping {size} clients: time bound reached", flush=True)
                        break
                    connect_s = await clients.grow(stack, size)
                    await asyncio.sleep(2)  # joins' log lines and the viewers tick settle
                    rss = sum(rss_bytes(p) for p in stack.pids)

                    cpu0, own0 = cpu_seconds(stack.server_pids), own_cpu()
                    await asyncio.sleep(seconds)
                    idle_cpu = cpu_seconds(stack.server_pids) - cpu0

                    clients.latencies, clients.refused = [], 0
                    clients.recording = True
                    cpu0, own1 = cpu_seconds(stack.server_pids), own_cpu()
                    sent = await clients.talk(senders, rate, seconds)
                    # Let the backlog drain (a saturated server delivers late, not never):
                    # until all arrived or nothing new for DRAIN_IDLE_S.
                    expected = sent * (size - 1)
                    drain_started, seen, last_new = time.monotonic(), 0, time.monotonic()
                    while len(clients.latencies) < expected:
                        if len(clients.latencies) > seen:
                            seen, last_new = len(clients.latencies), time.monotonic()
                        elif time.monotonic() - last_new > DRAIN_IDLE_S:
                            break
                        await asyncio.sleep(0.1)
                    drain_s = time.monotonic() - drain_started
                    clients.recording = False
                    # All the work the window's messages made, drained backlog included.
                    talk_cpu = cpu_seconds(stack.server_pids) - cpu0
                    own_talk = own_cpu() - own1
                    lat = clients.latencies
                    deliveries = len(lat)
                    row = {
                        "clients": size,
                        "connect_s": round(connect_s, 1),
                        "rss_mib": round(rss / 2**20, 1),
                        "rss_growth_mib": round((rss - rss0) / 2**20, 1),
                        "idle_cpu_s": round(idle_cpu, 2),
                        "talk_cpu_s": round(talk_cpu, 2),
                        "window_s": seconds,
                        "sent": sent,
                        "refused": clients.refused,
                        "delivered": deliveries,
                        "expected": expected,
                        "drain_s": round(drain_s, 1),
                        "p50_ms": _ms(percentile(lat, 50)),
                        "p99_ms": _ms(percentile(lat, 99)),
                        "max_ms": _ms(max(lat) if lat else None),
                        "mean_ms": _ms(statistics.fmean(lat) if lat else None),
                        "idle_cpu_s_per_1k_per_min": round(
                            per_thousand_per_minute(idle_cpu, seconds, size), 2
                        ),
                        "talk_cpu_s_per_1k_per_min": round(
                            per_thousand_per_minute(talk_cpu, seconds, size), 2
                        ),
                        "cpu_us_per_delivery": round(talk_cpu / deliveries * 1e6, 1)
                        if deliveries
                        else None,
                        "clients_cpu_s": round(own_talk, 2),
                        "idle_clients_cpu_s": round(own1 - own0, 2),
                        "load_1m": round(os.getloadavg()[0], 2),
                        "direct_deliveries": await direct_deliveries(stack),
                    }
                    rows.append(row)
                    print(
                        f"chat {size:>5} clients: p50 {row['p50_ms']} ms p99 {row['p99_ms']} ms"
                        f"  delivered {deliveries}/{expected}  server idle {idle_cpu:.2f}"
                        f" / talking {talk_cpu:.2f} cpu-s  rss +{row['rss_growth_mib']} MiB"
                        f"  clients {own_talk:.2f} cpu-s  load {row['load_1m']}",
                        flush=True,
                    )
            finally:
                await clients.close()
    return rows


async def direct_deliveries(stack: ChatStack) -> int | None:
    """onair_chat_deliveries_total{path="direct"} over the servers; None before the fan-out
    existed (an A that predates it shows it really ran the old code)."""
    total, seen = 0.0, False
    async with aiohttp.ClientSession() as session:
        for url in stack.urls:
            async with session.get(f"{url}/metrics") as response:
                for line in (await response.text()).splitlines():
                    if line.startswith('onair_chat_deliveries_total{path="direct"}'):
                        total, seen = total + float(line.split()[-1]), True
    return round(total) if seen else None


async def write_floor(connections: int, rounds: int = 40) -> float:
    """µs of CPU per write of a chat-sized websocket frame (200 bytes) to each of
    `connections` loopback TCP connections, the way the fan-out writes (uvloop's
    transport.write): the kernel's share of a delivery, which no server code avoids. On
    loopback it includes the receiving side's TCP work, done in the sender's system call."""
    loop = asyncio.get_running_loop()
    accepted: list[asyncio.StreamWriter] = []
    everyone = asyncio.Event()

    def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        if len(accepted) == connections:
            everyone.set()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    peers = [await asyncio.open_connection("127.0.0.1", port) for _ in range(connections)]

    async def drain(reader: asyncio.StreamReader) -> None:
        while await reader.read(1 << 16):
            pass

    readers = [loop.create_task(drain(reader)) for reader, _ in peers]
    await everyone.wait()
    frame, spent = bytes(4) + bytes(196), 0.0
    for _ in range(rounds):
        started = time.process_time()
        for writer in accepted:
            writer.transport.write(frame)
        spent += time.process_time() - started
        await asyncio.sleep(0.02)  # the readers empty their buffers, as clients would
    for _, writer in peers:
        writer.close()
    for writer in accepted:
        writer.close()
    await asyncio.gather(*readers, return_exceptions=True)
    server.close()
    return round(spent / (rounds * connections) * 1e6, 1)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def summarize(rows: list[dict[str, Any]], rate: float) -> dict[str, Any]:
    """Per-unit costs for the capacity model, from the largest size measured."""
    if not rows:
        return {}
    big = rows[-1]
    first = rows[0]
    clients = big["clients"] - first["clients"]
    growth = big["rss_growth_mib"] - first["rss_growth_mib"]
    return {
        "largest_clients": big["clients"],
        "rate_msgs_s": rate,
        # Idle connections cost little; the talking figure is at `rate` messages/s.
        "idle_cpu_s_per_1k_clients_per_min": big["idle_cpu_s_per_1k_per_min"],
        "talk_cpu_s_per_1k_clients_per_min": big["talk_cpu_s_per_1k_per_min"],
        "cpu_us_per_delivery": big["cpu_us_per_delivery"],
        "rss_mib_per_1k_clients": round(growth / clients * 1000, 1) if clients > 0 else None,
        "p50_ms_at_largest": big["p50_ms"],
        "p99_ms_at_largest": big["p99_ms"],
        "p99_ms_vs_smallest": round(big["p99_ms"] / first["p99_ms"], 2)
        if big["p99_ms"] and first["p99_ms"]
        else None,
    }


def ratios(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """B over A, size by size, for the figures a chat change should move."""
    rows = []
    for old, new in zip(a, b, strict=False):
        row: dict[str, Any] = {"clients": new["clients"]}
        for key in ("cpu_us_per_delivery", "p50_ms", "p99_ms"):
            row[key] = round(new[key] / old[key], 3) if new[key] and old[key] else None
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> list[str]:
    """One markdown table row per room size."""
    lines = [
        "| clients | p50 ms | p99 ms | max ms | delivered/expected | server CPU-s idle"
        " | talking | CPU-s /1k clients/min idle | talking | µs CPU per delivery"
        " | RSS growth MiB | clients' CPU-s | load | written at once | write floor µs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['clients']} | {r['p50_ms']} | {r['p99_ms']} | {r['max_ms']}"
            f" | {r['delivered']}/{r['expected']} | {r['idle_cpu_s']} | {r['talk_cpu_s']}"
            f" | {r['idle_cpu_s_per_1k_per_min']} | {r['talk_cpu_s_per_1k_per_min']}"
            f" | {r['cpu_us_per_delivery']} | {r['rss_growth_mib']} | {r['clients_cpu_s']}"
            f" | {r['load_1m']} | {r.get('direct_deliveries')} | {r.get('write_floor_us')} |"
        )
    return lines


def markdown(report: dict[str, Any]) -> str:
    """Short tables for bench/results/chat-<date>[-tag].md."""
    m, s = report["machine"], report["summary"]
    mode = f"{report['servers']} server process(es)" + (" + Redis" if report["redis"] else "")
    lines = [
        f"# Chat benchmark {report['date']}{' (quick)' if report['quick'] else ''}",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB; Python {m['python']},"
        f" python-socketio {m['python_socketio']}, {mode}; PostgreSQL {m['postgres']}."
        f" Load average before {report['load_before']}, after {report['load_after']}"
        f" (the clients run on the same cores as the server)."
        + (" Clients: light websocket ones (--raw)." if report.get("raw_clients") else ""),
        f"{report['senders']} senders at {report['rate']} messages/s in total;"
        f" {report['window_s']} s per window.",
        "",
    ]
    if "a" in report:
        lines += [
            f"A: the server in {report['a']['dir']}.",
            "",
            *table(report["a"]["rows"]),
            "",
            "B: this checkout.",
            "",
        ]
    lines += table(report["rows"])
    if "ratios" in report:
        lines += [
            "",
            "| clients | µs per delivery, B/A | p50 B/A | p99 B/A |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {r['clients']} | {r['cpu_us_per_delivery']} | {r['p50_ms']} | {r['p99_ms']} |"
            for r in report["ratios"]
        ]
    if s:
        lines += [
            "",
            f"At {s['largest_clients']} clients: p50 {s['p50_ms_at_largest']} ms, p99"
            f" {s['p99_ms_at_largest']} ms ({s['p99_ms_vs_smallest']}x the smallest room's"
            f" p99); {s['talk_cpu_s_per_1k_clients_per_min']} server CPU-s per 1,000 clients"
            f" per minute while talking ({s['idle_cpu_s_per_1k_clients_per_min']} idle);"
            f" {s['rss_mib_per_1k_clients']} MiB per 1,000 connected clients.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, grow the room, write bench/results/chat-<date>[-tag].json/.md."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 s windows instead of 30 s")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="client counts")
    parser.add_argument("--senders", type=int, default=5)
    parser.add_argument("--rate", type=float, default=5.0, help="messages/s, all senders")
    parser.add_argument("--redis", action="store_true", help="two servers sharing Redis")
    parser.add_argument("--max-seconds", type=float, default=600, help="time bound")
    parser.add_argument("--tag", default="", help="suffix for the result file names")
    parser.add_argument("--ab", type=Path, metavar="DIR", help="A/B against DIR's server")
    parser.add_argument("--raw", action="store_true", help="light websocket clients")
    args = parser.parse_args(argv)
    sizes = sorted(int(x) for x in args.sizes.split(","))
    servers = 2 if args.redis else 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # 1,000 websockets plus the server's: more than the default 1,024 descriptors.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    started = time.monotonic()
    seconds = 8.0 if args.quick else 30.0
    pg = PgCluster(Path("/nonexistent")).bindir / "postgres"
    report: dict[str, Any] = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": describe_host()
        | {
            "aiohttp": metadata.version("aiohttp"),
            "python_socketio": metadata.version("python-socketio"),
            "postgres": version([str(pg), "--version"], r"\d+\.\d+"),
            "redis": version(["redis-server", "--version"], r"v=\S+") if args.redis else None,
        },
        "servers": servers,
        "redis": args.redis,
        "senders": args.senders,
        "rate": args.rate,
        "window_s": seconds,
        "load_before": load(),
    }
    if args.ab is not None and not (args.ab / "server" / "__main__.py").is_file():
        sys.exit(f"{args.ab} is not an Onair checkout (no server/__main__.py)")
    runs = [("a", args.ab.resolve())] if args.ab else []
    runs.append(("b", ROOT))
    budget = args.max_seconds / len(runs)
    for name, code in runs:
        rows = asyncio.run(
            measure(
                sizes,
                seconds,
                args.senders,
                args.rate,
                servers,
                args.redis,
                time.monotonic() + budget,
                code,
                args.raw,
            )
        )
        if name == "a":
            report["a"] = {"dir": str(code), "rows": rows, "summary": summarize(rows, args.rate)}
    for row in rows:
        row["write_floor_us"] = uvloop.run(write_floor(row["clients"]))
    report["load_after"] = load()
    report["raw_clients"] = args.raw
    report["rows"] = rows
    report["summary"] = summarize(rows, args.rate)
    if args.ab:
        report["ratios"] = ratios(report["a"]["rows"], rows)
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    tag = args.tag or "-".join(
        x for x in ("redis" if args.redis else "", "quick" if args.quick else "") if x
    )
    write_results(RESULTS, "chat", tag, report, markdown)


if __name__ == "__main__":
    main()
