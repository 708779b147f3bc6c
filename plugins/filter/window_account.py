# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of configmgr.sql_upgrade: a host's account of the service window, and the rollout settings checked
before any host is touched. Documentation: window_account.yml and rollout_problems.yml beside this file."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._fleet.rollout import rollout_problems
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window import account

#: A role's register name for what a step changed: site_sql_upgrade__window_<order>_<module>, the order a step number
#: with an optional letter (7a, 7b) or r<N> for the rescue's restores, which come after every step.
_REGISTERED = re.compile(r"__window_(?:(?P<step>[0-9]+)|r(?P<rescue>[0-9]+))(?P<letter>[a-z]?)_(?P<module>[a-z_]+)$")


def _registered_pairs(results: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """{register name: result} -> [(module, result)] in the order the steps run (see _REGISTERED)."""
    keyed: list[tuple[tuple[int, int, str], str, Any]] = []
    for name, result in results.items():
        match = _REGISTERED.search(str(name))
        if match is None:
            raise AnsibleFilterError(f"window_account: {name!r} is not a register name of the form "
                                     "<prefix>__window_<step>[letter]_<module> (e.g. site_sql_upgrade__window_2_"
                                     "win_service_quiesce) or <prefix>__window_r<N>_<module> for a restore")
        rescue, letter = match.group("rescue"), match.group("letter")
        order = (1, int(rescue), letter) if rescue else (0, int(match.group("step")), letter)
        keyed.append((order, match.group("module"), result))
    return [(module, result) for _order, module, result in sorted(keyed, key=lambda item: item[0])]


def window_account(results: Any, host: str, check_mode: bool = False) -> dict[str, Any]:
    """[[module, registered result], ...], or {register name: result} with names as _REGISTERED describes, -> the
    host's account (account.fold) with its text as `lines` (every item) and `summary` (what is left behind and
    failed)."""
    if isinstance(results, Mapping):
        results = _registered_pairs(results)
    if not isinstance(results, list | tuple):
        raise AnsibleFilterError("window_account expects a list of [module, registered result] pairs or a dict of "
                                 "registered results by register name")
    pairs: list[tuple[str, Mapping[str, Any]]] = []
    for index, item in enumerate(results):
        if not isinstance(item, list | tuple) or len(item) != 2 or not isinstance(item[1], Mapping | type(None)):
            raise AnsibleFilterError(f"window_account: item {index} is not a [module, registered result] pair")
        pairs.append((str(item[0]).rsplit(".", 1)[-1], item[1] or {}))
    folded = account.fold(str(host), pairs, bool(check_mode))
    return {**folded, "lines": account.lines(folded), "summary": account.summary(folded)}


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"window_account": window_account, "rollout_problems": rollout_problems}
