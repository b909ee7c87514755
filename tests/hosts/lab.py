"""The real-host lab (DESIGN.md "Real-host deployment suite"): booted Debian 12 containers.

One network namespace (`onair-lab`) holds a bridge; each host is a systemd-nspawn container
booting systemd as PID 1 in a network namespace of its own, its veth joined to that bridge.
Ansible and the checks run inside the lab namespace and reach the hosts over SSH with a key
made here. Addresses exist only inside these namespaces and nothing has a route out. A base
image is built once with debootstrap plus every Debian package the roles install (cached by a
hash of both lists), so the roles converge with no registry; it is copied per host. Whatever a
crashed run left is torn down by the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import yaml

NETNS = "onair-lab"
BRIDGE = "labbr0"
SUBNET = "10.77.0"  # the controller is .1, hosts from .11
CONTROLLER = f"{SUBNET}.1"
LAB_ROOT = Path(os.environ.get("ONAIR_LAB_DIR", "/var/lib/onair-lab"))
MIRROR = os.environ.get("ONAIR_LAB_MIRROR", "http://deb.debian.org/debian")
SUITE = "bookworm"
# What every lab host has before Ansible: what a fresh Debian 12 VPS has, plus nothing else
# the roles would install (role_packages() adds those).
BASE_PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "python3", "openssh-server", "sudo", "iproute2",
    "procps", "ca-certificates", "locales",
)  # fmt: skip
BOOT_TIMEOUT = 120.0
LAB_MARK = "ONAIR_LAB_HOST"  # in each container's PID 1 environment: its host name
ROLES = Path(__file__).resolve().parents[2] / "ansible" / "roles"


class LabError(Exception):
    """The lab could not be built or a host did not come up; the message says which step."""


def run(args: Sequence[str], *, timeout: float = 600, check: bool = True) -> str:
    """Run a command on the machine running the suite; its stdout, or LabError with stderr."""
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise LabError(f"{' '.join(args[:4])} … exited {done.returncode}: {done.stderr[-800:]}")
    return done.stdout


def lab_net(args: Sequence[str]) -> list[str]:
    """args run in the lab's network namespace only. Not `ip netns exec`: that also remounts
    /sys in a mount namespace of its own, hiding the cgroup tree systemd-nspawn needs."""
    return ["nsenter", f"--net=/run/netns/{NETNS}", *args]


def in_lab(args: Sequence[str], *, timeout: float = 600, check: bool = True) -> str:
    """Run a command inside the lab's network namespace (where the hosts are reachable)."""
    return run(lab_net(args), timeout=timeout, check=check)


T = TypeVar("T")
CLONE_NEWNET = 0x40000000


