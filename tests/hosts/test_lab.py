"""The lab itself: booted Debian 12 hosts with systemd as PID 1, reachable over SSH from the
lab namespace and from each other, and with no route out."""

from __future__ import annotations

import os

import pytest

from tests.hosts.lab import lab

pytestmark = [pytest.mark.hosts, pytest.mark.slow]


@pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (namespaces, nspawn)")
def test_two_hosts_boot_systemd_and_reach_each_other_only() -> None:
    with lab(["alpha", "beta"]) as running:
        alpha, beta = running.hosts["alpha"], running.hosts["beta"]
        for host in (alpha, beta):
            assert running.ssh(host, "ps -p 1 -o comm=").strip() == "systemd"
            assert running.ssh(host, "hostname").strip() == host.name
            assert running.ssh(host, "systemctl is-active ssh").strip() == "active"
        # alpha reaches beta's sshd by name, across the lab's bridge...
        reached = running.ssh(alpha, "timeout 5 bash -c '</dev/tcp/beta/22' && echo open")
        assert reached.strip() == "open"
        # ...and nothing outside: no default route, an outside address is unreachable.
        assert "default" not in running.ssh(alpha, "ip route")
        outside = running.ssh(
            alpha, "timeout 5 bash -c '</dev/tcp/1.1.1.1/80' 2>&1 || echo refused", check=False
        )
        assert "refused" in outside and "open" not in outside
