"""Digital twin of an SMS / Configuration Manager site server (see CONTRACT.md for the layers and their API).

The twin reads the collection's own contracts (the operation vocabulary of
``plugins/plugin_utils/_window/ops.py``, the PowerShell contract checks of ``tests/tools/pscontract``)
instead of copying them, so it puts the repository's ``ansible_collections`` layout (``make venv`` creates
``.build/collections``) and ``tests/tools`` on ``sys.path`` when they are not there yet.
"""

from __future__ import annotations

import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
for _folder in (_REPO / ".build" / "collections", _REPO / "tests" / "tools"):
    if str(_folder) not in sys.path:
        sys.path.append(str(_folder))
