"""The all-in-one topology converged onto one booted Debian 12 host with every role on, then
used as an operator and a viewer would: OBS-like RTMP in, HLS out over HTTPS with a certificate
from the lab's ACME server, a crash, a backup, a second converge."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pytest

from tests.hosts.acme import Pebble, start_pebble
from tests.hosts.deploy import DOMAIN, Converge, converge
from tests.hosts.lab import Host, Lab, lab, lab_net

pytestmark = [
    pytest.mark.hosts,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (namespaces, nspawn)"),
]

SERVICES = (
    "onair", "nginx", "postgresql@15-main", "redis-server", "ssh", "fail2ban",
    "prometheus-node-exporter", "prometheus", "prometheus-alertmanager",
)  # fmt: skip
ACME_SERVER_CA = "/usr/local/share/onair-lab/acme-server-ca.pem"  # on the host


@dataclass
class Deployed:
    """The converged host, how it was converged, and the root its certificate chains to."""

    lab: Lab
    host: Host
    first: Converge
    extra: dict[str, object]
    root_ca: Path

    def ssh(self, command: str, *, check: bool = True) -> str:
        return self.lab.ssh(self.host, command, check=check)


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


@pytest.fixture(scope="module")
def deployed() -> Iterator[Deployed]:
    """One host, `ansible-playbook -i inventories/all-in-one site.yml` run against it, its
    certificate issued by the lab's ACME server."""
    with lab(["onair1"]) as running:
        host = running.hosts["onair1"]
        pebble = start_pebble(running.work, host.address)
        try:
            extra = letsencrypt_through(pebble, host)
            started = time.monotonic()
            first = converge(running, "all-in-one", extra)
            print(f"all-in-one converge: {time.monotonic() - started:.0f} s")
            yield Deployed(running, host, first, extra, pebble.issuing_root())
        finally:
            pebble.stop()


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


def test_every_service_runs_under_systemd(deployed: Deployed) -> None:
    for service in SERVICES:
        state = deployed.ssh(f"systemctl is-active {service}", check=False).strip()
        assert state == "active", (
            service,
            deployed.ssh(f"systemctl status --no-pager {service} | tail -20", check=False),
        )
    for unit in ("onair-backup.timer", "certbot.timer"):
        assert deployed.ssh(f"systemctl is-enabled {unit}").strip() == "enabled", unit
    # chrony is on, but a container may not set the clock (no CAP_SYS_TIME: its unit's
    # condition skips it); on a VPS it runs.
    assert deployed.ssh("systemctl is-enabled chrony").strip() == "enabled"
    assert "Status: active" in deployed.ssh("ufw status")
    assert "sshd" in deployed.ssh("fail2ban-client status")


def test_certificate_comes_from_the_acme_server(deployed: Deployed) -> None:
    status, _ = https_get(deployed, "/healthz")  # curl verifies the chain to Pebble's root
    assert status == 200


def test_backup_runs_as_its_timer_would(deployed: Deployed) -> None:
    deployed.ssh("systemctl start onair-backup")  # Type=oneshot: returns when it has ended
    assert deployed.ssh("systemctl show -p Result --value onair-backup").strip() == "success"
    snapshots = deployed.ssh(
        "sudo -u postgres sh -c 'set -a; . /etc/onair-backup/backup.env; restic snapshots --json'"
    )
    assert snapshots.strip().startswith("[{"), snapshots


def wait_for_playing(deployed: Deployed) -> str:
    """Until master.m3u8 lists a rendition whose playlist has a segment that downloads; that
    rendition's path."""
    found: list[str] = []

    def playing() -> bool:
        status, master = https_get(deployed, "/hls/lab/master.m3u8")
        if status != 200 or not uris(master):
            return False
        variant = "/hls/lab/" + uris(master)[0]
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
    return deployed.ssh("systemctl show -p MainPID --value onair").strip()


def test_published_stream_plays_as_hls_and_survives_a_killed_server(deployed: Deployed) -> None:
    created = deployed.ssh(
        "cd / && sudo -u onair sh -c 'set -a; . /etc/onair/onair.env; "
        "/opt/onair/venv/bin/onair channel create lab --title Lab'"
    )
    key = re.search(r"stream key: (\S+)", created)
    assert key, created
    with (deployed.lab.work / "publisher.log").open("wb") as log:
        publisher = publish(deployed, key.group(1), log)
        try:
            watch_through_a_killed_server(deployed, publisher)
        finally:
            publisher.terminate()
            publisher.wait(30)


def watch_through_a_killed_server(deployed: Deployed, publisher: subprocess.Popen[bytes]) -> None:
    """HLS plays; onair is SIGKILLed; systemd restarts it and the same rendition goes on."""
    variant = wait_for_playing(deployed)
    before = media_sequence(https_get(deployed, variant)[1])
    killed = main_pid(deployed)
    deployed.ssh("systemctl kill -s KILL onair")
    wait_for(lambda: main_pid(deployed) not in (killed, "0"), 90, "systemd to restart onair")
    wait_for(
        lambda: media_sequence(https_get(deployed, variant)[1]) > before + 2,
        180,
        "new segments after the restart",
    )
    assert wait_for_playing(deployed) == variant
    assert publisher.poll() is None, "the publisher was dropped"


def test_second_converge_changes_nothing(deployed: Deployed) -> None:
    started = time.monotonic()
    again = converge(deployed.lab, "all-in-one", deployed.extra)
    print(f"second converge: {time.monotonic() - started:.0f} s")
    assert again.changed() == {deployed.host.name: 0}, again.changed_tasks()
