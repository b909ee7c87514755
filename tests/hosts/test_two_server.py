"""The two-server topology on two booted Debian 12 hosts, as inventories/two-server has it:
data1 (PostgreSQL, Redis, backups, Prometheus) and media1 (nginx-rtmp, Onair, the public web).
Onair on media1 reaches data1's PostgreSQL and Redis over the private network."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.hosts.clients import (
    Deployed,
    assert_second_converge_changes_nothing,
    assert_services_active,
    deployment,
    publishing,
    wait_for_playing,
)

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
