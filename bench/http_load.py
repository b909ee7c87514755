"""HTTP benchmark: playlists through the server vs nginx static files, segments, API, hooks.

Run from the repository root (needs `wrk`: `apt-get install -y wrk`):

    .venv/bin/python bench/http_load.py            # full: 12 s per load, about 2-3 min
    .venv/bin/python bench/http_load.py --quick    # 3 s per load, about 1 min
    .venv/bin/python bench/http_load.py --ab DIR   # A/B: DIR's server (A) vs this one (B)
    .venv/bin/python bench/http_load.py --workers 2  # A/B: 1 worker (A) vs 2 (B), via nginx

`--ab DIR` starts two private stacks at once, one running the server of another checkout
(`git archive <commit> | tar -x -C DIR`) and one running this tree's, and alternates short
loads between them round by round (playlists and /api/channels straight to each server), so
both see the same load from other jobs: on a shared machine a change is measured by B/A
within one run, never by two runs minutes apart.

It starts its own private stack on free loopback ports: PostgreSQL (PgCluster in a temp
folder), `onair serve` as systemd runs it, and nginx rendered from nginx/onair.conf.template
by server.nginx exactly as the tests do (only the optional `api_rate`/`api_burst` values are
raised so the API limit does not turn the load into 429s). In one run it measures, with wrk:

- the same playlist bytes as an nginx static file (a segment-style `.m4s` name in
  MEDIA_DIR/live/<slug>/<rendition>/, which nginx already serves) — the baseline;
- `/hls/<slug>/<rendition>/index.m3u8` through nginx to the server (the production path) and
  straight to the server, each request with one of many User-Agents (distinct viewer sessions);
- a ~1 MB `.m4s` segment from nginx (Gbit/s on loopback);
- `GET /api/channels` with 20 channels, direct and through nginx;
- `/hooks/rtmp/publish` (unknown keys: 403 after the key lookup) and `/hooks/rtmp/update`
  (a valid key for an accepted publisher) one request at a time, as nginx-rtmp sends them;
- one OBS-style ffmpeg publish: seconds until the master playlist answers 200.

Besides wall-clock rates it records the CPU seconds the server and nginx spent during each
load (/proc), so requests per CPU-second stay meaningful when other jobs share the machine.
Results go to bench/results/http-<date>[-quick].json and .md with the machine's description.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
# The server package is imported from this checkout: the repository root goes first.
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from harness import (  # noqa: E402
    Stack,
    cpu_seconds,
    descendants,
    private_stack,
    stop_process,
    wait_for,
)
from host import describe_host, write_results  # noqa: E402

from server.ops import nginx  # noqa: E402
from server.ops.pgcluster import PgCluster  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CHANNELS = 20
SLUG = "ch00"  # the channel whose playlist is fetched
RENDITION = "720p"
AGENTS = 2000  # distinct User-Agents: each one a viewer session on the server
SEGMENT_BYTES = 1_000_000
TICK = os.sysconf("SC_CLK_TCK")
TARGET_RATIO = 0.3  # server playlist rate / nginx static rate
TARGET_PER_CORE = 5000  # playlist requests per server CPU-second
TARGET_API = 1000  # GET /api/channels per second (the seed plan)
FORM = {"Content-Type": "application/x-www-form-urlencoded"}

# A live media playlist as the ladder writes it: 6 segments of 2 s, fMP4.
PLAYLIST = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:1200\n"
PLAYLIST += '#EXT-X-MAP:URI="init.mp4"\n'
PLAYLIST += "".join(f"#EXTINF:2.000000,\nseg_a1b2c3_{n}.m4s\n" for n in range(1200, 1206))


def version(args: Sequence[str], pattern: str = r".+") -> str:
    """The first match of pattern in a tool's --version output (stdout or stderr)."""
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "missing"
    match = re.search(pattern, done.stdout + done.stderr)
    return match.group(0).strip() if match else "unknown"


