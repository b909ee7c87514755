"""Every playbook parses for every inventory, and ansible-lint's production profile is clean."""

from __future__ import annotations

import pytest

from tests.deploy.helpers import TOPOLOGIES, run, tail


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
