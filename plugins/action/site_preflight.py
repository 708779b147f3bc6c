# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of site_preflight: one read on the host, every check decided with
plugin_utils/_sql/preflight.py, every refusal listed at once (a host is refused before any change)."""

from __future__ import annotations

from typing import Any

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.base import Call, ExecutorAction, Failed
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.errors import PlanError
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._sql import preflight as pf
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._sql import setup as su
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window import journal as jr
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.journal import JournalError
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.run import (
    caller,
    decide_run,
    process_run_id,
)


class ActionModule(ExecutorAction):
    MODULE = "site_preflight"

    def refused(self, args: Any, reason: str) -> dict[str, Any]:
        return {"problems": [reason], "upgrade_needed": False}

    def work(self, opts: dict[str, Any], call: Call) -> dict[str, Any]:
        read = call.executor("read", opts)
        if read.get("failed"):
            raise Failed(f"the preflight read failed: {read.get('msg')}", problems=[str(read.get("msg"))],
                         upgrade_needed=False)
        target = opts["target_version"]
        version = read.get("version")
        configmgr = dict(read.get("configmgr") or {})
        facts = {"version": version, "instance_id": read.get("instance_id"), "configmgr": configmgr,
                 "free_bytes": dict(read.get("free_bytes") or {}), "reboot": dict(read.get("reboot") or {}),
                 "databases": list(read.get("databases") or [])}
        result: dict[str, Any] = {"changed": False, "facts": facts}
        if not read.get("instance_id"):
            raise Failed(f"SQL Server instance {opts['instance']} is not on this host; nothing was changed",
                         upgrade_needed=False, facts=facts,
                         problems=[f"SQL Server instance {opts['instance']} is not on this host"])
        if version and su.compare_versions(str(version), target) >= 0:
            result.update({"upgrade_needed": False, "problems": [],
                           "msg": f"{call.host}: instance {opts['instance']} is at {version}, already at or above "
                                  f"{target}"})
            return result
        problems = pf.version_problems(version, target)
        problems += pf.reboot_problems(facts["reboot"])
        problems += pf.space_problems(facts["free_bytes"], {k: v * 1024**3 for k, v in opts["drives"].items()})
        problems += pf.configmgr_problems(configmgr.get("full_version"), target)
        if read.get("connect_error"):
            problems.append(f"the instance does not answer ({read['connect_error']})")
        else:
            problems += pf.database_problems(facts["databases"], configmgr.get("site_database"),
                                             opts["backup_max_age_hours"])
        problems += pf.key_problems(opts["product_key_given"], read.get("media_has_key"), opts["evaluation"])
        problems += self._holder_problems(read.get("journal_text"), opts, call.check_mode)
        if opts["probe"]:
            # The readiness probe (issue 26): the mechanisms the window relies on, exercised before any change.
            probed = call.executor("probe", opts)
            if probed.get("failed"):
                raise Failed(f"the readiness probe failed on the host: {probed.get('msg')}; nothing was left behind",
                             upgrade_needed=True, facts=facts, problems=[*problems, str(probed.get("msg"))])
            readiness = [pf.lease_readiness(probed.get("probe"))]
            result["readiness"] = readiness
            problems += [f"readiness ({row['check']}): {row['detail']}" for row in readiness if not row["ok"]]
        result.update({"upgrade_needed": True, "problems": problems})
        if problems:
            raise Failed(f"the preflight refuses the upgrade to {target}; nothing was changed: {'; '.join(problems)}",
                         **result)
        result["msg"] = f"{call.host}: ready to upgrade {opts['instance']} from {version} to {target}"
        return result

    @staticmethod
    def _holder_problems(text: Any, opts: dict[str, Any], check_mode: bool) -> list[str]:
        """Another run's unfinished journal holds the host (one run per host): refused now, before step 1."""
        try:
            journal = jr.parse(text)
        except JournalError as exc:
            return [f"the on-host journal is corrupt ({exc}): inspect it before anything runs"]
        try:
            decide_run(journal, caller(opts["run_id"], opts["takeover"]), process_run_id(), check_mode)
        except PlanError as exc:
            return [str(exc)]
        return []
