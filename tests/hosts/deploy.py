"""Converging a topology onto lab hosts: the shipped inventory plus the lab's addresses, run by
`ansible-playbook site.yml` from inside the lab namespace, as an operator runs it against VPSs."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.deploy.helpers import BIN, ROOT, ansible_env
from tests.hosts.lab import LAB_ROOT, Lab, LabError, lab_net, run

CONVERGE_TIMEOUT = 1800.0
DOMAIN = "live.example.com"  # the shipped inventories' deploy_domain


@dataclass
class Converge:
    """One ansible-playbook run: its output and the PLAY RECAP's counts per host."""

    output: str
    recap: dict[str, dict[str, int]]

    def changed(self) -> dict[str, int]:
        return {host: counts["changed"] for host, counts in self.recap.items()}

    def changed_tasks(self) -> list[str]:
        """`TASK name: changed line` for each change, to say what a second run changed."""
        task, found = "", []
        for line in self.output.splitlines():
            if line.startswith("TASK ["):
                task = line.split("]", 1)[0][6:]
            elif line.startswith("changed:"):
                found.append(f"{task}: {line}")
        return found


HOSTS_PYTHON = "/usr/bin/python3"  # Debian 12's on this machine: the hosts' 3.11 patch release


def build_python() -> Path:
    """A venv of the hosts' Python on this machine, which builds the wheelhouse (the suite's own
    may be another 3.11, and dependencies' markers differ between patch releases)."""
    venv = LAB_ROOT / "build-venv"
    if not (venv / "bin/python").exists():
        run([HOSTS_PYTHON, "-m", "venv", str(venv)], timeout=300)
    return venv / "bin/python"


def dependency_wheels() -> Path:
    """Every wheel the onair role's wheelhouse build needs but Onair's own (its dependencies and
    its build backend), downloaded once outside the lab, cached by pyproject.toml and the
    builder: the lab's controller has no PyPI, like an air-gapped deploy machine, and points
    pip here."""
    builder = run([str(build_python()), "-VV"]).encode()
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + builder).hexdigest()[:16]
    folder = LAB_ROOT / "wheels" / digest
    if (folder / ".complete").exists():
        return folder
    building = folder.with_name(digest + ".building")
    shutil.rmtree(building, ignore_errors=True)
    build_backend = "setuptools>=77"  # pyproject.toml's [build-system] requires
    run(
        [str(build_python()), "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(building),
         str(ROOT), build_backend],
        timeout=900,
    )  # fmt: skip
    for own in building.glob("onair-*.whl"):  # the role builds it from the checkout
        own.unlink()
    shutil.rmtree(folder, ignore_errors=True)
    building.rename(folder)
    (folder / ".complete").touch()
    return folder


def secrets_file(work: Path) -> Path:
    """The vault's values for this run (as vault.yml holds them on an operator's machine)."""
    path = work / "vault.json"
    if not path.exists():
        values = {
            "vault_onair_admin_token": "lab-admin-" + secrets.token_hex(12),
            "vault_onair_hook_secret": "lab-hook-" + secrets.token_hex(12),
            "vault_onair_secret_key": "lab-key-" + secrets.token_hex(12),
            "vault_onair_db_password": secrets.token_hex(12),
            "vault_redis_password": secrets.token_hex(12),
            "vault_backup_password": secrets.token_hex(12),
            "vault_backup_s3_access_key": "",
            "vault_backup_s3_secret_key": "",
            "vault_smtp_password": "",
            "vault_alert_webhook_url": "",
        }
        path.write_text(json.dumps(values))
        path.chmod(0o600)
    return path


def lab_inventory(running: Lab, extra: dict[str, object]) -> Path:
    """What provision.yml writes for real VPSs (each host's address and private address), and
    what the lab has instead of a registry: packages already in the image, a wheelhouse."""
    path = running.work / "lab-inventory.yml"
    hosts: dict[str, dict[str, object]] = {
        host.name: {"ansible_host": host.address, "private_ip": host.address}
        for host in running.hosts.values()
    }
    for host in running.hosts.values():
        if host.devices:  # its attached volume, as provision.yml's block storage
            hosts[host.name]["block_storage_device"] = host.devices[0]
    lab_vars = {
        "ansible_user": "root",
        "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_ssh_private_key_file": str(running.key),
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
        # No registry in the lab: every role's packages are in the image (tests/hosts/lab.py).
        "common_apt_update_cache": False,
        "onair_wheelhouse": True,
        "onair_build_python": str(build_python()),
        # No volume unless the lab attached one: the media folder stays on the root disk.
        "block_storage_device": "",
        **extra,
    }
    path.write_text(yaml.safe_dump({"all": {"hosts": hosts, "vars": lab_vars}}))
    return path


def parse_recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP lines: `onair1 : ok=120 changed=3 unreachable=0 failed=0 ...`."""
    recap = {}
    for host, counts in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", output, re.M):
        recap[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)}
    return recap


def converge(
    running: Lab,
    topology: str,
    extra: dict[str, object],
    checkout: Path = ROOT,
    limit: str = "",
) -> Converge:
    """`ansible-playbook -i inventories/<topology> site.yml` from `checkout` (this one unless
    given) against the lab's hosts (or `--limit` those), with `extra` variables in the lab's
    inventory (what an operator puts in group_vars)."""
    wheels = dependency_wheels()
    ansible = checkout / "ansible"
    args = [
        str(BIN / "ansible-playbook"),
        "-i", f"inventories/{topology}", "-i", str(lab_inventory(running, extra)),
        "-e", f"@{secrets_file(running.work)}",
        *(["--limit", limit] if limit else []),
        "site.yml",
    ]  # fmt: skip
    log = running.work / f"converge-{topology}.log"
    with log.open("w") as out:  # written as it runs: `tail -f` it to follow a converge
        done = subprocess.run(
            lab_net(args),
            cwd=ansible,
            env={
                **ansible_env(),
                "ANSIBLE_CONFIG": str(ansible / "ansible.cfg"),
                "PIP_NO_INDEX": "1",
                "PIP_FIND_LINKS": str(wheels),
            },
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=CONVERGE_TIMEOUT,
        )
    output = log.read_text()
    if done.returncode != 0:
        raise LabError(f"converge of {topology} failed:\n{output[-6000:]}")
    return Converge(output, parse_recap(output))


def earlier_checkout(commit: str) -> Path:
    """This repository as it was at `commit` (a release an operator deployed before), exported
    once into the lab's folder: converging it, then this checkout, is an upgrade."""
    folder = LAB_ROOT / "checkouts" / commit
    if (folder / ".complete").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    found = subprocess.run(
        ["git", "-C", str(ROOT), "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True
    )
    if found.returncode != 0:
        raise LabError(f"commit {commit} is not in this clone: the upgrade needs its history")
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", commit],
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    (folder / ".complete").touch()
    return folder
