"""A module result against RETURN (or against the executor protocol, which has RETURN's shape).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# ---------------------------------------------------------------------------------------------------------
# Results against RETURN
# ---------------------------------------------------------------------------------------------------------

# Keys Ansible.Basic / Ansible add to any result; `diff` only when the module supports diff (it writes
# $module.Diff) — Ansible.Basic emits `diff` only in diff mode and only when Diff is non-empty.
COMMON_RESULT_KEYS = frozenset({"changed", "failed", "msg", "warnings", "deprecations", "invocation", "exception",
                                "skipped"})
_RETURN_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,), "int": (int,), "bool": (bool,), "float": (int, float), "list": (list,), "dict": (dict,),
    "complex": (dict, list), "path": (str,),
}


def check_result(return_doc: Mapping[str, Any], result: Mapping[str, Any], module_name: str,
                 supports_diff: bool = False, tolerated: frozenset[str] = frozenset(),
                 optional: frozenset[str] = frozenset()) -> list[str]:
    """Problems of `result` against RETURN: documented `returned: always` keys (and `returned: success` keys on
    a successful result) present, types as documented (None is accepted for any type: Ansible.Basic sends
    $null as null), nothing undocumented beyond COMMON_RESULT_KEYS (+ `diff` if `supports_diff`).

    `tolerated`: undocumented key names accepted anyway, at any depth. Only for modules of other collections,
    whose code returns keys their RETURN omits (ansible.windows win_service_info returns `win32_exit_code`);
    see `code_keys`. This collection's modules get none: their RETURN must be complete. `optional`: top-level
    RETURN keys whose absence is accepted (other collections' keys the executor never sends)."""
    allowed = set(COMMON_RESULT_KEYS) | ({"diff"} if supports_diff else set()) | set(tolerated)
    success = not result.get("failed") and not result.get("skipped")
    problems = [f"{module_name}: result key {k!r} is not documented in RETURN"
                for k in result if k not in return_doc and k not in allowed]
    doc = {k: v for k, v in return_doc.items() if k not in optional or k in result}
    return problems + _check_returns(doc, result, module_name, [], success, tolerated)


def _check_returns(doc: Mapping[str, Any], value: Mapping[str, Any], module: str, path: list[str],
                   success: bool, tolerated: frozenset[str] = frozenset()) -> list[str]:
    problems: list[str] = []
    for key, entry in doc.items():
        entry = entry or {}
        where = ".".join([*path, key])
        returned = str(entry.get("returned", "")).strip().lower()
        if key not in value:
            if returned == "always" or (returned == "success" and success):
                problems.append(f"{module}: RETURN {where} is 'returned: {returned}' but missing from the result")
            continue
        problems += _check_type(entry, value[key], module, where, success, tolerated)
    return problems


def _check_type(entry: Mapping[str, Any], item: Any, module: str, where: str, success: bool,
                tolerated: frozenset[str]) -> list[str]:
    kind = entry.get("type", "str")
    if item is None or kind == "raw":
        return []
    expected = _RETURN_TYPES.get(kind)
    if expected is None:
        return [f"{module}: RETURN {where} has unknown type {kind!r}"]
    if not isinstance(item, expected) or (kind in ("int", "float") and isinstance(item, bool)):
        return [f"{module}: RETURN {where} is documented as {kind} but the result has "
                f"{type(item).__name__} {item!r}"[:300]]
    contains = entry.get("contains")
    if not contains:
        return []
    items = item if isinstance(item, list) else [item]
    problems: list[str] = []
    for index, element in enumerate(items):
        label = f"{where}[{index}]" if isinstance(item, list) else where
        if not isinstance(element, dict):
            problems.append(f"{module}: RETURN {label} should be a dict (it documents 'contains')")
            continue
        problems += [f"{module}: result key {label}.{k} is not documented in RETURN"
                     for k in element if k not in contains and k not in tolerated]
        problems += _check_returns(contains, element, module, [label], success, tolerated)
    return problems
