"""What the lab's checks use, as a user would: SSH to converged hosts, HTTPS as a viewer
(trusting the lab ACME server's root), FFmpeg as a publisher, waits with deadlines."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
import socketio
from aiohttp.abc import AbstractResolver, ResolveResult

from tests.deploy.helpers import ROOT
from tests.hosts.acme import Pebble, start_pebble
from tests.hosts.deploy import DOMAIN, Converge, converge
from tests.hosts.lab import Host, Lab, lab, lab_net

ACME_SERVER_CA = "/usr/local/share/onair-lab/acme-server-ca.pem"  # on the host


@dataclass
class Deployed:
    """A converged topology: the host viewers reach (and its peers), how it was converged, and
    the root its certificate chains to."""

    topology: str
    lab: Lab
    host: Host
    first: Converge
    extra: dict[str, object]
    root_ca: Path

    def ssh(self, command: str, *, check: bool = True) -> str:
        return self.lab.ssh(self.host, command, check=check)

    def on(self, name: str, command: str, *, check: bool = True) -> str:
        """A command on another host of the topology."""
        return self.lab.ssh(self.lab.hosts[name], command, check=check)


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `check` until it holds; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(1)


def letsencrypt_through(pebble: Pebble, hosts: Iterable[Host]) -> dict[str, object]:
    """The nginx role's certbot asks the lab's Pebble instead of Let's Encrypt, trusting the CA
    of Pebble's own HTTPS on every host (an operator's private ACME CA is set up the same way)."""
    for host in hosts:
        trust = host.root / ACME_SERVER_CA.lstrip("/")
        trust.parent.mkdir(parents=True, exist_ok=True)
        trust.write_bytes(pebble.server_ca.read_bytes())
    return {
        "nginx_letsencrypt_server": pebble.directory,
        "nginx_letsencrypt_ca_bundle": ACME_SERVER_CA,
    }


def https_get(
    deployed: Deployed, path: str, via: Host | None = None, agent: str = "onair-lab"
) -> tuple[int, bytes]:
    """GET https://DOMAIN/path from the lab namespace as a viewer would: DOMAIN resolves to the
    viewers' host (or `via`), and the certificate must chain to the ACME server's root.
    `agent` is the User-Agent: one player's playlist fetches count as one viewer."""
    host = via or deployed.host
    done = subprocess.run(
        lab_net([
            "curl", "--silent", "--max-time", "10", "--cacert", str(deployed.root_ca),
            "--resolve", f"{DOMAIN}:443:{host.address}", "--user-agent", agent,
            "--write-out", "\n%{http_code}", f"https://{DOMAIN}{path}",
        ]),
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    body, _, code = done.stdout.rpartition(b"\n")
    return int(code or 0), body


def channel(deployed: Deployed, slug: str, via: Host | None = None) -> dict[str, Any]:
    """GET /api/channels/<slug> as the watch page does."""
    status, body = https_get(deployed, f"/api/channels/{slug}", via)
    assert status == 200, (status, body[:300])
    found: dict[str, Any] = json.loads(body)
    return found


class OneAddress(AbstractResolver):
    """DOMAIN (any name) → one host's address: a viewer whose DNS picked that edge."""

    def __init__(self, address: str) -> None:
        self.address = address

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host, host=self.address, port=port, family=socket.AF_INET,
                proto=0, flags=socket.AI_NUMERICHOST,
            )
        ]  # fmt: skip

    async def close(self) -> None:
        return None


@asynccontextmanager
async def browser(deployed: Deployed, via: Host) -> AsyncIterator[aiohttp.ClientSession]:
    """HTTPS to https://DOMAIN through `via`, trusting only the ACME server's root, as a
    browser reaches it. Use inside lab.run_in_lab (the addresses are the lab's)."""
    context = ssl.create_default_context(cafile=str(deployed.root_ca))
    connector = aiohttp.TCPConnector(ssl=context, resolver=OneAddress(via.address))
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session
    # TLS transports finish closing on the loop's next turns; the loop ends with run_in_lab's
    # thread, and a socket left for the garbage collector is a ResourceWarning (aiohttp's
    # "graceful shutdown" advice; seen once in five split runs).
    await asyncio.sleep(0.25)


def uris(playlist: bytes) -> list[str]:
    """The URIs a playlist lists (variants or segments), in order."""
    return [line for line in playlist.decode().splitlines() if line and not line.startswith("#")]


def media_sequence(playlist: bytes) -> int:
    found = re.search(rb"#EXT-X-MEDIA-SEQUENCE:(\d+)", playlist)
    return int(found.group(1)) if found else -1


def wait_for_playing(deployed: Deployed, slug: str, via: Host | None = None) -> str:
    """Until master.m3u8 (through `via`, else the viewers' host) lists a rendition whose
    playlist has a segment that downloads; that rendition's path."""
    found: list[str] = []

    def playing() -> bool:
        status, master = https_get(deployed, f"/hls/{slug}/master.m3u8", via)
        if status != 200 or not uris(master):
            return False
        variant = f"/hls/{slug}/" + uris(master)[0]
        status, playlist = https_get(deployed, variant, via)
        if status != 200 or not uris(playlist):
            return False
        segment = variant.rsplit("/", 1)[0] + "/" + uris(playlist)[-1]
        status, body = https_get(deployed, segment, via)
        found[:] = [variant]
        return status == 200 and len(body) > 1000

    wait_for(playing, 180, "master.m3u8, a rendition playlist and a segment over HTTPS")
    return found[0]


