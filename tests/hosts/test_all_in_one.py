"""The all-in-one topology on one booted Debian 12 host with every role on and a block storage
volume: an earlier release converged first and used (a channel, its chat, a recording), then
this checkout converged over it, as an operator upgrades. Then used as an operator and a
viewer would: OBS-like RTMP in, HLS out over HTTPS with a certificate from the lab's ACME
server, a crash, a backup, a second converge."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.hosts.clients import (
    Deployed,
    api_get,
    assert_second_converge_changes_nothing,
    assert_services_active,
    deployment,
    https_get,
    main_pid,
    media_sequence,
    publishing,
    say,
    uris,
    wait_for,
    wait_for_playing,
)
from tests.hosts.deploy import converge, earlier_checkout
from tests.hosts.lab import run_in_lab

pytestmark = [
    pytest.mark.hosts,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (namespaces, nspawn)"),
]

SERVICES = (
    "onair@0", "nginx", "postgresql@15-main", "redis-server", "ssh", "fail2ban",
    "prometheus-node-exporter", "prometheus", "prometheus-alertmanager",
)  # fmt: skip
# The last release that ran one server process per host (onair.service, before the onair@
# workers): its deployments are the ones an upgrade changes most.
EARLIER_RELEASE = "798e9dde00feab64cb36b49b633325b7d3e9b6b5"
MEDIA_DIR = "/srv/onair-media"  # the shipped inventory's deploy_media_dir, the volume's mount


@dataclass
class Before:
    """What the earlier release's deployment held when the upgrade began."""

    channel: dict[str, Any]
    messages: list[dict[str, Any]]
    recordings: list[dict[str, Any]]


def use_before_upgrade(deployed: Deployed) -> Before:
    """A streamer goes live on channel `kept` for a while, a viewer chats, the stream ends and
    its recording is finalized."""
    with publishing(deployed, "kept"):
        wait_for_playing(deployed, "kept")
        run_in_lab(lambda: say(deployed, "kept", "Ann", "kept across the upgrade"))
        time.sleep(10)  # a recording of several segments
    wait_for(
        lambda: (
            [r["state"] for r in api_get(deployed, "/api/channels/kept/recordings")]
            in (["compressing"], ["ready"])
        ),
        120,
        "the recording to be finalized after the publisher left",
    )
    return Before(
        api_get(deployed, "/api/channels/kept"),
        api_get(deployed, "/api/channels/kept/messages"),
        api_get(deployed, "/api/channels/kept/recordings"),
    )


@pytest.fixture(scope="module")
def upgraded() -> Iterator[tuple[Deployed, Before]]:
    """One host with a volume attached, `ansible-playbook -i inventories/all-in-one site.yml`
    of the earlier release run against it (its certificate issued by the lab's ACME server),
    used, then the same command from this checkout."""
    earlier = earlier_checkout(EARLIER_RELEASE)
    with deployment(
        "all-in-one", ["onair1"], "onair1", volumes={"onair1": "8G"}, checkout=earlier
    ) as done:
        before = use_before_upgrade(done)
        started = time.monotonic()
        done.first = converge(done.lab, done.topology, done.extra)
        print(f"all-in-one upgrade converge: {time.monotonic() - started:.0f} s")
        yield done, before


@pytest.fixture(scope="module")
def deployed(upgraded: tuple[Deployed, Before]) -> Deployed:
    return upgraded[0]


def test_upgrade_keeps_channels_chat_and_recordings(upgraded: tuple[Deployed, Before]) -> None:
    deployed, before = upgraded
    assert api_get(deployed, "/api/channels/kept")["title"] == before.channel["title"]
    messages = api_get(deployed, "/api/channels/kept/messages")
    assert [m["id"] for m in messages] == [m["id"] for m in before.messages]
    assert "kept across the upgrade" in [m["text"] for m in messages]
    recordings = api_get(deployed, "/api/channels/kept/recordings")
    assert [r["id"] for r in recordings] == [r["id"] for r in before.recordings]
    # Still playable: its playlist and a segment of it (compressed or not yet).
    wait_for(lambda: recordings_play(deployed), 60, "the recording's playlist and a segment")
    # The single-process unit of the earlier release is gone; onair@0 took its place.
    assert deployed.ssh("test -e /etc/systemd/system/onair.service || echo gone").strip() == "gone"


def recordings_play(deployed: Deployed) -> bool:
    """The recording's playlist (a master once compressed), a media playlist and its first
    segment download."""
    (recording,) = api_get(deployed, "/api/channels/kept/recordings")
    url = recording["hls_url"]
    for _ in range(2):  # master → media playlist, or the media playlist itself
        status, playlist = https_get(deployed, url)
        if status != 200 or not uris(playlist):
            return False
        url = url.rsplit("/", 1)[0] + "/" + uris(playlist)[0]
        if not url.endswith(".m3u8"):
            break
    status, body = https_get(deployed, url)
    return status == 200 and len(body) > 1000


def test_media_lives_on_the_attached_volume(deployed: Deployed) -> None:
    (device,) = deployed.host.devices
    # Mounted by UUID from fstab (device names change between boots on a VPS)...
    uuid = deployed.ssh(f"blkid -s UUID -o value {device}").strip()
    assert f"UUID={uuid} {MEDIA_DIR} ext4" in deployed.ssh("cat /etc/fstab")
    # ...and what the server writes there (the recording made before the upgrade) is on it.
    assert deployed.ssh(f"findmnt -n -o SOURCE --target {MEDIA_DIR}/recordings").strip() == device
    assert deployed.ssh(f"find {MEDIA_DIR}/recordings -name '*.m3u8' | head -1").strip()


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
