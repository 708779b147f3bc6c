# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""KB 256202 step 2 and its undo: the quiesce plan (disable, then stop, dependents first) and the restore
plan (exactly what the journal recorded, nothing else).

Internal to configmgr.sql_upgrade (controller-side, not a public API).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .classify import Decision, QuiesceOptions, classify, close_over_dependents
from .facts import ServiceFact
from .graph import _index, dependency_closure, order_dependencies_first, order_dependents_first
from .ops import Op, op_set_mode, op_start, op_stop


def prior_state(fact: ServiceFact) -> str:
    """The state a restore must bring back: pending and paused states count as running (the service
    process exists), stop_pending as running too: it had not stopped yet."""
    return "running" if fact.is_running else "stopped"


@dataclass
class QuiescePlan:
    decisions: list[Decision]
    ops: list[Op]
    records: dict[str, dict[str, str]]
    stop_order: list[str]
    diff_before: dict[str, dict[str, str]] = field(default_factory=dict)
    diff_after: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.ops)


def plan_quiesce(
    facts: Sequence[ServiceFact], options: QuiesceOptions, stopped_by_window: Iterable[str] = ()
) -> QuiescePlan:
    """Classify, close over dependents, order, and list the SCM operations.

    Operations: first ``set_mode disabled`` for each service that stops (when disable is true), so that
    recovery actions and SMS_SITE_COMPONENT_MANAGER cannot start it again; then ``stop`` in
    dependents-first order. ``records`` holds each changed service's prior start mode and state for the
    journal, which the executor writes before the first operation.

    ``stopped_by_window``: services this window already stopped (Winmgmt's running dependents, which
    wmi_disable recorded): their prior state is running, not the stopped state the gather sees, so the
    restore starts them again.
    """
    window = {n.casefold() for n in stopped_by_window}
    decisions = close_over_dependents(classify(facts, options), facts)
    index = _index(facts)
    stopping = [d.name for d in decisions if d.action == "stop"]
    stop_order = order_dependents_first(stopping, facts)
    ops: list[Op] = []
    records: dict[str, dict[str, str]] = {}
    before: dict[str, dict[str, str]] = {}
    after: dict[str, dict[str, str]] = {}
    for name in stop_order:
        fact = index[name.casefold()]
        target_mode = "disabled" if options.disable else fact.start_mode
        if fact.start_mode == target_mode and not fact.is_running:
            continue
        prior = "running" if fact.name.casefold() in window else prior_state(fact)
        records[fact.name] = {"start_mode": fact.start_mode, "state": prior}
        before[fact.name] = {"start_mode": fact.start_mode, "state": fact.state}
        after[fact.name] = {"start_mode": target_mode, "state": "stopped"}
        if fact.start_mode != target_mode:
            ops.append(op_set_mode(fact.name, target_mode))
    # Decide by service, act on the state at apply time: every service the plan changes gets its stop, also
    # one stopped at gather (a recovery action or an operator may start it before the apply); the executor's
    # stop of a stopped service is a no-op that reports already_stopped.
    sources = {d.name.casefold(): d.source for d in decisions}
    for name in stop_order:
        fact = index[name.casefold()]
        if fact.name not in records:
            continue
        if sources.get(fact.name.casefold()) == "configmgr" and options.configmgr_stop_timeout is not None:
            ops.append(op_stop(fact.name, options.configmgr_stop_timeout, options.end_hung_configmgr))
        else:
            ops.append(op_stop(fact.name))
    return QuiescePlan(decisions, ops, records, stop_order, before, after)


