# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""KB 256202 steps 3 and 7: Windows Management Instrumentation (winmgmt) stopped and disabled, and back.

Internal to configmgr.sql_upgrade (controller-side, not a public API).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._action.errors import PlanError
from .facts import ServiceFact
from .graph import _index, order_dependencies_first, order_dependents_first, running_dependents
from .ops import Op, op_set_mode, op_start, op_stop
from .quiesce import prior_state

WINMGMT = "Winmgmt"
#: Journal statuses of an open WMI window: disabled (KB step 3) and setup (running for today's SQL Server setup).
WINDOW_STATUSES = ("disabled", "setup")
#: The start mode winmgmt runs under for setup: not automatic, so that the window stays what the KB wants.
SETUP_START_MODE = "manual"


@dataclass
class WmiPlan:
    ops: list[Op]
    record: dict[str, Any] | None
    diff_before: dict[str, dict[str, str]] = field(default_factory=dict)
    diff_after: dict[str, dict[str, str]] = field(default_factory=dict)
    #: Recorded dependents not started because they are disabled now (a quiesce holds them): they come back
    #: with win_service_quiesce state=restored, which starts them once Winmgmt runs.
    held: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.ops)


def _winmgmt(facts: Sequence[ServiceFact]) -> ServiceFact:
    fact = _index(facts).get(WINMGMT.casefold())
    if fact is None:
        raise PlanError(
            "the host has no Winmgmt service (Windows Management Instrumentation); nothing to do is not safe to assume"
        )
    return fact


def plan_wmi_disable(facts: Sequence[ServiceFact], existing: Mapping[str, Any] | None) -> WmiPlan:
    """Stop winmgmt's running dependents (dependents first), stop winmgmt, set it Disabled.

    Windows starts winmgmt again on the next WMI client's request unless it is disabled, so disabling is
    the point. The record (prior start mode, state and running dependents) is taken only when no earlier
    run recorded it: a re-run after a partial failure must not record 'disabled' as the prior mode.
    """
    win = _winmgmt(facts)
    index = _index(facts)
    dependents = running_dependents(win.name, facts)
    record: dict[str, Any] | None = None
    if not existing or existing.get("status") not in WINDOW_STATUSES:
        record = {"start_mode": win.start_mode, "state": prior_state(win), "dependents": dependents}
    ops: list[Op] = []
    before: dict[str, dict[str, str]] = {}
    after: dict[str, dict[str, str]] = {}
    if win.start_mode != "disabled":
        ops.append(op_set_mode(win.name, "disabled"))
    for name in order_dependents_first(dependents, facts):
        ops.append(op_stop(name))
        before[name] = {"start_mode": index[name.casefold()].start_mode, "state": index[name.casefold()].state}
        after[name] = {"start_mode": index[name.casefold()].start_mode, "state": "stopped"}
    if win.is_running or ops:
        # Act on the state at apply: a WMI client may demand-start a stopped winmgmt between the gather and the
        # apply (until it is disabled, the first operation). The stop finds it stopped (already_stopped) or stops it.
        ops.append(op_stop(win.name))
    if ops:
        before[win.name] = {"start_mode": win.start_mode, "state": win.state}
        after[win.name] = {"start_mode": "disabled", "state": "stopped"}
    return WmiPlan(ops, record, before, after)


def plan_wmi_for_setup(facts: Sequence[ServiceFact], existing: Mapping[str, Any] | None) -> WmiPlan:
    """Winmgmt running again for today's SQL Server setup, inside the window: start mode manual (never
    automatic), started, and none of its dependents started (CcmExec and the rest stay as the window left them).

    SQL Server 2005 and later setup checks that WMI runs (rule WmiServiceStateCheck) and discovers features
    through it; KB 256202 step 3 removed every WMI-borne client of the instance (the SMS Provider lives in a
    WMI provider host). With the SMS services stopped and disabled and the network isolated, nothing loads the
    SMS Provider again, and the gate (sql_single_user_check) proves it. The journal's record of winmgmt's prior
    state stays; state=enabled (KB step 7) puts it back. Without an open window (no record) there is nothing
    to do if winmgmt runs; otherwise PlanError: this window did not stop it, so it is not this module's to start.
    """
    win = _winmgmt(facts)
    if not existing or existing.get("status") not in WINDOW_STATUSES:
        if win.is_running:
            return WmiPlan([], None)
        raise PlanError(f"Winmgmt is {win.state} and {win.start_mode}, but the journal records no WMI window of this "
                        "collection (wmi_disable state=disabled): start it the way it was stopped, or run "
                        "state=disabled first")
    ops: list[Op] = []
    if win.start_mode != SETUP_START_MODE:
        ops.append(op_set_mode(win.name, SETUP_START_MODE))
    if not win.is_running:
        ops.append(op_start(win.name))
    before: dict[str, dict[str, str]] = {}
    after: dict[str, dict[str, str]] = {}
    if ops:
        before[win.name] = {"start_mode": win.start_mode, "state": win.state}
        after[win.name] = {"start_mode": SETUP_START_MODE, "state": "running"}
    return WmiPlan(ops, None, before, after)


def plan_wmi_enable(facts: Sequence[ServiceFact], existing: Mapping[str, Any] | None) -> WmiPlan:
    """Put back winmgmt's recorded start mode (auto when nothing is recorded), start it when it was
    running (or nothing is recorded), then start the recorded dependents that do not run, dependencies
    first. Starting winmgmt does not start its dependents on Windows, hence the explicit list."""
    win = _winmgmt(facts)
    index = _index(facts)
    mode = "auto"
    was_running = True
    dependents: list[str] = []
    if existing:
        mode = str(existing.get("start_mode") or "auto")
        was_running = existing.get("state", "running") == "running"
        dependents = [d for d in existing.get("dependents", []) if d.casefold() in index]
    ops: list[Op] = []
    before: dict[str, dict[str, str]] = {}
    after: dict[str, dict[str, str]] = {}
    if win.start_mode != mode:
        ops.append(op_set_mode(win.name, mode))
    start_win = was_running and mode != "disabled" and not win.is_running
    if start_win:
        ops.append(op_start(win.name))
    if ops:
        before[win.name] = {"start_mode": win.start_mode, "state": win.state}
        after[win.name] = {"start_mode": mode, "state": "running" if (start_win or win.is_running) else win.state}
    held: list[str] = []
    if was_running and mode != "disabled":
        stopped = [d for d in dependents if not index[d.casefold()].is_running]
        # StartService refuses a Disabled service (ERROR_SERVICE_DISABLED, 1058): a dependent the quiesce
        # disabled (CcmExec) waits for the service restore; Winmgmt itself comes back regardless.
        held = [d for d in stopped if index[d.casefold()].start_mode == "disabled"]
        stopped = [d for d in stopped if d not in held]
        for name in order_dependencies_first(stopped, facts):
            fact = index[name.casefold()]
            ops.append(op_start(fact.name))
            before[fact.name] = {"start_mode": fact.start_mode, "state": fact.state}
            after[fact.name] = {"start_mode": fact.start_mode, "state": "running"}
    return WmiPlan(ops, None, before, after, held=sorted((index[d.casefold()].name for d in held), key=str.casefold))
