# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of wmi_disable: validate, gather (one module call), plan winmgmt and its dependents with
module_utils/service_plan.py, apply (one module call; none in check mode or when nothing changes)."""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.configmgr.sql_upgrade.plugins.module_utils import journal as jr
from ansible_collections.configmgr.sql_upgrade.plugins.module_utils.journal import JournalError
from ansible_collections.configmgr.sql_upgrade.plugins.module_utils.service_args import summarize, validate_wmi_args
from ansible_collections.configmgr.sql_upgrade.plugins.module_utils.service_plan import (
    WINMGMT,
    PlanError,
    facts_from_gather,
    plan_wmi_disable,
    plan_wmi_enable,
)

MODULE = "configmgr.sql_upgrade.wmi_disable"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True

    def run(self, tmp: Any = None, task_vars: Any = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        host = str(task_vars.get("inventory_hostname", "?"))
        try:
            opts = validate_wmi_args(self._task.args)
        except PlanError as exc:
            return {
                "failed": True,
                "changed": False,
                "msg": f"{host}: wmi_disable: {exc}; nothing was sent to the host",
            }

        gathered = self._execute_module(
            module_name=MODULE, module_args={**opts, "_phase": "gather"}, task_vars=task_vars
        )
        if gathered.get("failed"):
            return {
                "failed": True,
                "changed": False,
                "msg": f"{host}: gathering services failed: {gathered.get('msg')}",
            }
        path = gathered.get("journal_path", jr.JOURNAL_PATH)
        now = str(gathered.get("host_time") or "")
        host_name = str(gathered.get("host_name") or "")
        try:
            journal = jr.parse(gathered.get("journal_text"))
            facts = facts_from_gather(gathered.get("services") or [])
            existing = jr.wmi_record(journal)
            doc_before = doc_after = None
            if opts["state"] == "disabled":
                plan = plan_wmi_disable(facts, existing)
                ops = list(plan.ops)
                if ops and opts["settle_seconds"] > 0:
                    ops.append({"op": "expect_stopped", "name": WINMGMT, "seconds": opts["settle_seconds"]})
                base = None if jr.is_finished(journal) else journal
                if ops or plan.record is not None:
                    run_id = base["run_id"] if base else jr.make_run_id(host_name, now)
                    doc = jr.set_wmi(base, plan.record, "disabled", host=host_name, run_id=run_id, now=now)
                    if doc != journal:
                        doc_before = jr.dumps(doc)
                        journal = doc
            else:
                plan = plan_wmi_enable(facts, existing)
                ops = list(plan.ops)
                if journal is not None and existing is not None and existing["status"] != "enabled":
                    journal = jr.set_wmi(journal, None, "enabled", host=host_name, run_id=journal["run_id"], now=now)
                    doc_after = jr.dumps(journal)
        except JournalError as exc:
            return {
                "failed": True,
                "changed": False,
                "journal_path": path,
                "msg": f"{host}: the journal {path} is corrupt or was tampered with ({exc}); nothing was changed. "
                "Inspect it, or remove it and set Winmgmt's start mode by hand",
            }
        except PlanError as exc:
            return {
                "failed": True,
                "changed": False,
                "journal_path": path,
                "msg": f"{host}: {exc}; nothing was changed",
            }

        changed = bool(ops) or doc_before is not None or doc_after is not None
        result.update({"changed": changed, "journal_path": path})
        if journal is not None:
            result["run_id"] = journal["run_id"]
            if "wmi" in journal:
                result["wmi"] = dict(journal["wmi"])
        result.update({k: v for k, v in summarize(ops).items() if k != "ended_processes"})
        if self._task.diff:
            result["diff"] = {"before": plan.diff_before, "after": plan.diff_after}
        if self._task.check_mode or not changed:
            return result

        applied = self._execute_module(
            module_name=MODULE,
            module_args={
                **opts,
                "_phase": "apply",
                "_plan": ops,
                "_journal_before": doc_before,
                "_journal_after": doc_after,
            },
            task_vars=task_vars,
        )
        result.update({k: v for k, v in summarize(applied.get("applied") or []).items() if k != "ended_processes"})
        if applied.get("failed"):
            result["failed"] = True
            result["msg"] = f"{host}: {applied.get('msg')}"
            if applied.get("failed_op"):
                result["failed_op"] = applied["failed_op"]
        return result
