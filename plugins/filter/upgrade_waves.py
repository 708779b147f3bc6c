# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter upgrade_waves: the fleet's hosts in Microsoft's order for upgrading site database servers."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._fleet.hierarchy import plan_waves


def upgrade_waves(hostvars: Any, hosts: list[str]) -> dict[str, Any]:
    """hostvars and the hosts of the run -> {waves, parent_of, problems} (see hierarchy.plan_waves)."""
    if not isinstance(hosts, list):
        raise AnsibleFilterError("upgrade_waves expects the list of the run's hosts")
    sites = {}
    for host in hosts:
        values = hostvars[host]
        sites[str(host)] = {
            "site_code": values.get("site_sql_upgrade_site_code"),
            "site_type": values.get("site_sql_upgrade_site_type"),
            "parent_site_code": values.get("site_sql_upgrade_parent_site_code"),
        }
    return plan_waves(sites)


def upgrade_held_back(hostvars: Any, host: str, secondaries: list[str]) -> list[str]:
    """The secondary sites of `host` (a primary) that did not upgrade in this run: failed, or never reached."""
    out = []
    for child in secondaries:
        values = hostvars[child]
        if values.get("site_sql_upgrade__parent_host") != host:
            continue
        account = values.get("site_sql_upgrade_account")
        done = account.get("upgraded") or account.get("skipped") or account.get("check_mode") \
            if isinstance(account, dict) else False
        if not isinstance(account, dict) or account.get("failed_step") or not done:
            out.append(str(child))
    return sorted(out)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"upgrade_waves": upgrade_waves, "upgrade_held_back": upgrade_held_back}