def _blocked_starts(names: Sequence[str], facts: Sequence[ServiceFact], new_modes: Mapping[str, str]) -> dict[str, str]:
    """The starts a restore cannot do now, name -> why: a dependency (transitively) stays disabled and
    stopped, so StartService would fail with ERROR_SERVICE_DEPENDENCY_FAIL (1068), or depends on a start that
    is itself blocked. Typically Winmgmt, still disabled by wmi_disable while CcmExec is to start. The rest of
    the restore goes ahead; these are reported, and the journal keeps every record for the next restore."""
    index = _index(facts)
    blocked: dict[str, str] = {}
    for name in order_dependencies_first(names, facts):
        for dep in dependency_closure([name], facts):
            fact = index.get(dep.casefold())
            if fact is None or fact.name.casefold() == name.casefold():
                continue
            if fact.name in blocked:  # names as the facts spell them, like the keys of blocked
                blocked[name] = f"not started: it depends on {fact.name}, which cannot start yet"
                break
            if not fact.is_running and new_modes.get(fact.name.casefold(), fact.start_mode) == "disabled":
                hint = "run wmi_disable with state=enabled" if fact.name.casefold() == "winmgmt" else (
                    f"enable {fact.name}")
                blocked[name] = (f"not started: it depends on {fact.name}, which is disabled and stopped and not "
                                 f"recorded in the journal; {hint}, then restore again")
                break
    return blocked


@dataclass
class RestorePlan:
    entries: list[dict[str, str]]
    ops: list[Op]
    diff_before: dict[str, dict[str, str]] = field(default_factory=dict)
    diff_after: dict[str, dict[str, str]] = field(default_factory=dict)
    #: Services whose start has to wait (see _blocked_starts), name -> why.
    blocked: dict[str, str] = field(default_factory=dict)
    #: Records skipped because they would stop or disable a protected service, name -> why.
    refused: dict[str, str] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.ops)


def plan_restore(
    facts: Sequence[ServiceFact], records: Mapping[str, Mapping[str, str]], protected: Mapping[str, str] | None = None
) -> RestorePlan:
    """Put back what the journal recorded, and nothing else.

    ``protected`` (casefolded name -> why, see classify.protected_services): a record that would stop or
    disable one of these is skipped with that reason, whatever the journal says.

    Operations: ``stop`` for recorded-stopped services that run now (dependents first), ``set_mode`` to the
    recorded mode, then ``start`` for recorded-running services that do not run, dependencies first (the
    SCM would start dependencies itself, but an explicit order makes each start's failure name the right
    service). Services the journal does not name are left alone; a recorded service that no longer exists
    is reported as skipped. Nothing to do when the table already matches: idempotent.
    """
    index = _index(facts)
    entries: list[dict[str, str]] = []
    to_stop: list[str] = []
    to_start: list[str] = []
    mode_ops: list[Op] = []
    disabled_after: list[Op] = []
    before: dict[str, dict[str, str]] = {}
    after: dict[str, dict[str, str]] = {}
    refused: dict[str, str] = {}
    for name in sorted(records, key=str.casefold):
        record = records[name]
        fact = index.get(name.casefold())
        if fact is None:
            entries.append({"name": name, "action": "skip", "reason": "recorded in the journal but not on this host"})
            continue
        actions = []
        want_running = record["state"] == "running"
        why = (protected or {}).get(fact.name.casefold())
        if why is not None and ((not want_running and fact.is_running) or (
                record["start_mode"] == "disabled" and fact.start_mode != "disabled")):
            refused[fact.name] = (f"the journal records it {record['start_mode']} and {record['state']}, but it is "
                                  f"{why}: a restore never stops or disables it")
            entries.append({"name": fact.name, "action": "skip", "reason": refused[fact.name]})
            continue
        # A service recorded running while Disabled (started before someone disabled it): StartService refuses
        # a Disabled service (ERROR_SERVICE_DISABLED, 1058), so it starts under Manual and goes back to
        # Disabled after every start.
        start_first = want_running and record["start_mode"] == "disabled" and (
            not fact.is_running or fact.state == "stop_pending")
        if start_first:
            mode_ops.append(op_set_mode(fact.name, "manual"))
            disabled_after.append(op_set_mode(fact.name, "disabled"))
            actions.append("start under manual, then set start mode disabled")
        elif fact.start_mode != record["start_mode"]:
            mode_ops.append(op_set_mode(fact.name, record["start_mode"]))
            actions.append("set start mode {}".format(record["start_mode"]))
        # STOP_PENDING counts as running everywhere else (the process still exists), but it is on its way
        # down: a restore must start it again once it has stopped (the start operation waits for that).
        if want_running and (not fact.is_running or fact.state == "stop_pending"):
            to_start.append(fact.name)
            actions.append("start")
        elif not want_running and fact.is_running:
            to_stop.append(fact.name)
            actions.append("stop")
        if actions:
            before[fact.name] = {"start_mode": fact.start_mode, "state": fact.state}
            after[fact.name] = {"start_mode": record["start_mode"], "state": record["state"]}
            entries.append({"name": fact.name, "action": "restore", "reason": ", ".join(actions)})
        else:
            entries.append({"name": fact.name, "action": "none", "reason": "already as recorded"})
    blocked = _blocked_starts(to_start, facts, {op["name"].casefold(): op["start_mode"] for op in mode_ops})
    if blocked:
        to_start = [n for n in to_start if n not in blocked]
        for entry in entries:
            if entry["name"] in blocked:
                entry.update(action="blocked", reason=blocked[entry["name"]])
                after[entry["name"]]["state"] = before[entry["name"]]["state"]
    ops: list[Op] = []
    ops.extend(op_stop(n) for n in order_dependents_first(to_stop, facts))
    ops.extend(mode_ops)
    ops.extend(op_start(n) for n in order_dependencies_first(to_start, facts))
    ops.extend(disabled_after)
    return RestorePlan(entries, ops, before, after, blocked, refused)


