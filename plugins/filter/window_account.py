# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of configmgr.sql_upgrade: a host's account of the service window, and the rollout settings checked
before any host is touched. Documentation: window_account.yml and rollout_problems.yml beside this file."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._service_window import account
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._service_window.rollout import rollout_problems


def window_account(results: Any, host: str, check_mode: bool = False) -> dict[str, Any]:
    """[[module, registered result], ...] -> the host's account (account.fold) with its text as `lines` (every
    item) and `summary` (what is left behind and failed)."""
    if not isinstance(results, list | tuple):
        raise AnsibleFilterError("window_account expects a list of [module, registered result] pairs")
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
