# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A host's account of the service window: what this run stopped, disabled, ended and put back, and what it
left behind, each with its reason, folded from the results of the collection's tasks in the order they ran.

An administrator reads it at the end of a night's run; AWX and scripts read the same data as JSON. Used by
the filter ``configmgr.sql_upgrade.window_account`` (a play's own registered results) and the callback
``configmgr.sql_upgrade.window_account`` (every result of the run, printed at its end and written as JSON).
Only the result keys documented in the modules' RETURN are read, so an account never needs a service table.

Internal to configmgr.sql_upgrade (controller-side, not a public API).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MODULES = ("win_service_quiesce", "wmi_disable")
WMI_REASON = "KB 256202 step 3: Windows Management Instrumentation stopped and disabled for the window"
WMI_DEPENDENT_REASON = "KB 256202 step 3: depends on Winmgmt, which stops"


def _names(result: Mapping[str, Any], key: str) -> list[str]:
    return [str(n) for n in result.get(key) or [] if isinstance(n, str)]


def _plan_reasons(result: Mapping[str, Any], actions: tuple[str, ...]) -> dict[str, str]:
    return {
        str(e.get("name")): str(e.get("reason") or "")
        for e in result.get("plan") or []
        if isinstance(e, Mapping) and e.get("action") in actions
    }


def fold(host: str, results: Iterable[tuple[str, Mapping[str, Any]]], check_mode: bool = False) -> dict[str, Any]:
    """The account of `host` from (module short name, task result) pairs in the order the tasks ran.

    Skipped and empty results count for nothing. Names compare without case (the Service Control Manager's
    rule). "Left behind" is what this run stopped or disabled and did not put back (and did not find already
    as recorded), with the restore's failure or block reason where there is one. In check mode nothing
    changed, so the account lists what a real run would do and leaves nothing behind.
    """
    off: dict[str, dict[str, str]] = {}  # casefolded name -> {name, stopped/disabled reasons}
    back: dict[str, str] = {}  # casefolded name -> what was put back
    fine: set[str] = set()  # casefolded names a restore found already as recorded
    why_left: dict[str, str] = {}
    ended: list[dict[str, Any]] = []
    failures: list[str] = []
    warnings: list[str] = []
    changed = False
    for module, result in results:
        if not isinstance(result, Mapping) or not result or result.get("skipped") or module not in MODULES:
            continue
        changed = changed or bool(result.get("changed"))
        warnings += [str(w) for w in result.get("warnings") or [] if str(w) not in warnings]
        if result.get("failed"):
            failures.append(f"{module}: {result.get('msg', 'failed')}")
        stop_reasons = _plan_reasons(result, ("stop",))
        for key, verb in (("stopped", "stopped"), ("disabled", "disabled")):
            for name in _names(result, key):
                if module == "wmi_disable":
                    reason = WMI_REASON if name.casefold() == "winmgmt" else WMI_DEPENDENT_REASON
                else:
                    reason = stop_reasons.get(name, "")
                entry = off.setdefault(name.casefold(), {"name": name})
                entry.setdefault(verb, reason)
                back.pop(name.casefold(), None)
                fine.discard(name.casefold())
        restore_reasons = _plan_reasons(result, ("restore",))
        for name in _names(result, "restored"):
            back[name.casefold()] = restore_reasons.get(name) or (
                "KB 256202 step 7: WMI back as recorded" if module == "wmi_disable" else "put back as recorded")
            why_left.pop(name.casefold(), None)
        fine.update(n.casefold() for n in _plan_reasons(result, ("none",)))
        for name, reason in _plan_reasons(result, ("blocked",)).items():
            why_left[name.casefold()] = reason
        # A restore that set a service's start mode back but could not start it has not put it back.
        for failure in result.get("failures") or []:
            if isinstance(failure, Mapping) and failure.get("name"):
                key = str(failure["name"]).casefold()
                why_left[key] = str(failure.get("msg") or "its restore failed")
                back.pop(key, None)
        ended += [
            {"name": str(p.get("name")), "process_id": p.get("process_id"), "reason": str(p.get("reason") or "")}
            for p in result.get("ended_processes") or []
            if isinstance(p, Mapping)
        ]
    stopped = [{"name": e["name"], "reason": e["stopped"]} for e in off.values() if "stopped" in e]
    disabled = [{"name": e["name"], "reason": e["disabled"]} for e in off.values() if "disabled" in e]
    restored = [{"name": off[k]["name"] if k in off else k, "what": v} for k, v in back.items()]
    left: list[dict[str, str]] = []
    if not check_mode:
        for key, entry in off.items():
            if key in back or key in fine:
                continue
            if key in why_left:
                why = f"not put back: {why_left[key]}"
            else:
                state = " and ".join(v for v in ("stopped", "disabled") if v in entry)
                hint = ("run wmi_disable with state=enabled" if key == "winmgmt" else
                        "run win_service_quiesce with state=restored; the journal keeps its record")
                why = f"still {state}: {hint}"
            left.append({"name": entry["name"], "why": why})
    return {
        "host": host,
        "check_mode": check_mode,
        "outcome": _outcome(bool(off or ended), bool(left), bool(failures), check_mode),
        "changed": changed and not check_mode,
        "stopped": stopped,
        "disabled": disabled,
        "processes_ended": ended,
        "restored": restored,
        "left_behind": left,
        "failures": failures,
        "warnings": warnings,
    }


def _outcome(touched: bool, left: bool, failed: bool, check_mode: bool) -> str:
    if check_mode:
        return "check mode: nothing changed" + (", the lists say what a real run would do" if touched else "")
    if failed:
        return "failed, left changed" if left else ("failed, put back" if touched else "failed, unchanged")
    if not touched:
        return "unchanged"
    return "changed, not put back yet" if left else "put back"


def _header(account: Mapping[str, Any]) -> str:
    would = "would be " if account.get("check_mode") else ""
    return (f"{account['host']}: {account['outcome']} - {len(account['stopped'])} services {would}stopped, "
            f"{len(account['disabled'])} {would}disabled, {len(account['processes_ended'])} process(es) {would}ended; "
            f"{len(account['restored'])} put back, {len(account['left_behind'])} left behind")


def lines(account: Mapping[str, Any]) -> list[str]:
    """The account as text for the default output: a header, then one line per service (what was done to it,
    what became of it, and why it was touched), per ended process, and per failure."""
    reasons: dict[str, dict[str, str]] = {}
    for verb in ("stopped", "disabled"):
        for entry in account[verb]:
            reasons.setdefault(entry["name"], {})[verb] = entry["reason"]
    back = {e["name"].casefold(): e["what"] for e in account["restored"]}
    left = {e["name"].casefold(): e["why"] for e in account["left_behind"]}
    out = [_header(account)]
    for name, done in reasons.items():
        verbs = " and ".join(done)
        if name.casefold() in left:
            fate = f"LEFT {left[name.casefold()]}"
        elif name.casefold() in back:
            fate = f"put back ({back[name.casefold()]})"
        else:
            fate = "would be put back by a real run's restore" if account.get("check_mode") else "as recorded"
        out.append(f"  {name}: {verbs}, {fate}; why: {done.get('stopped') or done.get('disabled')}")
    touched = {n.casefold() for n in reasons}
    out += [f"  {e['name']}: put back ({e['what']})" for e in account["restored"]
            if e["name"].casefold() not in touched]
    out += [f"  process {p['name']} (process id {p['process_id']}): ended, a restore does not start it; why: "
            f"{p['reason']}" for p in account["processes_ended"]]
    out += [f"  failed: {f}" for f in account["failures"]]
    return out


def summary(account: Mapping[str, Any]) -> list[str]:
    """The short form: the header, then only what is left behind and what failed."""
    out = [_header(account)]
    out += [f"  LEFT {e['name']}: {e['why']}" for e in account["left_behind"]]
    out += [f"  failed: {f}" for f in account["failures"]]
    return out
