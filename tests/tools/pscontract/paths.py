"""Where the repository and the collections are."""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: The repository root (= this collection's root).
REPO = Path(__file__).resolve().parents[3]


def collection_roots() -> list[Path]:
    """Folders holding `ansible_collections/`: ANSIBLE_COLLECTIONS_PATH, the repo's .build and .venv layouts,
    then sys.path (tests/conftest.py puts both there)."""
    roots = [Path(p) for p in os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep) if p]
    roots += [REPO / ".build" / "collections", REPO / ".venv" / "collections"]
    roots += [Path(p) for p in sys.path if p]
    return list(dict.fromkeys(roots))
