# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rolling playbooks' settings, checked before any host is touched.

Ansible's ``serial`` takes a number of hosts, a percentage string such as ``"25%"``, or a list of them (batch
sizes that grow); 0 or a negative number silently means "every host at once", and text it cannot read ends in
a traceback. ``max_fail_percentage`` takes 0-100; a negative one quietly lets a failed batch through. Values
given with ``-e`` arrive as strings. These checks turn each of those into a sentence naming the variable.

Internal to configmgr.sql_upgrade (controller-side, not a public API).
"""

from __future__ import annotations

import re
from typing import Any

_INT = re.compile(r"\s*[+-]?\d+\s*")
_PERCENT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*%\s*")


def _batch_problem(name: str, value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return f"{name} must be a number of hosts (such as 4) or a percentage (such as '25%'), got {value!r}"
    if isinstance(value, int) or (isinstance(value, str) and _INT.fullmatch(value)):
        if int(value) < 1:
            return (f"{name} must be at least 1 host, got {value!r} (Ansible would run every host at once, "
                    "which is not a rolling upgrade)")
        return None
    match = _PERCENT.fullmatch(value) if isinstance(value, str) else None
    if match:
        if not 0 < float(match.group(1)) <= 100:
            return f"{name} must be a percentage above 0% and at most 100%, got {value!r}"
        return None
    return f"{name} must be a number of hosts (such as 4) or a percentage (such as '25%'), got {value!r}"


def rollout_problems(batch_size: Any, max_fail_percentage: Any, prefix: str = "sql_upgrade_") -> list[str]:
    """Every problem of the two settings, as sentences naming the variable; [] when both are valid.

    ``batch_size`` is one batch size or a list of them (Ansible's ``serial``); ``max_fail_percentage`` a
    whole number from 0 (stop at the first failed host) to 100 (never stop).
    """
    problems: list[str] = []
    name = f"{prefix}batch_size"
    sizes = batch_size if isinstance(batch_size, list) else [batch_size]
    if not sizes:
        problems.append(f"{name} must not be an empty list")
    for index, size in enumerate(sizes):
        problem = _batch_problem(name if len(sizes) == 1 and not isinstance(batch_size, list)
                                 else f"{name}[{index}]", size)
        if problem:
            problems.append(problem)
    name = f"{prefix}max_fail_percentage"
    value = max_fail_percentage
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and _INT.fullmatch(value))):
        problems.append(f"{name} must be a whole number from 0 to 100, got {value!r}")
    elif not 0 <= int(value) <= 100:
        problems.append(f"{name} must be from 0 (stop the rollout at the first failed host) to 100 (never stop), "
                        f"got {value!r}")
    return problems
