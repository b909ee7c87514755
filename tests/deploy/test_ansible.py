"""Every playbook parses for every inventory, and ansible-lint's production profile is clean."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.deploy.helpers import ANSIBLE_DIR, TOPOLOGIES, run, tail


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_playbooks_pass_syntax_check(topology: str) -> None:
    result = run(
        [
            "ansible-playbook",
            "--syntax-check",
            "-i",
            f"inventories/{topology}",
            "site.yml",
            "provision.yml",
        ],
        timeout=120,
    )
    assert result.returncode == 0, tail(result)


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_inventory_has_every_group(topology: str) -> None:
    result = run(["ansible-inventory", "-i", f"inventories/{topology}", "--graph"], timeout=60)
    assert result.returncode == 0, tail(result)
    for group in ("@data", "@media", "@edge", "@monitor"):
        assert group in result.stdout, result.stdout


def test_ansible_lint_production_profile_is_clean() -> None:
    # --offline: no Galaxy, no schema refresh; the collections come with PyPI's `ansible`.
    result = run(["ansible-lint", "--offline", "--profile", "production", "--nocolor"], timeout=300)
    assert result.returncode == 0, tail(result)
    assert "Profile 'production' was required, and it passed" in result.stdout + result.stderr


def apt_task_names() -> list[tuple[str, object]]:
    """(file, `name:`) of every ansible.builtin.apt task in the roles."""
    found = []
    for tasks in sorted((ANSIBLE_DIR / "roles").glob("*/tasks/*.yml")):
        for task in yaml.safe_load(tasks.read_text()) or []:
            if "ansible.builtin.apt" in task:
                found.append(
                    (tasks.relative_to(ANSIBLE_DIR).as_posix(), task["ansible.builtin.apt"]["name"])
                )
    return found


def test_every_apt_task_installs_a_packages_list_from_the_defaults() -> None:
    # The real-host lab builds its offline image from the roles' `*_packages` defaults: a
    # package named only in a task would be missing there (and on an air-gapped host).
    names = apt_task_names()
    assert len(names) >= 10
    for where, name in names:
        assert isinstance(name, str) and re.search(r"\b\w+_packages\b", name), (where, name)
        quoted = set(re.findall(r"'([^']*)'", name))
        assert quoted <= {"data", "media", "edge", "monitor"}, f"{where}: {name!r} names {quoted}"
