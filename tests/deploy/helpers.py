"""Running ansible-playbook and ansible-lint from the project's virtualenv, offline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = ROOT / "ansible"
BIN = Path(sys.executable).parent
TOPOLOGIES = ("all-in-one", "two-server", "split")


def ansible_env() -> dict[str, str]:
    """ansible/ansible.cfg, the venv's tools first on PATH, no colour, no network look-ups."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ONAIR_", "ANSIBLE_"))}
    env.update(
        ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_LOCAL_TEMP=str(Path(os.environ.get("TMPDIR", "/tmp")) / "onair-ansible-local"),
        ANSIBLE_HOME=str(Path(os.environ.get("TMPDIR", "/tmp")) / "onair-ansible-home"),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
        NO_COLOR="1",
    )
    return env


def run(
    args: list[str], timeout: float, cwd: Path = ANSIBLE_DIR
) -> subprocess.CompletedProcess[str]:
    """Run a tool from the venv; output kept for the assertion message."""
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        cwd=cwd,
        env=ansible_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def tail(result: subprocess.CompletedProcess[str], size: int = 6000) -> str:
    """The end of a run's output, for failure messages."""
    return (result.stdout + result.stderr)[-size:]