def run_in_lab(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run `work` on an event loop in a thread of its own that joins the lab's network
    namespace first (a network namespace is per thread), so Python clients reach the hosts as
    curl and FFmpeg do under nsenter. The thread ends with the loop, namespace and all."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def thread() -> None:
        try:
            fd = os.open(f"/run/netns/{NETNS}", os.O_RDONLY)
            try:
                if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns into the lab's namespace")
            finally:
                os.close(fd)
            outcome.append(asyncio.run(work()))
        except BaseException as err:  # handed to the caller's thread
            failure.append(err)

    worker = threading.Thread(target=thread, name="in-lab")
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
    return outcome[0]


def role_packages(roles: Path = ROLES) -> list[str]:
    """Every Debian package the roles install: the `*_packages` lists in each role's defaults
    (tests/deploy/test_ansible.py checks that every apt task installs only those)."""
    found: set[str] = set()
    for defaults in sorted(roles.glob("*/defaults/main.yml")):
        for name, value in (yaml.safe_load(defaults.read_text()) or {}).items():
            if name.endswith("_packages") and isinstance(value, list):
                found.update(str(package) for package in value)
    return sorted(found)


def image_hash(packages: Sequence[str], extra: Sequence[str] = ()) -> str:
    """What names a base image: the suite, the mirror and both sorted package lists."""
    text = "\n".join([SUITE, MIRROR, *sorted(set(packages)), "+", *sorted(set(extra))])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def install_in_image(root: Path, packages: Sequence[str]) -> None:
    """apt-get install `packages` into the image from the machine running the suite, with
    recommends, as the roles' apt tasks would on a host with a registry."""
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")  # Debian's "start no services" in a chroot
    policy.chmod(0o755)
    run(["mount", "-t", "proc", "proc", str(root / "proc")])  # some maintainer scripts read it
    try:
        run(["chroot", str(root), "apt-get", "update", "-qq"], timeout=600)
        run(
            ["chroot", str(root), "env", "DEBIAN_FRONTEND=noninteractive",
             "apt-get", "install", "-y", "-qq", *sorted(set(packages))],
            timeout=1800,
        )  # fmt: skip
        run(["chroot", str(root), "apt-get", "clean"])
    finally:
        run(["umount", str(root / "proc")], check=False)
        policy.unlink(missing_ok=True)


def base_image(packages: Sequence[str] = BASE_PACKAGES, extra: Sequence[str] = ()) -> Path:
    """The debootstrapped root filesystem for `packages` with `extra` installed by apt-get
    inside it, built once and then reused."""
    image = LAB_ROOT / "images" / image_hash(packages, extra)
    if (image / ".complete").exists():
        return image
    shutil.rmtree(image, ignore_errors=True)
    image.parent.mkdir(parents=True, exist_ok=True)
    building = image.with_name(image.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    run(
        [
            "debootstrap", "--variant=minbase", f"--include={','.join(sorted(set(packages)))}",
            SUITE, str(building), MIRROR,
        ],
        timeout=1800,
    )  # fmt: skip
    if extra:
        install_in_image(building, extra)
    # No network in the lab: apt must not try, and the hosts must not wait for it.
    (building / "etc/apt/apt.conf.d/99onair-lab").write_text(
        'Acquire::Retries "0";\nAPT::Periodic::Enable "0";\n'
    )
    for unit in ("apt-daily.timer", "apt-daily-upgrade.timer"):
        (building / "etc/systemd/system" / unit).unlink(missing_ok=True)
        (building / "etc/systemd/system" / unit).symlink_to("/dev/null")
    building.rename(image)
    (image / ".complete").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))
    return image


