"""The split topology on four booted Debian 12 hosts, as inventories/split has it: db1
(PostgreSQL, Redis, backups, and the monitor: Prometheus, Alertmanager), media1 (RTMP ingest,
transcoding, the HLS origin on the private network) and edge1, edge2 (the public web, chat and
HLS fetched from media1), each with its own Let's Encrypt certificate for the one public name.
Then used as streamers, viewers, chatters and an attacker would, and rebooted."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import socketio

from tests.hosts.clients import (
    Deployed,
    assert_second_converge_changes_nothing,
    assert_services_active,
    browser,
    channel,
    deployment,
    https_get,
    publishing,
    wait_for,
    wait_for_playing,
)
from tests.hosts.deploy import DOMAIN
from tests.hosts.lab import run_in_lab

pytestmark = [
    pytest.mark.hosts,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (namespaces, nspawn)"),
]

HOSTS = ["db1", "media1", "edge1", "edge2"]
EVERYWHERE = ("ssh", "fail2ban", "prometheus-node-exporter")
SERVICES = {
    "db1": (*EVERYWHERE, "postgresql@15-main", "redis-server", "prometheus",
            "prometheus-alertmanager"),
    "media1": (*EVERYWHERE, "nginx", "onair@0"),
    "edge1": (*EVERYWHERE, "nginx", "onair@0"),
    "edge2": (*EVERYWHERE, "nginx", "onair@0"),
}  # fmt: skip
SLUG = "split"


@pytest.fixture(scope="module")
def deployed() -> Iterator[Deployed]:
    """Four hosts, `ansible-playbook -i inventories/split site.yml`. The lab's DNS names edge1
    for every name, so Pebble checks edge2's certificate order at edge1 too (as Let's Encrypt
    may with two A records) and edge1 must ask edge2 for the token."""
    with deployment("split", HOSTS, "edge1") as done:
        yield done


@pytest.fixture(scope="module")
def live(deployed: Deployed) -> Iterator[subprocess.Popen[bytes]]:
    """A channel publishing to media1 for the tests that watch it."""
    with publishing(deployed, SLUG, to=deployed.lab.hosts["media1"]) as publisher:
        yield publisher


def test_each_host_runs_its_services(deployed: Deployed) -> None:
    assert_services_active(deployed, SERVICES)
    db1 = deployed.lab.hosts["db1"].address
    for name in ("media1", "edge1", "edge2"):  # Onair on db1's PostgreSQL and Redis
        environment = deployed.on(name, "cat /etc/onair/onair.env")
        assert f"@{db1}:5432/" in environment and f"@{db1}:6379" in environment


def test_each_edge_has_a_certificate_from_the_acme_server(deployed: Deployed) -> None:
    for edge in ("edge1", "edge2"):  # curl verifies the chain to Pebble's root
        assert https_get(deployed, "/healthz", deployed.lab.hosts[edge])[0] == 200, edge


def test_stream_published_to_media1_plays_through_both_edges(
    deployed: Deployed, live: subprocess.Popen[bytes]
) -> None:
    for edge in ("edge1", "edge2"):
        wait_for_playing(deployed, SLUG, deployed.lab.hosts[edge])
    assert live.poll() is None


def test_viewer_counts_agree_across_edges(
    deployed: Deployed, live: subprocess.Popen[bytes]
) -> None:
    """A player on each edge (two playlist fetches make a viewer): both edges give the same
    count, these two included (the earlier checks' fetches may still count as a third)."""
    edges = [deployed.lab.hosts["edge1"], deployed.lab.hosts["edge2"]]
    variant = wait_for_playing(deployed, SLUG, edges[0])
    for _ in range(3):
        for number, edge in enumerate(edges):
            assert https_get(deployed, variant, edge, agent=f"player-{number}")[0] == 200

    def counted() -> bool:
        first, second = (channel(deployed, SLUG, edge)["viewers"] for edge in edges)
        return bool(first == second >= 2)

    wait_for(counted, 30, "both edges to count the same players, these two included")


async def chat_between_edges(deployed: Deployed) -> dict[str, Any]:
    """Ann chats on edge1 and Bob on edge2, each a Socket.IO client over HTTPS: what Bob
    received of Ann's message, and the viewer counts each was told."""
    edge1, edge2 = deployed.lab.hosts["edge1"], deployed.lab.hosts["edge2"]
    async with browser(deployed, edge1) as via1, browser(deployed, edge2) as via2:
        ann = socketio.AsyncClient(reconnection=False, http_session=via1)
        bob = socketio.AsyncClient(reconnection=False, http_session=via2)
        received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        counts: dict[str, int] = {}
        agreed = asyncio.Event()  # each has been told the same count, 2 or more
        bob.on("message", received.put)

        def counter(who: str) -> Any:
            async def viewers(payload: dict[str, Any]) -> None:
                counts[who] = payload["count"]
                if len(counts) == 2 and counts["ann"] == counts["bob"] >= 2:
                    agreed.set()

            return viewers

        ann.on("viewers", counter("ann"))
        bob.on("viewers", counter("bob"))
        try:
            for client in (ann, bob):
                await client.connect(f"https://{DOMAIN}", transports=["websocket"])
            assert (await ann.call("join", {"channel": SLUG, "name": "Ann"}, timeout=10))["ok"]
            assert (await bob.call("join", {"channel": SLUG, "name": "Bob"}, timeout=10))["ok"]
            sent = await ann.call("message", {"channel": SLUG, "text": "hi from edge1"}, timeout=10)
            async with asyncio.timeout(15):
                while True:
                    message = await received.get()
                    if message["text"] == "hi from edge1":
                        break
            async with asyncio.timeout(30):  # pushed to each edge's chatters as they change
                await agreed.wait()
            return {"sent": sent, "received": message, "counts": counts}
        finally:
            for client in (ann, bob):
                await client.disconnect()


def test_chat_sent_on_one_edge_arrives_on_the_other(
    deployed: Deployed, live: subprocess.Popen[bytes]
) -> None:
    seen = run_in_lab(lambda: chat_between_edges(deployed))
    assert seen["received"]["id"] == seen["sent"]["id"]
    assert seen["received"]["user"]["name"] == "Ann"
    # Each edge counts the other's chatter (or more players, whichever is more): the same.
    assert seen["counts"]["ann"] == seen["counts"]["bob"] >= 2


def test_prometheus_on_db1_scrapes_every_target(deployed: Deployed) -> None:
    # Our jobs label each target with its host. (Debian's default configuration, which ran
    # from boot until the role's took over, scraped itself and the local node exporter: those
    # series stay visible for Prometheus's 5 minute look-back, and have no host label.)
    url = "http://127.0.0.1:9090/api/v1/query?query=" + quote('up{host!=""}')
    query = f"import urllib.request; print(urllib.request.urlopen('{url}').read().decode())"
    expected = {("node", name) for name in HOSTS} | {
        ("onair", name) for name in ("media1", "edge1", "edge2")
    }
    found: dict[tuple[str, str], str] = {}

    def all_up() -> bool:
        answer = json.loads(deployed.on("db1", f'python3 -c "{query}"'))
        found.clear()
        for series in answer["data"]["result"]:
            found[(series["metric"]["job"], series["metric"]["host"])] = series["value"][1]
        return set(found) == expected and set(found.values()) == {"1"}

    try:
        wait_for(all_up, 90, "up == 1 for every target")
    except AssertionError as err:
        raise AssertionError(f"{err}: {found}") from None


def reaches(deployed: Deployed, source: str, target: str, port: int) -> bool:
    """A TCP connection from host `source` to `target`'s private address and `port` opens."""
    address = deployed.lab.hosts[target].address
    probe = f"timeout 5 bash -c '</dev/tcp/{address}/{port}' 2>/dev/null && echo open || echo no"
    return deployed.on(source, probe).strip() == "open"


def test_ufw_refuses_what_is_closed_to_a_host(deployed: Deployed) -> None:
    # media1's node exporter listens on its private address for the monitor (db1) only.
    assert reaches(deployed, "db1", "media1", 9100)
    assert not reaches(deployed, "edge1", "media1", 9100)
    # db1's PostgreSQL is for Onair's hosts; the edge reaches it.
    assert reaches(deployed, "edge1", "db1", 5432)


def test_fail2ban_bans_an_address_that_keeps_failing_ssh(deployed: Deployed) -> None:
    """edge1 keeps trying to log in to media1 as a user that does not exist, one try every
    5 s (under ufw's limit of 6 new SSH connections in 30 s), until fail2ban bans it; then
    media1 refuses even SSH's first packet from edge1. The ban is lifted afterwards."""
    attacker = deployed.lab.hosts["edge1"].address
    attempt = (
        "ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
        f"-o ConnectTimeout=5 intruder@{deployed.lab.hosts['media1'].address} true"
    )

    def banned() -> bool:
        return attacker in deployed.on("media1", "fail2ban-client status sshd")

    try:
        for _ in range(12):  # fail2ban_maxretry is 5 within 10 minutes
            deployed.on("edge1", attempt, check=False)
            if banned():
                break
            time.sleep(5)
        else:
            journal = deployed.on(
                "media1",
                "fail2ban-client status sshd; journalctl -u ssh -u fail2ban -n 40 --no-pager",
                check=False,
            )
            raise AssertionError(f"edge1 not banned after 12 failed logins:\n{journal}")
        assert not reaches(deployed, "edge1", "media1", 22)
        assert reaches(deployed, "db1", "media1", 22)  # only the attacker
    finally:
        deployed.on("media1", f"fail2ban-client set sshd unbanip {attacker}", check=False)


def test_second_converge_changes_nothing(deployed: Deployed) -> None:
    assert_second_converge_changes_nothing(deployed)


def test_rebooted_media_host_comes_back_with_every_service(deployed: Deployed) -> None:
    media1 = deployed.lab.hosts["media1"]
    deployed.lab.reboot(media1)
    assert_services_active(deployed, {"media1": SERVICES["media1"]})
    # A streamer publishing after the reboot plays through an edge again.
    with publishing(deployed, "rebooted", to=media1):
        wait_for_playing(deployed, "rebooted", deployed.lab.hosts["edge2"])
