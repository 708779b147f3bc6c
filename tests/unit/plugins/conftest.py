"""Make the collection importable as ansible_collections.configmgr.sql_upgrade for plugin unit tests.

The repository root is the collection root, so a temporary ansible_collections/configmgr/sql_upgrade
symlink to it is put on sys.path (the layout ansible-core's collection loader expects, too).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _collection_root() -> Path:
    base = Path(tempfile.mkdtemp(prefix="configmgr-coll-"))
    ns = base / "ansible_collections" / "configmgr"
    ns.mkdir(parents=True)
    (ns / "sql_upgrade").symlink_to(ROOT, target_is_directory=True)
    return base


if not any((Path(p) / "ansible_collections" / "configmgr" / "sql_upgrade").exists() for p in sys.path if p):
    sys.path.insert(0, str(_collection_root()))
