"""The real-Windows-lab targets (tests/integration/targets) cannot run here; prove they stay valid.

Each target is run through `ansible-playbook --syntax-check` as ansible-test would include it (a role),
which also resolves every module name: a renamed module or option-less typo in a target fails here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TARGETS = REPO / "tests" / "integration" / "targets"
INVENTORY = REPO / "tests" / "integration" / "inventory.winrm.template"
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
TARGET_NAMES = sorted(p.name for p in TARGETS.iterdir() if p.is_dir())


def syntax_check(target_dir: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    playbook = tmp_path / "site.yml"
    playbook.write_text(
        "- hosts: windows\n  gather_facts: false\n  roles:\n"
        f"    - role: {target_dir}\n",
        encoding="utf-8",
    )
    env = dict(os.environ, ANSIBLE_NOCOLOR="1")
    return subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "--syntax-check", "-i", str(INVENTORY), str(playbook)],
        capture_output=True, text=True, env=env, check=False, timeout=120,
    )


def test_every_module_has_a_lab_target():
    modules = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.ps1"))
    assert modules, "no modules found"
    assert [m for m in modules if m not in TARGET_NAMES] == []


@pytest.mark.parametrize("name", TARGET_NAMES)
def test_target_is_windows_and_syntax_checks(name, tmp_path):
    aliases = (TARGETS / name / "aliases").read_text(encoding="utf-8").split()
    assert "windows" in aliases
    result = syntax_check(TARGETS / name, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_syntax_check_catches_an_unknown_module(tmp_path):
    broken = tmp_path / "broken_target"
    (broken / "tasks").mkdir(parents=True)
    (broken / "tasks" / "main.yml").write_text(
        "- name: A module that does not exist\n  configmgr.sql_upgrade.no_such_module:\n    state: x\n",
        encoding="utf-8",
    )
    result = syntax_check(broken, tmp_path)
    assert result.returncode != 0
    assert "no_such_module" in result.stdout + result.stderr