def window_drift(
    facts: Sequence[ServiceFact],
    records: Mapping[str, Mapping[str, str]],
    disabled: bool,
    wmi: Mapping[str, Any] | None,
) -> list[dict[str, str]]:
    """Where the service window recorded in the journal no longer holds, one entry per service.

    Every service the quiesce recorded was stopped by it (and set to Disabled unless ``disabled`` is false),
    so each must be stopped now (STOP_PENDING is on its way but still holds a process: not yet) and, when
    ``disabled``, still Disabled; with a Winmgmt record of status ``disabled``, Winmgmt must be stopped and
    Disabled. A recorded service that no longer exists is drift too: something removed it in the window.
    Something that starts a service by itself (a recovery action, a client health task, an operator) breaks
    the KB's premise that nothing but SQL Server setup talks to the instance.
    """
    index = _index(facts)
    want: dict[str, tuple[str, bool]] = {name: ("stopped", disabled) for name in records}
    if wmi is not None and wmi.get("status") == "disabled":
        want["Winmgmt"] = ("stopped", True)
    drift: list[dict[str, str]] = []
    if wmi is not None and wmi.get("status") == "setup":
        # WMI runs for today's SQL Server setup, never under an automatic start mode (wmi_disable running_for_setup).
        fact = index.get("winmgmt")
        if fact is None or not fact.is_running or fact.start_mode in ("auto", "delayed"):
            actual = "no longer on the host" if fact is None else f"{fact.state} and {fact.start_mode}"
            drift.append({"name": "Winmgmt", "expected": "running and manual (for setup)", "actual": actual})
    for name in sorted(want, key=str.casefold):
        state, must_be_disabled = want[name]
        expected = "stopped and disabled" if must_be_disabled else "stopped"
        fact = index.get(name.casefold())
        if fact is None:
            drift.append({"name": name, "expected": expected, "actual": "no longer on the host"})
            continue
        if fact.state != state or (must_be_disabled and fact.start_mode != "disabled"):
            drift.append({"name": fact.name, "expected": expected, "actual": f"{fact.state} and {fact.start_mode}"})
    return sorted(drift, key=lambda d: d["name"].casefold())