def publish(
    deployed: Deployed, key: str, log: BinaryIO, to: Host | None = None
) -> subprocess.Popen[bytes]:
    """FFmpeg in the lab namespace pushing a test pattern as OBS would, to the viewers' host
    (or the media host `to`)."""
    return subprocess.Popen(
        lab_net([
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
            "-g", "60",  # a keyframe every 2 s, as OBS is told to send
            "-c:a", "aac", "-f", "flv", f"rtmp://{(to or deployed.host).address}/live/{key}",
        ]),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip


def api_get(deployed: Deployed, path: str) -> Any:
    """GET an API path over HTTPS as the watch page does; its JSON."""
    status, body = https_get(deployed, path)
    assert status == 200, (path, status, body[:300])
    return json.loads(body)


async def say(deployed: Deployed, slug: str, name: str, text: str) -> dict[str, Any]:
    """`name` joins `slug`'s chat with a Socket.IO client over HTTPS and sends `text`; the
    message as the server acknowledged it. Use inside lab.run_in_lab."""
    async with browser(deployed, deployed.host) as session:
        client = socketio.AsyncClient(reconnection=False, http_session=session)
        await client.connect(f"https://{DOMAIN}", transports=["websocket"])
        try:
            assert (await client.call("join", {"channel": slug, "name": name}, timeout=10))["ok"]
            sent: dict[str, Any] = await client.call(
                "message", {"channel": slug, "text": text}, timeout=10
            )
            assert "id" in sent, sent
            return sent
        finally:
            await client.disconnect()


def main_pid(deployed: Deployed) -> str:
    return deployed.ssh("systemctl show -p MainPID --value onair@0").strip()


def create_channel(deployed: Deployed, slug: str) -> str:
    """`onair channel create` over SSH, as DEPLOY.md tells the operator; the stream key."""
    created = deployed.ssh(
        "cd / && sudo -u onair sh -c 'set -a; . /etc/onair/onair.env; "
        f"/opt/onair/venv/bin/onair channel create {slug} --title {slug}'"
    )
    key = re.search(r"stream key: (\S+)", created)
    assert key, created
    return key.group(1)


@contextmanager
def publishing(
    deployed: Deployed, slug: str, to: Host | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A new channel `slug` with FFmpeg publishing to it for the length of the block (its
    stderr in work/publisher-<slug>.log)."""
    key = create_channel(deployed, slug)
    with (deployed.lab.work / f"publisher-{slug}.log").open("wb") as log:
        publisher = publish(deployed, key, log, to)
        try:
            yield publisher
        finally:
            publisher.terminate()
            publisher.wait(30)


def assert_services_active(deployed: Deployed, services: Mapping[str, Sequence[str]]) -> None:
    """Each host runs its services under systemd, enabled at boot, and ufw is on."""
    for name, units in services.items():
        for unit in units:
            state = deployed.on(name, f"systemctl is-active {unit}", check=False).strip()
            assert state == "active", (
                name,
                unit,
                deployed.on(name, f"systemctl status --no-pager {unit} | tail -20", check=False),
            )
            enabled = deployed.on(name, f"systemctl is-enabled {unit}", check=False).strip()
            assert enabled == "enabled", (name, unit, enabled)
        assert "Status: active" in deployed.on(name, "ufw status")


def assert_second_converge_changes_nothing(deployed: Deployed) -> None:
    """The same playbook again, as an operator re-runs it: every host reports changed=0."""
    started = time.monotonic()
    again = converge(deployed.lab, deployed.topology, deployed.extra)
    print(f"{deployed.topology} second converge: {time.monotonic() - started:.0f} s")
    assert again.changed() == dict.fromkeys(deployed.lab.hosts, 0), again.changed_tasks()


@contextmanager
def deployment(
    topology: str,
    names: list[str],
    viewers_host: str,
    *,
    volumes: Mapping[str, str] | None = None,
    checkout: Path = ROOT,
) -> Iterator[Deployed]:
    """Boot `names` (with `volumes` attached: host → size), start the lab's ACME server (every
    name resolves to `viewers_host`) and converge `topology` from `checkout` onto them; torn
    down at the end."""
    with lab(names, volumes) as running:
        host = running.hosts[viewers_host]
        pebble = start_pebble(running.work, host.address)
        try:
            extra = letsencrypt_through(pebble, running.hosts.values())
            started = time.monotonic()
            first = converge(running, topology, extra, checkout)
            print(f"{topology} converge: {time.monotonic() - started:.0f} s")
            yield Deployed(topology, running, host, first, extra, pebble.issuing_root())
        finally:
            pebble.stop()
