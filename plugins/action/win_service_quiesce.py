# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of win_service_quiesce: validate on the controller, gather in one module call, plan with
the pure functions of module_utils/service_plan.py, apply in one module call (none in check mode)."""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.configmgr.sql_upgrade.plugins.module_utils import journal as jr
from ansible_collections.configmgr.sql_upgrade.plugins.module_utils.journal import JournalError
from ansible_collections.configmgr.sql_upgrade.plugins.module_utils.service_args import (
    summarize,
    validate_quiesce_args,
)
from ansible_collections.configmgr.sql_upgrade.plugins.module_utils.service_plan import (
    PlanError,
    QuiesceOptions,
    facts_from_gather,
    local_sessions,
    plan_processes,
    plan_quiesce,
    plan_restore,
    processes_from_gather,
)

MODULE = "configmgr.sql_upgrade.win_service_quiesce"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True

    def _fail(self, host: str, msg: str, **extra: Any) -> dict[str, Any]:
        return {"failed": True, "changed": False, "msg": f"{host}: {msg}", **extra}

    def run(self, tmp: Any = None, task_vars: Any = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        host = str(task_vars.get("inventory_hostname", "?"))
        try:
            opts = validate_quiesce_args(self._task.args)
        except PlanError as exc:
            return self._fail(host, f"win_service_quiesce: {exc}; nothing was sent to the host")

        gathered = self._execute_module(
            module_name=MODULE, module_args={**opts, "_phase": "gather"}, task_vars=task_vars
        )
        if gathered.get("failed"):
            return self._fail(host, f"gathering services failed: {gathered.get('msg')}")
        path = gathered.get("journal_path", jr.JOURNAL_PATH)
        try:
            journal = jr.parse(gathered.get("journal_text"))
        except JournalError as exc:
            return self._fail(
                host,
                f"the journal {path} is corrupt or was tampered with ({exc}); nothing was changed. "
                "Inspect it, restore the services by hand or remove the file, then run again",
                journal_path=path,
            )
        try:
            facts = facts_from_gather(gathered.get("services") or [])
            if opts["state"] == "quiesced":
                outcome = self._quiesce(opts, facts, journal, gathered)
            else:
                outcome = self._restore(opts, facts, journal, gathered, path)
        except PlanError as exc:
            return self._fail(host, f"{exc}; nothing was changed", journal_path=path)
        if "failed" in outcome:
            outcome["msg"] = f"{host}: {outcome['msg']}"
            return outcome

        ops, doc_before, doc_after = outcome.pop("_ops"), outcome.pop("_before"), outcome.pop("_after")
        diff = {"before": outcome.pop("_diff_before"), "after": outcome.pop("_diff_after")}
        if outcome.get("run_id") is None:
            outcome.pop("run_id", None)
        result.update(outcome)
        result["journal_path"] = path
        changed = bool(ops) or doc_before is not None or doc_after is not None
        result["changed"] = changed
        if self._task.diff:
            result["diff"] = diff
        result.update(summarize(ops))
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
        done = applied.get("applied") or []
        result.update(summarize(done))
        if applied.get("failed"):
            result["failed"] = True
            result["msg"] = f"{host}: {applied.get('msg')}"
            if applied.get("failed_op"):
                result["failed_op"] = applied["failed_op"]
        return result

    def _quiesce(
        self, opts: dict[str, Any], facts: list, journal: dict[str, Any] | None, gathered: dict[str, Any]
    ) -> dict[str, Any]:
        options = QuiesceOptions(
            keep=tuple(opts["keep"]),
            stop=tuple(opts["stop"]),
            instance=opts["instance"],
            disable=opts["disable"],
            sql_sessions=tuple(local_sessions(opts["sql_sessions"], str(gathered.get("host_name") or ""))),
        )
        plan = plan_quiesce(facts, options)
        now = str(gathered.get("host_time") or "")
        host_name = str(gathered.get("host_name") or "")
        base = None if jr.is_finished(journal) else journal
        # After every service stopped: the processes they leave behind and the named ones (Windows does
        # not end a service's child processes when the service stops).
        end_ops = plan_processes(
            facts,
            processes_from_gather(gathered.get("processes") or []),
            [d.name for d in plan.decisions if d.action == "stop"],
            opts["processes"],
            jr.process_records(base),
        )
        ops = list(plan.ops) + end_ops
        run_id = base["run_id"] if base else jr.make_run_id(host_name, now)
        doc_before = None
        if ops:
            doc = jr.merge_services(base, plan.records, host=host_name, run_id=run_id, now=now)
            doc_before = jr.dumps(jr.add_processes(doc, end_ops, now))
        return {
            "plan": [d.as_dict() for d in plan.decisions],
            "run_id": run_id if (ops or base) else (journal or {}).get("run_id"),
            "_ops": ops,
            "_before": doc_before,
            "_after": None,
            "_diff_before": plan.diff_before,
            "_diff_after": plan.diff_after,
        }

    def _restore(
        self,
        opts: dict[str, Any],
        facts: list,
        journal: dict[str, Any] | None,
        gathered: dict[str, Any],
        path: str,
    ) -> dict[str, Any]:
        if journal is None or "services" not in journal:
            if opts["missing_journal_ok"]:
                return {
                    "plan": [],
                    "_ops": [],
                    "_before": None,
                    "_after": None,
                    "_diff_before": {},
                    "_diff_after": {},
                    "msg": f"no journal at {path}: nothing to restore",
                }
            return {
                "failed": True,
                "changed": False,
                "journal_path": path,
                "msg": f"no service journal at {path}, so there is nothing recorded to restore. Run "
                "win_service_quiesce with state=quiesced first, or set missing_journal_ok=true if a missing "
                "journal is expected",
            }
        plan = plan_restore(facts, jr.service_records(journal))
        now = str(gathered.get("host_time") or journal["updated"])
        doc_after = None
        if plan.ops or journal["services"]["status"] != "restored":
            doc_after = jr.dumps(jr.mark_services_restored(journal, now))
        return {
            "plan": plan.entries,
            "run_id": journal["run_id"],
            "_ops": plan.ops,
            "_before": None,
            "_after": doc_after,
            "_diff_before": plan.diff_before,
            "_diff_after": plan.diff_after,
        }
