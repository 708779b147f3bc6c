"""`ansible-doc` renders every module of the collection (the users' first stop for options and examples)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py") if p.stem != "__init__")


def test_there_are_modules():
    assert MODULES


@pytest.mark.parametrize("name", MODULES)
def test_ansible_doc_renders(name):
    fqcn = f"configmgr.sql_upgrade.{name}"
    ansible_doc = str(Path(sys.executable).with_name("ansible-doc"))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1")
    text = subprocess.run([ansible_doc, fqcn], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert text.returncode == 0, text.stderr
    assert "OPTIONS" in text.stdout and "EXAMPLES" in text.stdout and "RETURN VALUES" in text.stdout
    data = subprocess.run([ansible_doc, "--json", fqcn], capture_output=True, text=True, env=env, timeout=120,
                          check=False)
    doc = json.loads(data.stdout)[fqcn]
    assert doc["doc"]["version_added"] == "0.1.0"
    assert doc["examples"].strip() and doc["return"]


@pytest.mark.parametrize(("plugin_type", "name"), [("filter", "window_account"), ("filter", "rollout_problems"),
                                                   ("callback", "window_account")])
def test_ansible_doc_renders_the_other_plugins(plugin_type, name):
    fqcn = f"configmgr.sql_upgrade.{name}"
    ansible_doc = str(Path(sys.executable).with_name("ansible-doc"))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1")
    data = subprocess.run([ansible_doc, "-t", plugin_type, "--json", fqcn], capture_output=True, text=True, env=env,
                          timeout=120, check=False)
    assert data.returncode == 0, data.stderr
    doc = json.loads(data.stdout)[fqcn]
    assert doc["doc"]["version_added"] == "0.1.0" and doc["doc"]["description"]
    if plugin_type == "filter":
        assert doc["examples"].strip() and doc["return"]