@dataclass
class Host:
    """One booted container."""

    name: str
    address: str
    root: Path
    process: subprocess.Popen[bytes] | None = None
    console: BinaryIO | None = None  # where its console goes (work/<name>.console.log)
    devices: tuple[str, ...] = ()  # block devices of the machine running the suite it is given

    def ssh_args(self, key: Path) -> list[str]:
        return [
            "ssh", "-i", str(key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-o", "ConnectTimeout=5",
            # One connection per host, reused: the firewall role's `ufw limit` on port 22
            # refuses a 7th new connection within 30 s, as it would an operator's loop.
            "-o", "ControlMaster=auto", "-o", f"ControlPath={key.parent}/%h.ssh",
            "-o", "ControlPersist=120",
            f"root@{self.address}",
        ]  # fmt: skip


class Lab:
    """The namespace, the bridge and the hosts of one run."""

    def __init__(self, work: Path, image: Path) -> None:
        self.work = work
        self.image = image  # every host's first disk
        self.key = work / "id_ed25519"
        self.hosts: dict[str, Host] = {}

    # -- the network -------------------------------------------------------------------------

    def create_network(self) -> None:
        """The lab namespace with its bridge; the controller's address is on the bridge."""
        run(["ip", "netns", "add", NETNS])
        in_lab(["ip", "link", "set", "lo", "up"])
        in_lab(["ip", "link", "add", BRIDGE, "type", "bridge"])
        in_lab(["ip", "addr", "add", f"{CONTROLLER}/24", "dev", BRIDGE])
        in_lab(["ip", "link", "set", BRIDGE, "up"])

    # -- hosts -------------------------------------------------------------------------------

    def make_key(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        if not self.key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "onair-lab",
                 "-f", str(self.key)])  # fmt: skip

    def add_host(self, name: str, image: Path, address: str = "") -> Host:
        """Copy the image for `name`, give it its address (the next free one unless given),
        the key and its hostname."""
        address = address or f"{SUBNET}.{11 + len(self.hosts)}"
        root = self.work / "hosts" / name
        shutil.rmtree(root, ignore_errors=True)
        root.parent.mkdir(parents=True, exist_ok=True)
        run(["cp", "-a", "--reflink=auto", str(image), str(root)], timeout=600)
        (root / "etc/hostname").write_text(name + "\n")
        network = root / "etc/systemd/network"
        network.mkdir(parents=True, exist_ok=True)
        (network / "10-lab.network").write_text(
            f"[Match]\nName=host0\n\n[Network]\nAddress={address}/24\n"
        )
        wants = root / "etc/systemd/system/multi-user.target.wants"
        wants.mkdir(parents=True, exist_ok=True)
        link = wants / "systemd-networkd.service"
        if not link.exists():
            link.symlink_to("/lib/systemd/system/systemd-networkd.service")
        ssh = root / "root/.ssh"
        ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
        (ssh / "authorized_keys").write_text(self.key.with_suffix(".pub").read_text())
        os.chmod(ssh / "authorized_keys", 0o600)
        host = self.hosts[name] = Host(name, address, root)
        known = sorted(self.hosts.values(), key=lambda h: h.address)
        for each in known:  # every host knows every other by name
            if each.process is None:  # not booted yet: a running one's files are its own
                (each.root / "etc/hosts").write_text(
                    f"127.0.0.1 localhost\n127.0.1.1 {each.name}\n"
                    + "".join(f"{h.address} {h.name}\n" for h in known)
                )
        return host

    def attach_volume(self, host: Host, size: str) -> str:
        """A block device for the host before it boots, as a VPS's attached block storage: a
        sparse file of `size` on a loop device, bound into the container. Its name there."""
        image = self.work / f"{host.name}-volume.img"
        image.unlink(missing_ok=True)
        run(["truncate", "--size", size, str(image)])
        device = run(["losetup", "--find", "--show", str(image)]).strip()
        host.devices += (device,)
        return device

    def boot(self, host: Host, *, again: bool = False) -> None:
        """Start the container: systemd as PID 1, a veth on the lab's bridge. `again`: after a
        reboot (its console log goes on)."""
        host.console = (self.work / f"{host.name}.console.log").open("ab" if again else "wb")
        host.process = subprocess.Popen(
            lab_net([
                "systemd-nspawn", "--quiet", "--boot", "--register=no", "--keep-unit",
                f"--directory={host.root}", f"--machine={host.name}",
                f"--network-bridge={BRIDGE}", "--resolv-conf=off", "--timezone=off",
                f"--setenv={LAB_MARK}={host.name}",
                *(f"--bind={device}" for device in host.devices),
                "--console=pipe",
            ]),
            stdin=subprocess.DEVNULL,
            stdout=host.console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def ssh(self, host: Host, command: str, *, timeout: float = 300, check: bool = True) -> str:
        """A command on the host as root, over SSH from inside the lab."""
        return in_lab([*host.ssh_args(self.key), command], timeout=timeout, check=check)

    def wait_booted(self, host: Host) -> None:
        """Until systemd on the host says the system is up (running, or degraded) over SSH."""
        deadline = time.monotonic() + BOOT_TIMEOUT
        last = ""
        while time.monotonic() < deadline:
            if host.process is not None and host.process.poll() is not None:
                console = (self.work / f"{host.name}.console.log").read_text(errors="replace")
                raise LabError(f"{host.name} exited while booting: {console[-1500:]}")
            try:
                last = self.ssh(
                    host, "systemctl is-system-running --wait", timeout=60, check=False
                ).strip()
            except subprocess.TimeoutExpired:
                last = "timeout"
            if last in ("running", "degraded"):
                return
            time.sleep(1)
        raise LabError(f"{host.name} did not come up within {BOOT_TIMEOUT:.0f} s (said {last!r})")

    def reboot(self, host: Host) -> None:
        """`systemctl reboot` on the host, as an operator reboots a VPS: its systemd shuts
        everything down and nspawn exits (nothing restarts it, unlike systemd-nspawn@.service),
        then the same root boots again."""
        assert host.process is not None
        self.ssh(host, "systemctl reboot", check=False)
        host.process.wait(BOOT_TIMEOUT)
        if host.console is not None:
            host.console.close()
        # The shared SSH connection died with the host's sshd.
        (self.key.parent / f"{host.address}.ssh").unlink(missing_ok=True)
        self.boot(host, again=True)
        self.wait_booted(host)

    def replace(self, host: Host) -> Host:
        """The host destroyed, as an operator destroys a VPS (powered off, its disk gone), and
        a fresh one booted under the same name and address."""
        self.power_off([host])
        shutil.rmtree(host.root)
        (self.key.parent / f"{host.address}.ssh").unlink(missing_ok=True)
        del self.hosts[host.name]
        fresh = self.add_host(host.name, self.image, host.address)
        self.boot(fresh)
        self.wait_booted(fresh)
        return fresh

    # -- teardown ----------------------------------------------------------------------------

    def power_off(self, hosts: Sequence[Host]) -> None:
        """SIGTERM (nspawn asks systemd to shut down), then kill."""
        for host in hosts:
            if host.process is not None and host.process.poll() is None:
                host.process.send_signal(signal.SIGTERM)
        for host in hosts:
            if host.process is None:
                continue
            try:
                host.process.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(host.process.pid, signal.SIGKILL)
                host.process.wait(10)
            if host.console is not None:
                host.console.close()

    def stop(self) -> None:
        """Power every host off, then remove what the lab left."""
        self.power_off(list(self.hosts.values()))
        teardown(self.work)


def _container_inits() -> list[int]:
    """The PID 1 of every lab container still running, even one whose systemd-nspawn was
    killed (it lives in the container's namespaces, not the lab's): nspawn puts
    LAB_MARK in its environment. Killing it ends every process of that container."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if LAB_MARK.encode() + b"=" in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
    return found


def teardown(work: Path) -> None:
    """Remove whatever a lab left: its containers' processes, the processes in its namespace,
    the namespace and the host copies."""
    pids = {int(p) for p in run(["ip", "netns", "pids", NETNS], check=False).split()}
    for pid in pids | set(_container_inits()):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    run(["ip", "netns", "del", NETNS], check=False)
    for volume in work.glob("*-volume.img"):
        for line in run(["losetup", "--associated", str(volume)], check=False).splitlines():
            run(["losetup", "--detach", line.split(":", 1)[0]], check=False)
        volume.unlink()
    shutil.rmtree(work / "hosts", ignore_errors=True)


@contextlib.contextmanager
def lab(names: Sequence[str], volumes: Mapping[str, str] | None = None) -> Iterator[Lab]:
    """A lab with these hosts booted and reachable over SSH; torn down at the end. Every host
    starts from the one image that holds what the roles install; `volumes`: host → size of
    the block device attached to it."""
    work = LAB_ROOT / "run"
    teardown(work)  # a crashed run's leftovers
    image = base_image(BASE_PACKAGES, role_packages())
    running = Lab(work, image)
    try:
        running.make_key()
        running.create_network()
        hosts = [running.add_host(name, image) for name in names]
        for name, size in (volumes or {}).items():
            running.attach_volume(running.hosts[name], size)
        for host in hosts:
            running.boot(host)
        for host in hosts:
            running.wait_booted(host)
        yield running
    finally:
        running.stop()
