"""Soak: a live stream, players, chat and a flapping publisher for N minutes; watch for leaks.

Run from the repository root (not in CI):

    .venv/bin/python bench/soak.py                       # 30 min, 1,000 players, 500 chatters
    .venv/bin/python bench/soak.py --minutes 5 --players 300 --chatters 100 --tag short

It starts a private stack on free loopback ports, as bench/http_load.py does: PostgreSQL
(PgCluster in a temp folder), nginx rendered from nginx/onair.conf.template, and `onair serve`
as systemd runs it. Then, for the whole run:

- one OBS-like publisher (ffmpeg testsrc2 320x180@15, H.264 + AAC) on channel `soak`, so the
  server runs a real FFmpeg ladder and a recorder the whole time;
- a flapping publisher on channel `flap`: connects, streams for a few seconds, vanishes (every
  other time with SIGKILL, as a dropped connection), again and again;
- `--players` simulated HLS players through nginx, each fetching the live playlist every 2 s
  with its own User-Agent and address (one viewer session each);
- `--chatters` Socket.IO clients over five rooms, each sending a message every
  `--chat-interval` seconds.

Every `--sample` seconds it records, for the server, nginx (master + workers) and the
server's FFmpeg children: process count, open descriptors and RSS; plus players' and
chatters' errors. Output: bench/results/soak-<date>[-tag].json and .md (host, settings,
samples, first- vs last-quarter figures) and soak-<date>[-tag].png (the curves).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import socketio  # noqa: E402
from harness import Stack, private_stack, stop_process, wait_for  # noqa: E402
from host import describe_host, write_results  # noqa: E402

RESULTS = ROOT / "bench" / "results"
ROOMS = 5


# -- /proc sampling -------------------------------------------------------------------


def proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command name) for every live process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rpartition(")")[2].split()
        if fields[0] != "Z":
            table[int(entry.name)] = (int(fields[1]), name)
    return table


def descendants(table: dict[int, tuple[int, str]], pid: int) -> list[int]:
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, (pp, _) in table.items() if pp == parent]
        found += kids
        frontier += kids
    return found


def usage(pids: list[int]) -> dict[str, float]:
    """Processes, open descriptors and RSS (MiB) summed over pids."""
    fds = rss_kib = alive = 0
    for pid in pids:
        try:
            fds += len(list(Path(f"/proc/{pid}/fd").iterdir()))
            status = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            continue
        alive += 1
        rss_kib += next((int(ln.split()[1]) for ln in status if ln.startswith("VmRSS:")), 0)
    return {"processes": alive, "fds": fds, "rss_mib": round(rss_kib / 1024, 1)}


def sample(server_pid: int, nginx_pid: int) -> dict[str, dict[str, float]]:
    table = proc_table()
    below = descendants(table, server_pid)
    ffmpeg = [p for p in below if table[p][1].startswith("ffmpeg")]
    others = [p for p in below if p not in ffmpeg]
    return {
        "server": usage([server_pid, *others]),
        "nginx": usage([nginx_pid, *descendants(table, nginx_pid)]),
        "ffmpeg": usage(ffmpeg),
    }


# -- the stack --------------------------------------------------------------------------


def admin_headers(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.settings.admin_token}"}


def rtmp_url(stack: Stack, key: str) -> str:
    return f"rtmp://127.0.0.1:{stack.settings.rtmp_port}/live/{key}"


async def create_channel(stack: Stack, slug: str) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{stack.server_url}/api/channels",
            json={"slug": slug, "title": slug},
            headers=admin_headers(stack),
        ) as response,
    ):
        response.raise_for_status()
        return str((await response.json())["stream_key"])


async def publisher(url: str, seconds: float | None = None) -> asyncio.subprocess.Process:
    args = [
        "ffmpeg", "-hide_banner", "-loglevel", "quiet", "-nostdin", "-re",
        "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=15",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "32k",
    ]  # fmt: skip
    if seconds is not None:
        args += ["-t", str(seconds)]
    return await asyncio.create_subprocess_exec(
        *args, "-f", "flv", url,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


# -- the load ---------------------------------------------------------------------------


@dataclass
class Counters:
    fetches: int = 0
    fetch_errors: int = 0
    messages: int = 0
    chat_errors: int = 0
    flaps: int = 0


async def players(stack: Stack, count: int, until: float, c: Counters) -> None:
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=count)

    async def one(session: aiohttp.ClientSession, n: int) -> None:
        headers = {"User-Agent": f"soak-player-{n}"}
        await asyncio.sleep(2.0 * n / count)  # spread the first fetches over one period
        while loop.time() < until:
            try:
                async with session.get(
                    f"{stack.nginx_url}/hls/soak/master.m3u8", headers=headers
                ) as response:
                    await response.read()
                    c.fetches += 1
                    c.fetch_errors += response.status != 200
            except (aiohttp.ClientError, TimeoutError):
                c.fetch_errors += 1
            await asyncio.sleep(2.0)

    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(one(session, n) for n in range(count)))


async def chatters(stack: Stack, count: int, interval: float, until: float, c: Counters) -> None:
    loop = asyncio.get_running_loop()
    clients: list[socketio.AsyncClient] = []

    async def one(n: int) -> None:
        sio = socketio.AsyncClient(reconnection=True)
        clients.append(sio)
        await sio.connect(stack.nginx_url, transports=["websocket"], wait_timeout=20)
        room = f"room{n % ROOMS}"
        await sio.call("join", {"channel": room, "name": f"soak{n}"}, timeout=20)
        await asyncio.sleep(interval * n / count)
        while loop.time() < until:
            try:
                ack = await sio.call("message", {"channel": room, "text": f"m{n}"}, timeout=20)
                c.messages += 1
                c.chat_errors += not ack.get("ok")
            except Exception:
                c.chat_errors += 1
            await asyncio.sleep(interval)

    try:
        await asyncio.gather(*(one(n) for n in range(count)))
    finally:
        for sio in clients:
            with contextlib.suppress(Exception):
                await sio.disconnect()


async def flapper(stack: Stack, key: str, until: float, c: Counters) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        process = await publisher(rtmp_url(stack, key))
        await asyncio.sleep(4.0)
        await stop_process(process, signal.SIGKILL if c.flaps % 2 else signal.SIGINT)
        c.flaps += 1
        await asyncio.sleep(2.0)


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    # Every load client comes from 127.0.0.1: lift the per-address limits and bounds.
    overrides = {
        "chat_rate_ip_messages": 1_000_000,
        "chat_rate_ip_joins": 1_000_000,
        "viewer_sessions_per_address": 1_000_000,
    }
    async with private_stack(overrides=overrides, log_level="WARNING") as stack:
        key = await create_channel(stack, "soak")
        flap_key = await create_channel(stack, "flap")
        for room in range(ROOMS):
            await create_channel(stack, f"room{room}")
        live = await publisher(rtmp_url(stack, key))
        await wait_for(f"{stack.nginx_url}/hls/soak/master.m3u8", 120, "the soak channel to play")
        loop = asyncio.get_running_loop()
        until = loop.time() + args.minutes * 60
        counters = Counters()
        samples: list[dict[str, Any]] = []

        async def sampler() -> None:
            t0 = loop.time()
            while loop.time() < until:
                point: dict[str, Any] = sample(stack.server_pid, stack.nginx_pid)
                point["t_min"] = round((loop.time() - t0) / 60, 3)
                point["counters"] = dict(vars(counters))
                samples.append(point)
                await asyncio.sleep(args.sample)

        load = asyncio.gather(
            sampler(),
            players(stack, args.players, until, counters),
            chatters(stack, args.chatters, args.chat_interval, until, counters),
            flapper(stack, flap_key, until, counters),
        )
        try:
            await load
        finally:
            await stop_process(live, signal.SIGINT)
        # After the load: what is left once everything had a moment to wind down.
        await asyncio.sleep(15)
        after = sample(stack.server_pid, stack.nginx_pid)
    return {
        "host": describe_host(),
        "settings": vars(args),
        "elapsed_s": time.monotonic() - started,
        "counters": vars(counters),
        "samples": samples,
        "after_load": after,
        "trend": trend(samples),
    }


def trend(samples: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean of each figure over the first and the last quarter of the run."""
    quarter = max(1, len(samples) // 4)
    first, last = samples[:quarter], samples[-quarter:]
    out: dict[str, dict[str, float]] = {}
    for part in ("server", "nginx", "ffmpeg"):
        for figure in ("processes", "fds", "rss_mib"):
            a = sum(s[part][figure] for s in first) / len(first)
            b = sum(s[part][figure] for s in last) / len(last)
            out[f"{part}.{figure}"] = {"first_quarter": round(a, 1), "last_quarter": round(b, 1)}
    return out


def markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    c = report["counters"]
    lines = [
        f"# Soak {dt.date.today().isoformat()}: {s['minutes']} min, {s['players']} players, "
        f"{s['chatters']} chatters, flapping publisher",
        "",
        f"Host: {report['host']['cpu']}, {report['host']['cores']} cores.",
        f"Playlist fetches {c['fetches']} (errors {c['fetch_errors']}), chat messages "
        f"{c['messages']} (errors {c['chat_errors']}), flaps {c['flaps']}.",
        "",
        "| figure | first quarter | last quarter | 15 s after the load |",
        "|---|---|---|---|",
    ]
    for name, v in report["trend"].items():
        part, figure = name.split(".")
        after = report["after_load"][part][figure]
        lines.append(f"| {name} | {v['first_quarter']} | {v['last_quarter']} | {after} |")
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = report["samples"]
    t = [s["t_min"] for s in samples]
    fig, axes = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    for ax, figure, label in zip(
        axes, ("processes", "fds", "rss_mib"), ("processes", "open descriptors", "RSS (MiB)"),
        strict=True,
    ):  # fmt: skip
        for part in ("server", "nginx", "ffmpeg"):
            ax.plot(t, [s[part][figure] for s in samples], label=part)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper left")
    axes[-1].set_xlabel("minutes")
    s = report["settings"]
    fig.suptitle(f"Onair soak: {s['players']} players, {s['chatters']} chatters, flapping")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--players", type=int, default=1000)
    parser.add_argument("--chatters", type=int, default=500)
    parser.add_argument("--chat-interval", type=float, default=30.0, help="seconds per chatter")
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--tag", default="")
    args = parser.parse_args(argv)
    report = asyncio.run(soak(args))
    write_results(RESULTS, "soak", args.tag, report, markdown)
    stem = f"soak-{dt.date.today().isoformat()}{'-' + args.tag if args.tag else ''}"
    plot(report, RESULTS / f"{stem}.png")
    print(f"wrote {RESULTS / stem}.png")


if __name__ == "__main__":
    main()
