# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of win_service_quiesce (KB 256202 step 2 and its undo): validate on the controller, gather
in one module call, plan with plugin_utils/_window/ (classify.py, quiesce.py, processes.py), apply
in one module call (none in check mode). The run itself is _action/base.py (JournalAction), shared with
wmi_disable and net_isolate."""

from __future__ import annotations

from typing import Any

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.base import (
    Call,
    Failed,
    JournalAction,
    Planned,
    Window,
)
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.errors import PlanError
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window import journal as jr
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.classify import (
    QuiesceOptions,
    local_sessions,
    protected_services,
    sql_instance_services,
    windows_evidence,
)
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.facts import processes_from_gather
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.network import WATCHDOG_TASK
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.ops import (
    op_register_watchdog,
    op_remove_watchdog,
)
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.patterns import unmatched_patterns
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.processes import plan_processes
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.quiesce import (
    plan_quiesce,
    plan_restore,
    window_drift,
)


class ActionModule(JournalAction):
    MODULE = "win_service_quiesce"
    CORRUPT_ADVICE = "Inspect it, restore the services by hand or remove the file, then run again"
    UNDO = ("When the host answers again, run win_service_quiesce with state=restored to put it back (or this "
            "task again to finish it)")

    def plan(self, opts: dict[str, Any], window: Window) -> Planned:
        if opts["state"] == "quiesced":
            return self._quiesce(opts, window)
        if opts["state"] == "verified":
            return self._verify(opts, window)
        return self._restore(opts, window)

    def after_apply(self, result: dict[str, Any], opts: dict[str, Any], planned: Planned, applied: dict[str, Any],
                    call: Call) -> dict[str, Any]:
        """Name every service whose own process was ended because it hung while stopping (end_hung_services)."""
        for op in applied.get("applied") or []:
            if op.get("op") == "stop" and op.get("result") == "ended_hung":
                timeout = op.get("timeout") or opts["timeout"]  # a Configuration Manager service's own
                result.setdefault("warnings", []).append(
                    f"{op['name']} did not stop within {timeout} seconds (hung in STOP_PENDING): its own "
                    f"process (id {op.get('process_id')}) was ended; it is disabled for the window and the restore "
                    "starts it as recorded")
        return result

    def read_only(self, opts: dict[str, Any]) -> bool:
        return bool(opts["state"] == "verified")

    @staticmethod
    def _no_journal_in_check_mode(path: str, what: str) -> Planned:
        """Check mode after a check-mode quiesce: that quiesce wrote nothing, so there is nothing to read yet."""
        return Planned(fields={
            "plan": [],
            "msg": f"check mode: there is no open service window in the journal at {path} (a quiesce in check mode "
                   f"writes none), so {what}",
        })

    def _verify(self, opts: dict[str, Any], window: Window) -> Planned:
        facts, journal, path = window.facts, window.journal, window.path
        open_window = journal is not None and "services" in journal and journal["services"]["status"] == "quiesced"
        if not open_window and window.call.check_mode:
            return self._no_journal_in_check_mode(path, "a real run verifies the window its quiesce records")
        if journal is None or "services" not in journal:
            raise Failed(f"no service journal at {path}, so there is no service window to verify; run "
                         "win_service_quiesce with state=quiesced first", journal_path=path)
        if journal["services"]["status"] != "quiesced":
            raise Failed(f"the service window recorded in {path} (run {journal['run_id']}) was already restored; "
                         "there is no window to verify", journal_path=path, run_id=journal["run_id"])
        records = jr.service_records(journal)
        drift = window_drift(facts, records, opts["disable"], jr.wmi_record(journal))
        fields: dict[str, Any] = {"plan": [], "run_id": journal["run_id"], "drift": drift,
                                  "checked": sorted(records, key=str.casefold)}
        if drift:
            listed = "; ".join(f"{d['name']} is {d['actual']} (the window needs it {d['expected']})" for d in drift)
            raise Failed(f"the service window does not hold: {listed}. Something started or changed them after the "
                         "quiesce (a recovery action, a client health task, an operator): find it, then run "
                         "state=quiesced again", journal_path=path, **fields)
        return Planned(fields=fields)

    def _quiesce(self, opts: dict[str, Any], window: Window) -> Planned:
        facts, journal, gathered = window.facts, window.journal, window.gathered
        options = QuiesceOptions(
            keep=tuple(opts["keep"]),
            stop=tuple(opts["stop"]),
            instance=opts["instance"],
            disable=opts["disable"],
            sql_sessions=tuple(local_sessions(opts["sql_sessions"], str(gathered.get("host_name") or ""))),
            system_root=str(gathered.get("system_root") or ""),
            configmgr_stop_timeout=opts["configmgr_stop_timeout"],
            end_hung_configmgr=opts["end_hung_configmgr"],
        )
        instances = sql_instance_services(facts)
        if opts["instance"].casefold() not in {i.casefold() for i in instances}:
            raise PlanError(
                f"option instance {opts['instance']!r} names no SQL Server instance on this host (instances "
                f"found from their services: {', '.join(instances) or 'none'}); give the instance being upgraded"
            )
        base = None if jr.is_finished(journal) else journal
        base_wmi = jr.wmi_record(base)
        # Winmgmt's dependents that wmi_disable stopped in this window were running before it.
        wmi_dependents = base_wmi["dependents"] if base_wmi and base_wmi["status"] in ("disabled", "setup") else []
        plan = plan_quiesce(facts, options, wmi_dependents)
        now = str(gathered.get("host_time") or "")
        host_name = str(gathered.get("host_name") or "")
        # After every service stopped: the processes they leave behind and the named ones (Windows does
        # not end a service's child processes when the service stops).
        snapshot = processes_from_gather(gathered.get("processes") or [])
        end_ops = plan_processes(
            facts,
            snapshot,
            [d.name for d in plan.decisions if d.action == "stop"],
            opts["processes"],
            jr.process_records(base),
        )
        ops = list(plan.ops) + end_ops
        run_id = window.run.run_id
        doc_before = None
        if ops:
            # The window's lease starts with its first change: should the controller go (killed, cancelled, the
            # network lost) before net_isolate registers its own, the watchdog puts the services back.
            if not gathered.get("watchdog"):
                ops.insert(0, op_register_watchdog(WATCHDOG_TASK, opts["lease_minutes"]))
            doc = jr.merge_services(base, plan.records, host=host_name, run_id=run_id, now=now,
                                    owner=window.caller.owner)
            doc = jr.set_lease(doc, opts["lease_minutes"])
            doc_before = jr.dumps(jr.add_processes(doc, end_ops, now))
        fields: dict[str, Any] = {"plan": [d.as_dict() for d in plan.decisions]}
        warnings = [
            f"keep/stop pattern {p!r} matches no service on this host (a typo?); it changed nothing"
            for p in unmatched_patterns([*opts["keep"], *opts["stop"]], facts)
        ]
        # A stop pattern that catches a Windows service (SMS* catches the Storage Migration Service's SMS):
        # the user's stop wins, but say so, naming it.
        index = {f.name: f for f in facts}
        for d in plan.decisions:
            why = windows_evidence(index[d.name], options.system_root) if d.source == "user_stop" else None
            if why:
                warnings.append(f"{d.name} is a Windows service ({why}) and stops because {d.reason}; narrow the "
                                "pattern if that is not meant (Configuration Manager's services are SMS_*)")
        process_names = {p.name.casefold() for p in snapshot}
        warnings += [f"processes entry {n!r} matches no running process on this host; it ended nothing"
                     for n in opts["processes"] if n.casefold().removesuffix(".exe") not in process_names]
        # Services the module cannot change stay running through the window: say which, and why.
        warnings += [f"{d.name} is not stopped: {d.reason}" for d in plan.decisions if d.source == "unchangeable"]
        warnings += [
            f"{u.get('name')} could not be read at all ({u.get('reason')}): it is not in the plan and is left alone"
            for u in gathered.get("unreadable_services") or []
        ]
        if warnings:
            fields["warnings"] = warnings
        reported_run_id = run_id if (ops or base) else (journal or {}).get("run_id")
        if reported_run_id is not None:
            fields["run_id"] = reported_run_id
        # A stop of a service stopped at gather only guards against a start before the apply: not a planned change.
        running_services = {f.name for f in facts if f.is_running}
        summary = [op for op in ops if (op["op"] != "stop" or op["name"] in running_services)
                   and op["op"] != "register_watchdog"]
        ended = {f"{op['name']} (process id {op['process_id']})": op["reason"] for op in end_ops}
        return Planned(ops=ops, journal_before=doc_before, diff_before=plan.diff_before, diff_after=plan.diff_after,
                       fields=fields, summary_ops=summary, processes_before={key: "running" for key in ended},
                       processes_after={key: f"ended, not restored ({why})" for key, why in ended.items()})

    def _restore(self, opts: dict[str, Any], window: Window) -> Planned:
        facts, journal, gathered, path = window.facts, window.journal, window.gathered, window.path
        if journal is None or "services" not in journal:
            if window.call.check_mode:
                return self._no_journal_in_check_mode(path, "there is nothing recorded to restore; a real run "
                                                      "restores exactly what its quiesce records")
            if opts["missing_journal_ok"]:
                return Planned(fields={"plan": [], "msg": f"no journal at {path}: nothing to restore"})
            raise Failed(
                f"no service journal at {path}, so there is nothing recorded to restore. Run "
                "win_service_quiesce with state=quiesced first, or set missing_journal_ok=true if a missing "
                "journal is expected",
                journal_path=path,
            )
        plan = plan_restore(facts, jr.service_records(journal), protected_services(facts, opts["instance"]))
        now = str(gathered.get("host_time") or journal["updated"])
        doc_after = None
        ops = list(plan.ops)
        if not plan.blocked and (plan.ops or journal["services"]["status"] != "restored"):
            restored = jr.mark_services_restored(journal, now)
            doc_after = jr.dumps(restored)
            network = jr.network_record(restored)
            # The last of the window put back: its lease ends with it (unless the host is still isolated or WMI is
            # still off, which the watchdog must still cover).
            if gathered.get("watchdog") and not jr.window_open_besides_network(restored) and (
                    not network or network["status"] != "isolated"):
                ops.append(op_remove_watchdog(WATCHDOG_TASK))
        fields: dict[str, Any] = {"plan": plan.entries, "run_id": journal["run_id"]}
        if plan.refused:
            fields["warnings"] = [f"{name}: {why}" for name, why in plan.refused.items()]
        incomplete = None
        if plan.blocked:
            listed = "; ".join(f"{name}: {why}" for name, why in plan.blocked.items())
            incomplete = (f"the restore is not finished: {listed}. Everything else was restored; the journal {path} "
                          "keeps every record, so running this task again finishes the job")
        # A restore tries every record: one stuck service must not leave every service after it stopped.
        return Planned(ops=ops, journal_after=doc_after, diff_before=plan.diff_before, diff_after=plan.diff_after,
                       fields=fields, continue_on_error=True, incomplete=incomplete)
