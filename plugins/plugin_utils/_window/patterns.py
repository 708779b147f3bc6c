# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The keep / stop patterns: validated as data, matched case-insensitively as Windows compares service names.

Internal to configmgr.sql_upgrade (controller-side, not a public API).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Any

from .._action.errors import PlanError
from .facts import ServiceFact


def plain_type(value: Any) -> str:
    """The YAML / JSON type a user wrote, for messages (Ansible 2.19 tags values: type(value).__name__ would
    print an internal name such as _AnsibleTaggedInt)."""
    for kind, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str"), (list, "list"), (dict, "dict")):
        if isinstance(value, kind):
            return name
    return "null" if value is None else "value"


def validate_patterns(option: str, patterns: Any) -> list[str]:
    """fnmatch-style patterns: a list of non-empty strings. Anything else is an error naming the option.

    Quotes, ``;``, ``$(...)``, backticks, newlines and non-ASCII are valid *data* here; they are matched,
    never evaluated, and reach the host only as JSON values.
    """
    if patterns is None:
        return []
    # Ansible's list type: a comma-separated string is split, a number is a one-item list, and the items
    # (elements: str) are converted to strings (ansible.module_utils.common.validation.check_type_list).
    if isinstance(patterns, str):
        patterns = patterns.split(",")
    elif isinstance(patterns, int | float) and not isinstance(patterns, bool):
        patterns = [str(patterns)]
    if not isinstance(patterns, list):
        raise PlanError(f"option {option} must be a list of service names or patterns, got {plain_type(patterns)}")
    result: list[str] = []
    for index, pattern in enumerate(patterns):
        if isinstance(pattern, int | float) and not isinstance(pattern, bool):
            pattern = str(pattern)
        if not isinstance(pattern, str):
            raise PlanError(f"option {option}[{index}] must be a string, got {plain_type(pattern)}")
        if not pattern.strip():
            raise PlanError(
                f"option {option}[{index}] is an empty pattern; give a service name or a pattern such as SMS_*"
            )
        if "\x00" in pattern:
            raise PlanError(f"option {option}[{index}] contains a NUL character")
        # CreateService: "forward-slash (/) and backslash (\) are not valid service name characters", so such a
        # pattern can never match; fnmatch would take an unclosed [ literally and silently match nothing.
        if "/" in pattern or "\\" in pattern:
            raise PlanError(f"option {option}[{index}] {pattern!r} contains / or \\, which no service name can")
        if _unclosed_bracket(pattern):
            raise PlanError(f"option {option}[{index}] {pattern!r} has a [ without its closing ]")
        result.append(pattern)
    return result


def _unclosed_bracket(pattern: str) -> bool:
    """True when a [ opens a character set that never closes (fnmatch's rule: a ] right after [ or [! is
    part of the set)."""
    i = 0
    while i < len(pattern):
        if pattern[i] == "[":
            j = i + 1
            if j < len(pattern) and pattern[j] == "!":
                j += 1
            if j < len(pattern) and pattern[j] == "]":
                j += 1
            close = pattern.find("]", j)
            if close < 0:
                return True
            i = close
        i += 1
    return False


def unmatched_patterns(patterns: Sequence[str], facts: Sequence[ServiceFact]) -> list[str]:
    """The patterns that match no service on the host: usually a typo worth a warning."""
    return [p for p in patterns if not any(matches(f.name, p) for f in facts)]


def matches(name: str, pattern: str) -> bool:
    """Case-insensitive fnmatch, as Windows compares service names."""
    return fnmatch.fnmatchcase(name.casefold(), pattern.casefold())


def first_match(name: str, patterns: Sequence[str]) -> str | None:
    for pattern in patterns:
        if matches(name, pattern):
            return pattern
    return None
