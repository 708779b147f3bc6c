# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The operation vocabulary: the only place that builds what the controller sends to an executor's apply.

An operation is a JSON object ``{"op": NAME, ...fields}``. Three sides must agree on it, and tests hold
them to this module (tests/unit/plugins/plugin_utils/service_window/test_contract.py):

- the planners here build operations only through the functions below;
- each executor's ``.ps1`` declares ``_plan`` with ``op`` as ``choices`` (:data:`MODULE_OPS`) and the fields
  as ``options`` (:data:`FIELDS`), so Ansible.Basic refuses anything else on the host, and the spec check
  (``make pscheck``) catches a drift between this file and the spec;
- ``_Apply.psm1``'s handler table (``Invoke-ServiceOp``) and the twin's ``run_op`` handle exactly :data:`OPS`.

Internal to configmgr.sql_upgrade (controller-side, not a public API).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._action.errors import PlanError

Op = dict[str, Any]

#: Every operation and the fields it carries besides ``op``.
OPS: dict[str, tuple[str, ...]] = {
    # ChangeServiceConfig: the start mode (and the delayed auto-start flag).
    "set_mode": ("name", "start_mode"),
    # ControlService(SERVICE_CONTROL_STOP), then wait until SERVICE_STOPPED; `timeout` and `end_hung`, when given,
    # are this service's own instead of the task's timeout and end_hung_services (Configuration Manager's services).
    "stop": ("name", "timeout", "end_hung"),
    # StartService, then wait until SERVICE_RUNNING (continues a paused service).
    "start": ("name",),
    # Wait, then fail unless the service is still stopped (something restarting it).
    "expect_stopped": ("name", "seconds"),
    # TerminateProcess, only when id, image name and creation time still match what the plan saw.
    "end_process": ("name", "process_id", "created", "reason"),
    # INetFwPolicy2.FirewallEnabled(profile) = enabled (name: domain, private or public).
    "set_profile": ("name", "enabled"),
    # INetFwRules.Add of a block rule on every profile, in the collection's group (HNetCfg.FWRule).
    "add_rule": ("name", "direction", "protocol", "remote_addresses", "remote_ports"),
    # INetFwRules.Remove, for every rule of that name (Remove takes one per call).
    "remove_rule": ("name",),
    # schtasks.exe /Create /XML: the on-host watchdog as SYSTEM, time trigger in `minutes`, boot trigger.
    "register_watchdog": ("name", "minutes"),
    # schtasks.exe /Delete /F.
    "remove_watchdog": ("name",),
}

#: The start modes an operation can set (boot and system are drivers' and are never set).
SETTABLE_START_MODES: tuple[str, ...] = ("auto", "delayed", "manual", "disabled")

#: Every field any operation carries, with the Ansible.Basic type the executors' spec declares for it.
#: ``created`` is a FILETIME (beyond Int32, Ansible.Basic's ``int``), so it is ``raw`` and cast to [long].
FIELDS: dict[str, str] = {
    "name": "str",
    "start_mode": "str",
    "seconds": "int",
    "process_id": "int",
    "created": "raw",
    "reason": "str",
    "enabled": "bool",
    "direction": "str",
    "protocol": "str",
    "remote_addresses": "list",
    "remote_ports": "list",
    "minutes": "int",
    "timeout": "int",
    "end_hung": "bool",
}

#: The operations each executor accepts (its ``_plan.op`` choices).
#: The operations of a restore: what the watchdog may run from a journal's ``undo`` (undo.py), and no other.
UNDO_OPS: tuple[str, ...] = ("set_mode", "start", "remove_rule", "set_profile")

MODULE_OPS: dict[str, tuple[str, ...]] = {
    "win_service_quiesce": ("register_watchdog", "set_mode", "stop", "start", "end_process", "remove_watchdog"),
    "wmi_disable": ("set_mode", "stop", "start", "expect_stopped"),
    "net_isolate": ("set_profile", "add_rule", "remove_rule", "register_watchdog", "remove_watchdog"),
}


def op_set_mode(name: str, start_mode: str) -> Op:
    if start_mode not in SETTABLE_START_MODES:
        raise PlanError(
            f"start mode {start_mode!r} of service {name} cannot be set (only {', '.join(SETTABLE_START_MODES)}); "
            "set it by hand"
        )
    return {"op": "set_mode", "name": name, "start_mode": start_mode}


def op_stop(name: str, timeout: int | None = None, end_hung: bool | None = None) -> Op:
    op: Op = {"op": "stop", "name": name}
    if timeout is not None:
        op["timeout"] = timeout
    if end_hung is not None:
        op["end_hung"] = end_hung
    return op


def op_start(name: str) -> Op:
    return {"op": "start", "name": name}


def op_expect_stopped(name: str, seconds: int) -> Op:
    return {"op": "expect_stopped", "name": name, "seconds": seconds}


def op_set_profile(profile: str, enabled: bool) -> Op:
    return {"op": "set_profile", "name": profile, "enabled": enabled}


def op_add_rule(name: str, direction: str, protocol: str, remote_addresses: Sequence[str],
                remote_ports: Sequence[str]) -> Op:
    return {"op": "add_rule", "name": name, "direction": direction, "protocol": protocol,
            "remote_addresses": list(remote_addresses), "remote_ports": list(remote_ports)}


def op_remove_rule(name: str) -> Op:
    return {"op": "remove_rule", "name": name}


def op_register_watchdog(name: str, minutes: int) -> Op:
    return {"op": "register_watchdog", "name": name, "minutes": minutes}


def op_remove_watchdog(name: str) -> Op:
    return {"op": "remove_watchdog", "name": name}


def op_end_process(name: str, process_id: int, created: int, reason: str) -> Op:
    return {"op": "end_process", "name": name, "process_id": process_id, "created": created, "reason": reason}


#: What an executor sets as an applied operation's ``result`` when the operation found nothing to do (the
#: state at apply time already was the decided one) or its process had gone: not a change.
NO_CHANGE_RESULTS: tuple[str, ...] = ("already_stopped", "already_running", "unchanged", "gone")


def summarize(ops: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """stopped / disabled / started / restored / ended_processes from a list of operations (planned, or
    applied as the executor returns them: Ansible.Basic gives every declared field, absent ones as null, and
    the executor adds ``result``; an operation that found nothing to do is not listed)."""
    ops = [op for op in ops if op.get("result") not in NO_CHANGE_RESULTS]
    stopped = [op["name"] for op in ops if op["op"] == "stop"]
    disabled = [op["name"] for op in ops if op["op"] == "set_mode" and op["start_mode"] == "disabled"]
    started = [op["name"] for op in ops if op["op"] == "start"]
    restored: list[str] = []
    for op in ops:
        if op["op"] in ("start", "stop") or (op["op"] == "set_mode" and op["start_mode"] != "disabled"):
            if op["name"] not in restored:
                restored.append(op["name"])
    # An applied end_process carries the executor's result: "ended", or "gone" when the process had already
    # exited (a helper that ended with its service) or its id now belongs to another process.
    ended = [
        {"name": op["name"], "process_id": op["process_id"], "reason": op.get("reason") or ""}
        for op in ops
        if op["op"] == "end_process"
    ]
    return {
        "stopped": stopped,
        "disabled": disabled,
        "started": started,
        "restored": restored,
        "ended_processes": ended,
    }
