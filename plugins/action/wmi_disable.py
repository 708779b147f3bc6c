# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of wmi_disable (KB 256202 steps 3 and 7): validate, gather (one module call), plan winmgmt
and its dependents with plugin_utils/_window/wmi.py, apply (one module call; none in check mode or
when nothing changes). The run itself is _action/base.py, shared with win_service_quiesce."""

from __future__ import annotations

from typing import Any

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.base import (
    JournalAction,
    Planned,
    Window,
)
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window import journal as jr
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.journal import JournalError
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.ops import (
    op_expect_stopped,
    summarize,
)
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.wmi import (
    WINMGMT,
    plan_wmi_disable,
    plan_wmi_enable,
    plan_wmi_for_setup,
)


class ActionModule(JournalAction):
    MODULE = "wmi_disable"
    CORRUPT_ADVICE = "Inspect it, or remove it and set Winmgmt's start mode by hand"
    UNDO = "When the host answers again, run wmi_disable with state=enabled to put WMI back"

    def summary(self, ops: list[dict[str, Any]], opts: dict[str, Any]) -> dict[str, Any]:
        # wmi_disable ends no processes, and its RETURN has no ended_processes.
        summary = {k: v for k, v in summarize(ops).items() if k != "ended_processes"}
        if opts["state"] == "running_for_setup":
            summary["restored"] = []  # Manual for setup is not Winmgmt's prior mode put back (KB step 7 does that)
        return summary

    def plan(self, opts: dict[str, Any], window: Window) -> Planned:
        facts, journal = window.facts, window.journal
        now, host_name = window.host_time, window.host_name
        try:
            existing = jr.wmi_record(journal)
            doc_before = doc_after = None
            if opts["state"] == "disabled":
                plan = plan_wmi_disable(facts, existing)
                ops = list(plan.ops)
                if ops and opts["settle_seconds"] > 0:
                    ops.append(op_expect_stopped(WINMGMT, opts["settle_seconds"]))
                base = None if jr.is_finished(journal) else journal
                if ops or plan.record is not None:
                    doc = jr.set_wmi(base, plan.record, "disabled", host=host_name, run_id=window.run.run_id, now=now,
                                     owner=window.caller.owner)
                    if doc != journal:
                        doc_before = jr.dumps(doc)
                        journal = doc
            elif opts["state"] == "running_for_setup":
                plan = plan_wmi_for_setup(facts, existing)
                ops = list(plan.ops)
                # The journal first: it says WMI runs for setup before winmgmt starts (the record of the prior
                # state stays; state=enabled and the watchdog put that back).
                if journal is not None and existing is not None and existing["status"] != "setup":
                    journal = jr.set_wmi(journal, None, "setup", host=host_name, run_id=journal["run_id"], now=now)
                    doc_before = jr.dumps(journal)
            else:
                plan = plan_wmi_enable(facts, existing)
                ops = list(plan.ops)
                if journal is not None and existing is not None and existing["status"] != "enabled":
                    journal = jr.set_wmi(journal, None, "enabled", host=host_name, run_id=journal["run_id"], now=now)
                    doc_after = jr.dumps(journal)
        except JournalError as exc:
            # jr.set_wmi validates the journal it builds: a fault there gets the same answer as an unreadable one.
            raise self.corrupt(window.path, exc) from None

        fields: dict[str, Any] = {}
        if plan.held:
            fields["warnings"] = [
                f"{name} depends on Winmgmt and was running before WMI was disabled, but it is disabled now (held by "
                "the service window of win_service_quiesce): it is not started here; win_service_quiesce "
                "state=restored starts it" for name in plan.held
            ]
        if journal is not None:
            fields["run_id"] = journal["run_id"]
            if "wmi" in journal:
                fields["wmi"] = dict(journal["wmi"])
        return Planned(ops=ops, journal_before=doc_before, journal_after=doc_after, diff_before=plan.diff_before,
                       diff_after=plan.diff_after, fields=fields, continue_on_error=opts["state"] == "enabled")
