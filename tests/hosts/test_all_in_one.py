"""The all-in-one topology converged onto one booted Debian 12 host with every role on, then
used as an operator and a viewer would: OBS-like RTMP in, HLS out over HTTPS with a certificate
from the lab's ACME server, a crash, a backup, a second converge."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from tests.hosts.clients import (
    Deployed,
    assert_second_converge_changes_nothing,
    assert_services_active,
    deployment,
    https_get,
    main_pid,
    media_sequence,
    publishing,
    wait_for,
    wait_for_playing,
)

pytestmark = [
    pytest.mark.hosts,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (namespaces, nspawn)"),
]

SERVICES = (
    "onair@0", "nginx", "postgresql@15-main", "redis-server", "ssh", "fail2ban",
    "prometheus-node-exporter", "prometheus", "prometheus-alertmanager",
)  # fmt: skip


@pytest.fixture(scope="module")
def deployed() -> Iterator[Deployed]:
    """One host, `ansible-playbook -i inventories/all-in-one site.yml` run against it, its
    certificate issued by the lab's ACME server."""
    with deployment("all-in-one", ["onair1"], "onair1") as done:
        yield done


def test_every_service_runs_under_systemd(deployed: Deployed) -> None:
    assert_services_active(deployed, {deployed.host.name: SERVICES})
    for unit in ("onair-backup.timer", "certbot.timer"):
        assert deployed.ssh(f"systemctl is-enabled {unit}").strip() == "enabled", unit
    # chrony is on, but a container may not set the clock (no CAP_SYS_TIME: its unit's
    # condition skips it); on a VPS it runs.
    assert deployed.ssh("systemctl is-enabled chrony").strip() == "enabled"
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


def test_published_stream_plays_as_hls_and_survives_a_killed_server(deployed: Deployed) -> None:
    with publishing(deployed, "lab") as publisher:
        watch_through_a_killed_server(deployed, publisher)


def watch_through_a_killed_server(deployed: Deployed, publisher: subprocess.Popen[bytes]) -> None:
    """HLS plays; onair is SIGKILLed; systemd restarts it and the same rendition goes on."""
    variant = wait_for_playing(deployed, "lab")
    before = media_sequence(https_get(deployed, variant)[1])
    killed = main_pid(deployed)
    deployed.ssh("systemctl kill -s KILL onair@0")
    wait_for(lambda: main_pid(deployed) not in (killed, "0"), 90, "systemd to restart onair")
    try:
        wait_for(
            lambda: media_sequence(https_get(deployed, variant)[1]) > before + 2,
            180,
            "new segments after the restart",
        )
    except AssertionError as err:  # say what the server did meanwhile
        journal = deployed.ssh("journalctl -u onair@0 --no-pager -n 60 -o cat", check=False)
        raise AssertionError(f"{err}; the server's log:\n{journal}") from None
    assert wait_for_playing(deployed, "lab") == variant
    assert publisher.poll() is None, "the publisher was dropped"


def test_second_converge_changes_nothing(deployed: Deployed) -> None:
    assert_second_converge_changes_nothing(deployed)
