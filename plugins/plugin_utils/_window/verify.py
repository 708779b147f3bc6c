# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every changing task ends by checking, with a fresh read taken by the executor after its last operation,
that what the plan promised holds: services start and stop by themselves (recovery actions, the component
manager, another tool or operator) between a plan and its end.

Internal to configmgr.sql_upgrade (controller-side, not a public API).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def broken_promises(promised: Mapping[str, Mapping[str, str]], after: Sequence[Mapping[str, Any]] | None) -> list[str]:
    """One line per service whose fresh start mode or state is not the promised one (names ignore case)."""
    if not promised:
        return []
    if after is None:
        return ["the executor returned no verification read"]
    seen = {str(entry.get("name", "")).casefold(): entry for entry in after}
    problems: list[str] = []
    for name in sorted(promised, key=str.casefold):
        want = promised[name]
        got = seen.get(name.casefold())
        if got is None:
            problems.append(f"{name} was not read back")
            continue
        if got.get("state") == "missing":
            problems.append(f"{name} no longer exists")
            continue
        if got.get("start_mode") != want["start_mode"] or got.get("state") != want["state"]:
            problems.append(f"{name} is {got.get('state')} and {got.get('start_mode')} "
                            f"(promised: {want['state']} and {want['start_mode']})")
    return problems
