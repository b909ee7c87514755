"""What the lab's checks use, as a user would: SSH to converged hosts, HTTPS as a viewer
(trusting the lab ACME server's root), FFmpeg as a publisher, waits with deadlines."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tests.hosts.acme import Pebble, start_pebble
from tests.hosts.deploy import DOMAIN, Converge, converge
from tests.hosts.lab import Host, Lab, lab, lab_net

ACME_SERVER_CA = "/usr/local/share/onair-lab/acme-server-ca.pem"  # on the host


@dataclass
class Deployed:
    """A converged topology: the host viewers reach (and its peers), how it was converged, and
    the root its certificate chains to."""

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


def letsencrypt_through(pebble: Pebble, host: Host) -> dict[str, object]:
    """The nginx role's certbot asks the lab's Pebble instead of Let's Encrypt, trusting the CA
    of Pebble's own HTTPS (an operator's private ACME CA is set up the same way)."""
    trust = host.root / ACME_SERVER_CA.lstrip("/")
    trust.parent.mkdir(parents=True, exist_ok=True)
    trust.write_bytes(pebble.server_ca.read_bytes())
    return {
        "nginx_letsencrypt_server": pebble.directory,
        "nginx_letsencrypt_ca_bundle": ACME_SERVER_CA,
    }


def https_get(deployed: Deployed, path: str) -> tuple[int, bytes]:
    """GET https://DOMAIN/path from the lab namespace as a viewer would: DOMAIN resolves to the
    host, and the certificate must chain to the ACME server's root."""
    done = subprocess.run(
        lab_net([
            "curl", "--silent", "--max-time", "10", "--cacert", str(deployed.root_ca),
            "--resolve", f"{DOMAIN}:443:{deployed.host.address}",
            "--write-out", "\n%{http_code}", f"https://{DOMAIN}{path}",
        ]),
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    body, _, code = done.stdout.rpartition(b"\n")
    return int(code or 0), body


def uris(playlist: bytes) -> list[str]:
    """The URIs a playlist lists (variants or segments), in order."""
    return [line for line in playlist.decode().splitlines() if line and not line.startswith("#")]


def media_sequence(playlist: bytes) -> int:
    found = re.search(rb"#EXT-X-MEDIA-SEQUENCE:(\d+)", playlist)
    return int(found.group(1)) if found else -1


def wait_for_playing(deployed: Deployed, slug: str) -> str:
    """Until master.m3u8 lists a rendition whose playlist has a segment that downloads; that
    rendition's path."""
    found: list[str] = []

    def playing() -> bool:
        status, master = https_get(deployed, f"/hls/{slug}/master.m3u8")
        if status != 200 or not uris(master):
            return False
        variant = f"/hls/{slug}/" + uris(master)[0]
        status, playlist = https_get(deployed, variant)
        if status != 200 or not uris(playlist):
            return False
        segment = variant.rsplit("/", 1)[0] + "/" + uris(playlist)[-1]
        status, body = https_get(deployed, segment)
        found[:] = [variant]
        return status == 200 and len(body) > 1000

    wait_for(playing, 180, "master.m3u8, a rendition playlist and a segment over HTTPS")
    return found[0]


def publish(deployed: Deployed, key: str, log: BinaryIO) -> subprocess.Popen[bytes]:
    """FFmpeg in the lab namespace pushing a test pattern as OBS would."""
    return subprocess.Popen(
        lab_net([
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
            "-g", "60",  # a keyframe every 2 s, as OBS is told to send
            "-c:a", "aac", "-f", "flv", f"rtmp://{deployed.host.address}/live/{key}",
        ]),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip


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
def deployment(topology: str, names: list[str], viewers_host: str) -> Iterator[Deployed]:
    """Boot `names`, start the lab's ACME server (every name resolves to `viewers_host`) and
    converge `topology` onto them; torn down at the end."""
    with lab(names) as running:
        host = running.hosts[viewers_host]
        pebble = start_pebble(running.work, host.address)
        try:
            extra = letsencrypt_through(pebble, host)
            started = time.monotonic()
            first = converge(running, topology, extra)
            print(f"{topology} converge: {time.monotonic() - started:.0f} s")
            yield Deployed(running, host, first, extra, pebble.issuing_root())
        finally:
            pebble.stop()
