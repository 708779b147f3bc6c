"""Top-level pytest setup: make this collection and ansible.windows resolvable everywhere.

The repository root is the collection root, but Python and Ansible find a collection only below an
`ansible_collections/NAMESPACE/NAME` folder. `make venv` creates that layout as a symlink,
`.build/collections/ansible_collections/configmgr/sql_upgrade -> ../../../..`, and extracts
ansible.windows into `.venv/collections`. This file makes sure of both when pytest is run directly:

- it (re)creates the symlink if it is missing;
- it puts `.build/collections` (and `.venv/collections`) on `sys.path`, so unit tests can
  `from ansible_collections.configmgr.sql_upgrade.plugins.module_utils.X import Y`;
- it exports `ANSIBLE_COLLECTIONS_PATH` with both folders, so `ansible-playbook`, `ansible` and
  `ansible-doc` started by tests resolve `configmgr.sql_upgrade.*` and `ansible.windows.*`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_COLLECTIONS = REPO_ROOT / ".build" / "collections"
VENV_COLLECTIONS = REPO_ROOT / ".venv" / "collections"
LAYOUT_LINK = BUILD_COLLECTIONS / "ansible_collections" / "configmgr" / "sql_upgrade"
LINK_TARGET = Path("..", "..", "..", "..")  # from .build/collections/ansible_collections/configmgr/


def ensure_layout_link(link: Path = LAYOUT_LINK, target: Path = LINK_TARGET) -> Path:
    """Create the ansible_collections symlink to the repository root unless it already points there."""
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return link
    if link.exists() and not link.is_symlink():
        raise RuntimeError(f"{link} exists and is not a symlink to the repository root; remove it")
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink():
        link.unlink()
    link.symlink_to(target, target_is_directory=True)
    return link


def collections_path(existing: str | None) -> str:
    """ANSIBLE_COLLECTIONS_PATH with this repo's two folders first, keeping any the user already set."""
    ours = [str(BUILD_COLLECTIONS), str(VENV_COLLECTIONS)]
    theirs = [p for p in (existing or "").split(os.pathsep) if p and p not in ours]
    return os.pathsep.join(ours + theirs)


def _setup() -> None:
    ensure_layout_link()
    if not (VENV_COLLECTIONS / "ansible_collections" / "ansible" / "windows").is_dir():
        # Not fatal for pure unit tests, but anything that runs Ansible needs it: say how to get it.
        print(f"conftest: ansible.windows not found in {VENV_COLLECTIONS}; run `make venv`", file=sys.stderr)
    os.environ["ANSIBLE_COLLECTIONS_PATH"] = collections_path(os.environ.get("ANSIBLE_COLLECTIONS_PATH"))
    for folder in (VENV_COLLECTIONS, BUILD_COLLECTIONS):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))


_setup()