def machine() -> dict[str, Any]:
    """The host, and the versions of everything on the request path."""
    pg = PgCluster(Path("/nonexistent")).bindir / "postgres"
    return describe_host() | {
        "aiohttp": metadata.version("aiohttp"),
        "uvloop": metadata.version("uvloop"),
        "nginx": version([nginx.nginx_binary(), "-v"], r"nginx/\S+"),
        "postgres": version([str(pg), "--version"], r"\d+\.\d+"),
        "wrk": version(["wrk", "--version"], r"wrk \S+"),
    }


def load() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


# --- wrk ----------------------------------------------------------------------------------

WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,'
    .. '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def lua_string(text: str) -> str:
    """A Lua string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def wrk_script(variants: Sequence[tuple[dict[str, str], str | None]], method: str) -> str:
    """A wrk script cycling through prebuilt requests (headers, body); always reports JSON."""
    if not variants:
        return WRK_DONE
    rows = []
    for headers, body in variants:
        pairs = ", ".join(f"[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items())
        rows.append(f"  {{ {{{pairs}}}, {lua_string(body) if body is not None else 'nil'} }},")
    return (
        "local specs = {\n" + "\n".join(rows) + "\n}\nlocal reqs = {}\nlocal i = 0\n"
        "init = function(args)\n  for k, s in ipairs(specs) do\n"
        f"    reqs[k] = wrk.format({lua_string(method)}, nil, s[1], s[2])\n  end\nend\n"
        "request = function()\n  i = i % #reqs + 1\n  return reqs[i]\nend\n" + WRK_DONE
    )


@dataclass
class Load:
    """One wrk run and what it cost the server and nginx."""

    name: str
    url: str
    connections: int
    requests: int
    seconds: float
    bytes: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]
    server_cpu_s: float
    nginx_cpu_s: float
    load_1m: float
    generator_cpu_s: float = 0.0  # wrk's own
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        """Requests per wall second."""
        return self.requests / self.seconds


async def run_wrk(
    stack: Stack,
    name: str,
    url: str,
    *,
    seconds: float,
    connections: int,
    variants: Sequence[tuple[dict[str, str], str | None]] = (),
    method: str = "GET",
) -> Load:
    """wrk (one thread: the other core is the server's) against url; bounded by seconds."""
    script = stack.work / f"{name}.lua"
    script.write_text(wrk_script(variants, method))
    nginx_pids = [stack.nginx_pid, *descendants(stack.nginx_pid)]
    cpu0 = cpu_seconds(stack.server_pids), cpu_seconds(nginx_pids)
    wrk0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    process = await asyncio.create_subprocess_exec(
        "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "5s",
        "-s", str(script), url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(process.communicate(), seconds + 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    cpu1 = cpu_seconds(stack.server_pids), cpu_seconds(nginx_pids)
    wrk1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk is the only child reaped here
    text = out.decode(errors="replace")
    match = re.search(r"WRKJSON (\{.*\})", text)
    if process.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed on {name} ({process.returncode}): {text[-1500:]}")
    data = json.loads(match.group(1))
    errors = {k: data[k] for k in ("connect", "read", "write", "status", "timeout") if data[k]}
    result = Load(
        name=name,
        url=url.replace(stack.settings.hook_secret, "<secret>"),
        connections=connections,
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        bytes=data["bytes"],
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        errors=errors,
        server_cpu_s=round(cpu1[0] - cpu0[0], 2),
        nginx_cpu_s=round(cpu1[1] - cpu0[1], 2),
        load_1m=round(os.getloadavg()[0], 2),
        generator_cpu_s=round(wrk1.ru_utime + wrk1.ru_stime - wrk0.ru_utime - wrk0.ru_stime, 2),
    )
    print(
        f"{name:<22} {result.rps:>9.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
        f"p99 {result.p99_ms:6.2f} ms  server {result.server_cpu_s:.1f} cpu-s  "
        f"nginx {result.nginx_cpu_s:.1f} cpu-s  {errors or ''}",
        flush=True,
    )
    return result


async def seed(stack: Stack) -> dict[str, str]:
    """CHANNELS channels through the admin API; returns slug -> stream key."""
    keys: dict[str, str] = {}
    headers = {"Authorization": f"Bearer {stack.settings.admin_token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        for n in range(CHANNELS):
            body = {"slug": f"ch{n:02d}", "title": f"Bench channel {n}"}
            async with session.post(f"{stack.server_url}/api/channels", json=body) as r:
                r.raise_for_status()
                keys[body["slug"]] = (await r.json())["stream_key"]
    folder = stack.settings.media_root / "live" / SLUG / RENDITION
    folder.mkdir(parents=True)
    (folder / "index.m3u8").write_text(PLAYLIST)
    # The same bytes under a segment-style name: nginx's existing static location serves it.
    (folder / "playlistcopy.m4s").write_text(PLAYLIST)
    (folder / "seg_a1b2c3_1200.m4s").write_bytes(os.urandom(SEGMENT_BYTES))
    return keys


async def hook(stack: Stack, kind: str, form: dict[str, str]) -> int:
    """One hook post as nginx-rtmp sends it; returns the status."""
    url = f"{stack.server_url}/hooks/rtmp/{kind}?secret={stack.settings.hook_secret}"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=form, allow_redirects=False) as r,
    ):
        return r.status


def hook_form(key: str, clientid: str, call: str) -> dict[str, str]:
    """The fields nginx-rtmp posts (notify_method post)."""
    return {
        "call": call,
        "addr": "127.0.0.1",
        "clientid": clientid,
        "app": "live",
        "flashVer": "FMLE/3.0 (compatible; FMSc/1.0)",
        "swfUrl": "",
        "tcUrl": "rtmp://127.0.0.1/live",
        "pageUrl": "",
        "name": key,
        "type": "live",
    }


async def publish_to_master(stack: Stack, slug: str, key: str, timeout: float) -> float | None:
    """An OBS-style ffmpeg push; seconds until /hls/<slug>/master.m3u8 answers 200 via nginx."""
    rtmp = f"rtmp://127.0.0.1:{stack.settings.rtmp_port}/live/{key}"
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
        "-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
        "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "60",
        "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-f", "flv", rtmp,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        await wait_for(f"{stack.nginx_url}/hls/{slug}/master.m3u8", timeout, "master playlist")
        return time.monotonic() - started
    except RuntimeError:
        return None
    finally:
        # SIGINT closes the RTMP session cleanly; publish_done stops the ladder.
        await stop_process(process, signal.SIGINT)


# --- the run ------------------------------------------------------------------------------


def viewer_agents() -> list[tuple[dict[str, str], str | None]]:
    """AGENTS distinct User-Agents, each one a viewer session on the server."""
    return [
        ({"User-Agent": f"Mozilla/5.0 (BenchPlayer {n}) hls.js/1.5.{n % 20}"}, None)
        for n in range(AGENTS)
    ]


async def measure(seconds: float, skip_publish: bool) -> dict[str, Any]:
    """Every load against one private stack, in one run."""
    loads: list[Load] = []
    extra: dict[str, Any] = {}
    async with private_stack() as stack:
        keys = await seed(stack)
        agents = viewer_agents()
        path = f"/hls/{SLUG}/{RENDITION}"
        nginx_url, server_url = stack.nginx_url, stack.server_url

        async def run(name: str, url: str, **kw: Any) -> Load:
            kw.setdefault("seconds", seconds)
            load = await run_wrk(stack, name, url, **kw)
            loads.append(load)
            return load

        # Warm-up: page cache, the pool, the viewer-session dict (not recorded).
        await run_wrk(stack, "warmup", f"{nginx_url}{path}/index.m3u8", seconds=1,
                      connections=16, variants=agents)  # fmt: skip
        await run("playlist-nginx-static", f"{nginx_url}{path}/playlistcopy.m4s", connections=64)
        await run("playlist-via-nginx", f"{nginx_url}{path}/index.m3u8", connections=64,
                  variants=agents)  # fmt: skip
        await run("playlist-server-direct", f"{server_url}{path}/index.m3u8", connections=64,
                  variants=agents)  # fmt: skip
        await run("segment-1mb-nginx", f"{nginx_url}{path}/seg_a1b2c3_1200.m4s", connections=8)
        await run("api-channels-via-nginx", f"{nginx_url}/api/channels", connections=32)
        await run("api-channels-direct", f"{server_url}/api/channels", connections=32)

        secret = stack.settings.hook_secret
        unknown = [
            (FORM, urlencode(hook_form(secrets.token_urlsafe(24), str(n), "publish")))
            for n in range(200)
        ]
        await run("hook-publish-unknown", f"{server_url}/hooks/rtmp/publish?secret={secret}",
                  connections=1, variants=unknown, method="POST")  # fmt: skip

        # An accepted publisher the server knows by client id, so update does the key lookup.
        slug, clientid = "ch05", "900001"
        status = await hook(stack, "publish", hook_form(keys[slug], clientid, "publish"))
        extra["publish_valid_status"] = status
        update = [(FORM, urlencode(hook_form(keys[slug], clientid, "update_publish")))]
        await run("hook-update-valid", f"{server_url}/hooks/rtmp/update?secret={secret}",
                  connections=1, variants=update, method="POST")  # fmt: skip
        await hook(stack, "publish_done", hook_form(keys[slug], clientid, "publish_done"))

        if not skip_publish:
            slug = "ch01"
            took = await publish_to_master(stack, slug, keys[slug], timeout=40)
            extra["publish_to_master_s"] = None if took is None else round(took, 2)
            print(f"publish -> master playlist: {extra['publish_to_master_s']} s", flush=True)
    return {"loads": loads, "extra": extra}


def summarize(loads: list[Load], extra: dict[str, Any]) -> dict[str, Any]:
    """Ratios against the nginx baseline and the targets, met or not."""
    by = {load.name: load for load in loads}
    static = by["playlist-nginx-static"]
    out: dict[str, Any] = {}
    for load in loads:
        row: dict[str, Any] = {"rps": round(load.rps), "vs_nginx_static": None}
        if load.name.startswith("playlist") or load.name.startswith("api"):
            row["vs_nginx_static"] = round(load.rps / static.rps, 3)
        if load.server_cpu_s > 0.05:
            row["per_server_cpu_s"] = round(load.requests / load.server_cpu_s)
        if load.nginx_cpu_s > 0.05:
            row["per_nginx_cpu_s"] = round(load.requests / load.nginx_cpu_s)
        out[load.name] = row
    segment = by["segment-1mb-nginx"]
    out["segment-1mb-nginx"]["gbit_s"] = round(segment.bytes * 8 / segment.seconds / 1e9, 2)
    via, direct = by["playlist-via-nginx"], by["playlist-server-direct"]
    api = max(by["api-channels-direct"].rps, by["api-channels-via-nginx"].rps)
    out["targets"] = {
        "playlist_ratio_via_nginx": round(via.rps / static.rps, 3),
        "playlist_ratio_met": via.rps / static.rps >= TARGET_RATIO,
        "playlist_per_server_core": out["playlist-server-direct"].get("per_server_cpu_s"),
        "playlist_per_core_met": (out["playlist-server-direct"].get("per_server_cpu_s") or 0)
        >= TARGET_PER_CORE,
        "playlist_direct_rps": round(direct.rps),
        "api_rps": round(api),
        "api_met": by["api-channels-via-nginx"].rps >= TARGET_API,
    }
    out["extra"] = extra
    return out


def markdown(report: dict[str, Any]) -> str:
    """A short table for bench/results/http-<date>.md."""
    m, s = report["machine"], report["summary"]
    lines = [
        f"# HTTP benchmark {report['date']}{' (quick)' if report['quick'] else ''}",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB; Python {m['python']},"
        f" aiohttp {m['aiohttp']}, uvloop {m['uvloop']}, {m['nginx']}, PostgreSQL"
        f" {m['postgres']}, {m['wrk']}. Load average before {report['load_before']}, after"
        f" {report['load_after']} (other jobs may share the cores: read CPU-second columns).",
        "",
        "| load | conns | req/s | vs nginx static | p50 ms | p99 ms | req/server-CPU-s"
        " | req/nginx-CPU-s | errors / non-2xx |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for load in report["loads"]:
        row = s[load["name"]]
        ratio = row["vs_nginx_static"]
        lines.append(
            f"| {load['name']} | {load['connections']} | {row['rps']:,} "
            f"| {'' if ratio is None else f'{ratio:.2f}x'} | {load['p50_ms']:.2f} "
            f"| {load['p99_ms']:.2f} | {row.get('per_server_cpu_s', '')} "
            f"| {row.get('per_nginx_cpu_s', '')} | {load['errors'] or ''} |"
        )
    t = s["targets"]
    lines += [
        "",
        f"Segment delivery (1 MB .m4s, nginx sendfile, loopback):"
        f" {s['segment-1mb-nginx']['gbit_s']} Gbit/s.",
        "",
        f"Targets: playlists via nginx at {t['playlist_ratio_via_nginx']:.2f}x nginx static"
        f" (target ≥ {TARGET_RATIO}: {'met' if t['playlist_ratio_met'] else 'NOT met'});"
        f" {t['playlist_per_server_core']} playlist requests per server CPU-second (target"
        f" ≥ {TARGET_PER_CORE}: {'met' if t['playlist_per_core_met'] else 'NOT met'});"
        f" /api/channels via nginx {s['api-channels-via-nginx']['rps']:,} req/s with"
        f" {CHANNELS} channels (target ≥ {TARGET_API}: {'met' if t['api_met'] else 'NOT met'}).",
        "",
        f"Hooks are one request at a time (c=1); hook-publish-unknown answers 403 by design."
        f" Publish → first master playlist: {s['extra'].get('publish_to_master_s', 'skipped')} s.",
        "",
    ]
    return "\n".join(lines)


async def measure_ab(
    other: Path, seconds: int, rounds: int, workers: tuple[int, int] = (1, 1)
) -> dict[str, Any]:
    """Another checkout's server (A) and this one's (B), loads alternated round by round;
    with workers (a, b) other than (1, 1), A and B are this tree with a and b workers, and
    the loads go through nginx, which spreads them."""
    runs: dict[str, dict[str, list[Load]]] = {}
    async with (
        private_stack(other, workers=workers[0]) as stack_a,
        private_stack(workers=workers[1]) as stack_b,
    ):
        stacks = {"A": stack_a, "B": stack_b}
        via_nginx = workers != (1, 1)
        agents = viewer_agents()
        how = "via-nginx" if via_nginx else "direct"
        loads: dict[str, tuple[str, int, list[tuple[dict[str, str], str | None]]]] = {
            f"playlist-server-{how}": (f"/hls/{SLUG}/{RENDITION}/index.m3u8", 64, agents),
            f"api-channels-{how}": ("/api/channels", 32, []),
        }
        for stack in stacks.values():
            await seed(stack)
            base = stack.nginx_url if via_nginx else stack.server_url
            for path, connections, variants in loads.values():
                await run_wrk(stack, "warmup", f"{base}{path}", seconds=1,
                              connections=connections, variants=variants)  # fmt: skip
        for n in range(rounds):
            order = ("A", "B") if n % 2 == 0 else ("B", "A")  # neither side always goes first
            for name, (path, connections, variants) in loads.items():
                for side in order:
                    stack = stacks[side]
                    base = stack.nginx_url if via_nginx else stack.server_url
                    load = await run_wrk(stack, f"{side}-{name}", f"{base}{path}",
                                         seconds=seconds, connections=connections,
                                         variants=variants)  # fmt: skip
                    runs.setdefault(name, {}).setdefault(side, []).append(load)
    summary: dict[str, Any] = {}
    for name, sides in runs.items():
        row: dict[str, Any] = {}
        for side, done in sides.items():
            requests = sum(x.requests for x in done)
            cpu = sum(x.server_cpu_s for x in done)
            wall = sum(x.seconds for x in done)
            row[side] = {
                "rps": round(requests / wall),
                "per_server_cpu_s": round(requests / cpu) if cpu > 0.05 else None,
                "server_cores": round(cpu / wall, 2),
                "nginx_cores": round(sum(x.nginx_cpu_s for x in done) / wall, 2),
                "generator_cores": round(sum(x.generator_cpu_s for x in done) / wall, 2),
            }
        row["wall_ratio"] = round(row["B"]["rps"] / row["A"]["rps"], 3)
        if row["A"]["per_server_cpu_s"] and row["B"]["per_server_cpu_s"]:
            row["cpu_ratio"] = round(row["B"]["per_server_cpu_s"] / row["A"]["per_server_cpu_s"], 3)
        summary[name] = row
    loads_out = [asdict(x) for sides in runs.values() for done in sides.values() for x in done]
    return {"summary": summary, "loads": loads_out}


def markdown_ab(report: dict[str, Any]) -> str:
    """A short table for bench/results/http-<date>-ab*.md."""
    m = report["machine"]
    lines = [
        f"# HTTP A/B {report['date']}: A = {report['a']}, B = {report.get('b', 'this tree')}",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}, aiohttp {m['aiohttp']}."
        f" Load average before {report['load_before']}, after {report['load_after']}."
        f" {report['rounds']} rounds of {report['seconds']} s per side and load, alternated.",
        "",
        "| load | A req/s | B req/s | B/A wall | A req/server-CPU-s | B req/server-CPU-s"
        " | B/A CPU | cores A: server, nginx, wrk | B |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in report["summary"].items():
        a, b = row["A"], row["B"]
        cores = [
            f"{x.get('server_cores')}, {x.get('nginx_cores')}, {x.get('generator_cores')}"
            for x in (a, b)
        ]
        lines.append(
            f"| {name} | {a['rps']:,} | {b['rps']:,} | {row['wall_ratio']:.2f}x"
            f" | {a['per_server_cpu_s']} | {b['per_server_cpu_s']} | {row.get('cpu_ratio', '')}x"
            f" | {cores[0]} | {cores[1]} |"
        )
    return "\n".join([*lines, ""])


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, run every load once, write bench/results/http-<date>.json/.md."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s per load instead of 12 s")
    parser.add_argument("--no-publish", action="store_true", help="skip the ffmpeg publish")
    parser.add_argument("--tag", default="", help="suffix for the result file names")
    parser.add_argument("--ab", type=Path, metavar="DIR", help="A/B against DIR's server")
    parser.add_argument("--rounds", type=int, default=6, help="A/B rounds (2 s slices)")
    parser.add_argument(
        "--workers", type=int, metavar="N", help="A/B: this tree with 1 worker (A) and N (B)"
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        sys.exit("bench/http_load.py needs wrk: apt-get install -y wrk")
    # SIGTERM unwinds like Ctrl-C, so the private stack is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    if args.ab is not None or args.workers:
        if args.ab is not None and not (args.ab / "server" / "__main__.py").is_file():
            sys.exit(f"{args.ab} is not an Onair checkout (no server/__main__.py)")
        workers = (1, args.workers or 1)
        ab: dict[str, Any] = {
            "date": dt.datetime.now().isoformat(timespec="seconds"),
            "a": str(args.ab) if args.ab else "1 worker",
            "b": f"{workers[1]} workers, through nginx" if args.workers else "this tree",
            "rounds": args.rounds,
            "seconds": 2,
            "machine": machine(),
            "load_before": load(),
        }
        other = (args.ab or ROOT).resolve()
        ab |= asyncio.run(measure_ab(other, 2, args.rounds, workers))
        ab["load_after"] = load()
        ab["elapsed_s"] = round(time.monotonic() - started, 1)
        kind = f"workers{workers[1]}" if args.workers else "ab"
        write_results(RESULTS, "http", kind + (f"-{args.tag}" if args.tag else ""), ab, markdown_ab)
        return
    report: dict[str, Any] = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine(),
        "load_before": load(),
    }
    measured = asyncio.run(measure(3.0 if args.quick else 12.0, args.no_publish))
    report["load_after"] = load()
    report["loads"] = [asdict(x) | {"rps": round(x.rps, 1)} for x in measured["loads"]]
    report["summary"] = summarize(measured["loads"], measured["extra"])
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    write_results(RESULTS, "http", args.tag or ("quick" if args.quick else ""), report, markdown)


if __name__ == "__main__":
    main()
