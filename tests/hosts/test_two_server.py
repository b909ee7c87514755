"""The two-server topology on two booted Debian 12 hosts, as inventories/two-server has it:
data1 (PostgreSQL, Redis, backups, Prometheus) and media1 (nginx-rtmp, Onair, the public web).
Onair on media1 reaches data1's PostgreSQL and Redis over the private network. Last, data1 is
destroyed and a fresh one restored from its backup as docs/DEPLOY.md tells the operator."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.hosts.clients import (
    Deployed,
    api_get,
    assert_second_converge_changes_nothing,
    assert_services_active,
    create_channel,
    deployment,
    https_get,
    publish,
    publishing,
    say,
    wait_for,
    wait_for_playing,
)
from tests.hosts.deploy import converge
from tests.hosts.lab import run, run_in_lab

pytestmark = [
    pytest.mark.hosts,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (namespaces, nspawn)"),
]

SERVICES = {
    "data1": ("postgresql@15-main", "redis-server", "fail2ban", "prometheus-node-exporter",
              "prometheus", "prometheus-alertmanager"),
    "media1": ("onair@0", "nginx", "fail2ban", "prometheus-node-exporter"),
}  # fmt: skip


@pytest.fixture(scope="module")
def deployed() -> Iterator[Deployed]:
    with deployment("two-server", ["data1", "media1"], "media1") as done:
        yield done


def test_each_host_runs_its_services(deployed: Deployed) -> None:
    assert_services_active(deployed, SERVICES)
    # Onair's database and Redis are data1's, reached over the private network.
    environment = deployed.ssh("cat /etc/onair/onair.env")
    data1 = deployed.lab.hosts["data1"].address
    assert f"@{data1}:5432/" in environment and f"@{data1}:6379" in environment


def test_published_stream_plays_as_hls(deployed: Deployed) -> None:
    with publishing(deployed, "two"):
        wait_for_playing(deployed, "two")


def test_second_converge_changes_nothing(deployed: Deployed) -> None:
    assert_second_converge_changes_nothing(deployed)


def test_data_host_destroyed_then_restored_from_its_backup(deployed: Deployed) -> None:
    """A channel with chat; the nightly backup; data1 destroyed. A fresh data1 is converged
    (`--limit data1`), the restic repository copied onto it and restored, Onair started: the
    channel, its chat and its stream key are back."""
    key = create_channel(deployed, "restored")
    sent = run_in_lab(lambda: say(deployed, "restored", "Ann", "before the fire"))
    deployed.on("data1", "systemctl start onair-backup")  # what the 04:30 timer runs
    repository = "var/backups/onair/restic"
    kept = deployed.lab.work / "restic-copy"  # the operator's copy (or the off-site one)
    run(["rm", "-rf", str(kept)])
    run(["cp", "-a", str(deployed.lab.hosts["data1"].root / repository), str(kept)])

    deployed.ssh("systemctl stop 'onair@*'")
    deployed.lab.replace(deployed.lab.hosts["data1"])
    converge(deployed.lab, deployed.topology, deployed.extra, limit="data1")
    fresh = deployed.lab.hosts["data1"].root / repository
    run(["rm", "-rf", str(fresh)])
    run(["cp", "-a", str(kept), str(fresh)])
    restored = deployed.on(
        "data1",
        "cd / && sudo -u postgres dropdb onair && sudo -u postgres createdb -O onair onair"
        " && sudo -u postgres onair-restore onair",
    )
    assert "restored into onair" in restored
    deployed.ssh("systemctl start onair@0")

    wait_for(lambda: https_get(deployed, "/healthz")[0] == 200, 60, "Onair to be up again")
    assert api_get(deployed, "/api/channels/restored")["title"] == "restored"
    messages = api_get(deployed, "/api/channels/restored/messages")
    assert [(m["id"], m["text"]) for m in messages] == [(sent["id"], "before the fire")]
    # The streamer's key still works: their OBS goes live as before.
    with (deployed.lab.work / "publisher-restored.log").open("wb") as log:
        publisher = publish(deployed, key, log)
        try:
            wait_for_playing(deployed, "restored")
        finally:
            publisher.terminate()
            publisher.wait(30)
