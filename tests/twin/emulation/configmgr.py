"""Emulation of this collection's executors win_service_quiesce.ps1 and wmi_disable.ps1 on a twin host.

Both executors are thin: ``_phase=gather`` reads the service table (plus, for quiesce, each binary's version
resource) and the on-host journal; ``_phase=apply`` writes the journal and runs an explicit list of Service
Control Manager operations. The emulation follows the PowerShell line by line (plugins/module_utils/
ServiceWindow.psm1), against the host model, and returns the same keys. Arguments were already validated
against the spec extracted from the .ps1 (pscontract); anything the twin does not model is refused by name.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from collections.abc import Callable
from importlib.resources import files
from typing import Any

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._service_window.ops import (
    NO_CHANGE_RESULTS,
    SETTABLE_START_MODES,
)
from twin.emulation import ModuleContext, ModuleFailed, module
from twin.emulation.paths import session_env
from twin.host import Host, WindowsError_
from twin.host.errors import WIN32_MESSAGES
from twin.host.fs import ADMINISTRATORS, SYSTEM
from twin.host.scenario import binary_of

# Where the journal lives: the schema's x-location (the same file the controller validates against).
JOURNAL_SCHEMA = json.loads(files(
    "ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._service_window"
).joinpath("journal.schema.json").read_text(encoding="utf-8"))
JOURNAL_FOLDER = JOURNAL_SCHEMA["x-location"]["folder"]
JOURNAL_FILE = JOURNAL_SCHEMA["x-location"]["file"]
TRUSTED = (SYSTEM, ADMINISTRATORS)  # Get-JournalTrustProblem's $script:TrustedSids
# ServiceController.WaitForStatus polls QueryServiceStatus every 250 ms until the status or the timeout.
POLL_SECONDS = 0.25
# States the executor waits out before it acts (ControlService answers 1061 in them); STOP_PENDING is a stop
# under way, which the stop waits for and the start waits out separately.
PENDING_STATES = ("start_pending", "continue_pending", "pause_pending")


def journal_path(host: Host) -> str:
    """Get-JournalPath: Join-Path $env:ProgramData 'configmgr.sql_upgrade\\journal.json'."""
    return session_env(host)["PROGRAMDATA"].rstrip("\\") + "\\" + JOURNAL_FOLDER + "\\" + JOURNAL_FILE


def _folder(path: str) -> str:
    return path.rsplit("\\", 1)[0]


def host_time(host: Host) -> str:
    """Get-HostTime: [DateTime]::UtcNow.ToString('yyyy-MM-ddTHH:mm:ssZ'), from the model's clock."""
    when = _dt.datetime.fromtimestamp(host.clock.now(), tz=_dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def read_journal(host: Host) -> str | None:
    """Read-JournalText: the file's UTF-8 text, or $null."""
    path = journal_path(host)
    if not host.fs.exists(path):
        return None
    return host.fs.read(path).decode("utf-8")


def write_journal(host: Host, text: str) -> None:
    """Write-JournalText: create the folder, delete a left-over temp file, write a new temp file and rename it
    over the journal, then give the file its protected ACL (Set-JournalFileAcl; the model keeps owner and
    writers only). The model's write is atomic, which is what the temp + flush + rename gives on NTFS."""
    path = journal_path(host)
    folder = _folder(path)
    if not host.fs.is_dir(folder):
        host.fs.mkdir(folder)
    if host.fs.exists(path + ".tmp"):
        host.fs.remove(path + ".tmp")
    host.fs.write(path + ".tmp", text.encode("utf-8"))
    host.fs.write(path, host.fs.read(path + ".tmp"))
    host.fs.remove(path + ".tmp")
    host.fs.set_security(path, ADMINISTRATORS, [SYSTEM, ADMINISTRATORS])


def journal_trust_problem(host: Host) -> str:
    """Get-JournalTrustProblem: '' or what is wrong with the folder, file and temp file that exist."""
    path = journal_path(host)
    problems: list[str] = []
    for item in (_folder(path), path, path + ".tmp"):
        if not host.fs.exists(item):
            continue
        security = host.fs.security(item)
        if security["owner"] not in TRUSTED:
            problems.append(f"{item} is owned by {security['owner']}, not SYSTEM or Administrators")
        problems += [f"{item} grants {sid} write access (Write)" for sid in security["writers"] if sid not in TRUSTED]
    return "; ".join(problems)


def service_table(host: Host, version_evidence: bool) -> list[dict[str, Any]]:
    """Get-ServiceTable: every service's SCManager facts; with -VersionEvidence the ProductName and
    CompanyName that FileVersionInfo reads from the binary (or the svchost ServiceDll): the model keeps
    them per service (scenario `model.services.NAME.product_name`)."""
    table: list[dict[str, Any]] = []
    for svc in host.scm.all():
        readable = host.scm.config_readable(svc.name)
        entry: dict[str, Any] = {
            "name": svc.name,
            "display_name": svc.display_name,
            "start_mode": svc.start_mode,
            "state": svc.state,
            "dependencies": list(svc.dependencies),
            # Get-ServiceFromRegistry: without QueryServiceConfig the process id is not read.
            "process_id": svc.process_id if readable else 0,
            "path": svc.path,
            "config_readable": readable,
            # Test-ServiceChangeRight: OpenService with QueryConfig, QueryStatus, ChangeConfig and Stop.
            "can_change": readable and not host.scm.is_protected(svc.name),
            # ServiceController.CanStop: SERVICE_ACCEPT_STOP of a running service.
            "accepts_stop": svc.state != "running" or "stop" in svc.running_controls,
        }
        if version_evidence:
            entry["product_name"] = svc.product_name or ""
            entry["company_name"] = svc.company_name or ""
            # Get-VersionEvidence reads the binary (the model keeps the evidence per service, not per file).
            entry["binary"] = binary_of(svc.path) if (svc.product_name or svc.company_name) else ""
        table.append(entry)
    return table


def process_snapshot(host: Host) -> list[dict[str, Any]]:
    """Get-ProcessSnapshot: every process of a CreateToolhelp32Snapshot (name without .exe, id, parent id)
    with its creation time as a FILETIME from Process.StartTime (GetProcessTimes), 0 where OpenProcess is
    denied (the System process)."""
    return [
        {
            "name": p.name,
            "process_id": p.process_id,
            "parent_process_id": p.parent_process_id,
            "created": 0 if p.kind == "system" and p.process_id == 4 else p.created_filetime,
        }
        for p in host.processes.snapshot()
    ]


def _end_process(host: Host, op: dict[str, Any], timeout: int) -> str:
    """Stop-LeftProcess: end the process only if it is still the one the plan saw (same id, image name and
    creation time); "gone" otherwise. Process.Kill() is TerminateProcess; WaitForExit(timeout)."""
    pid = int(op.get("process_id") or 0)
    seen = next((p for p in process_snapshot(host) if p["process_id"] == pid), None)
    if seen is None or seen["name"].lower() != str(op.get("name")).lower() or seen["created"] != op.get("created"):
        return "gone"
    try:
        host.processes.terminate(pid)
    except WindowsError_ as err:
        if host.processes.get(pid) is None:
            return "gone"  # Stop-LeftProcess: Kill() refused, but the process has exited (HasExited)
        raise _OpError(f"process {op.get('name')} (id {pid}) could not be ended: {err}") from err
    waited = 0.0
    while host.processes.get(pid) is not None:
        if waited >= timeout:
            raise _OpError(f"process {op.get('name')} (id {pid}) did not end within {timeout} seconds")
        host.tick(POLL_SECONDS)
        waited += POLL_SECONDS
    return "ended"


def _wait_stopped(host: Host, name: str, timeout: int) -> None:
    waited = 0.0
    while host.scm.get(name).state != "stopped":
        if waited >= timeout:
            state = host.scm.get(name).state
            raise _OpError(f"service {name} did not stop within {timeout} seconds (state: {_net_status(state)})")
        host.tick(POLL_SECONDS)
        waited += POLL_SECONDS


def _wait_out_pending(host: Host, svc: Any, timeout: int) -> None:
    """The executors' polling loop (250 ms) while a service is in a pending state other than STOP_PENDING."""
    waited = 0.0
    while svc.state in PENDING_STATES and waited < timeout:
        host.tick(POLL_SECONDS)
        waited += POLL_SECONDS


def _net_status(state: str) -> str:
    """ServiceControllerStatus names, as the executor's message prints them."""
    return {"running": "Running", "stopped": "Stopped", "start_pending": "StartPending",
            "stop_pending": "StopPending", "paused": "Paused"}[state]


class _OpError(Exception):
    pass


def _op_set_mode(host: Host, op: dict[str, Any], timeout: int) -> None:
    name = str(op.get("name"))
    mode = op.get("start_mode")
    if mode not in SETTABLE_START_MODES:
        raise _OpError(f"service {name}: start mode '{mode}' cannot be set (auto, delayed, manual, disabled)")
    # Act on the state at apply time: a mode already as decided is left alone (and reported so).
    if host.scm.get(name).start_mode == mode:
        op["result"] = "unchanged"
        return
    # SCManager.Service.StartType setter: ChangeServiceConfig (+ the delayed auto-start flag).
    host.scm.set_start_mode(name, str(mode))
    op["result"] = "changed"


def _op_stop(host: Host, op: dict[str, Any], timeout: int) -> None:
    name = str(op.get("name"))
    svc = host.scm.get(name)  # new ServiceController(name): 1060 if it does not exist
    # Act on the state at apply time: stopped now is done; started since the gather is stopped like the others.
    op["result"] = "already_stopped"
    # Stop-PlannedService waits out a pending start (ControlService would answer 1061) before the stop control.
    _wait_out_pending(host, svc, timeout)
    if svc.state != "stopped":
        op["result"] = "stopped"
        # Stop-PlannedService: ControlService never stops a dependent; with one running the SCM answers 1051,
        # which the executor reports naming them (a dependent stopped unrecorded would be lost to the journal).
        running = [d for d in host.scm.get(name).dependency_of if host.scm.get(d).state != "stopped"]
        if running:
            raise _OpError(f"service {name} has running dependents ({', '.join(running)}) that the plan did not "
                           "stop, or that started again after their own stop; a stop never cascades: run the "
                           "task again")
        if svc.state != "stop_pending":
            # Stop-PlannedService: ControlService(SERVICE_CONTROL_STOP), which never stops a dependent.
            host.scm.stop(name, force=False)
        _wait_stopped(host, name, timeout)
    # The service's own process ends with the service in the model; the executor does not end a
    # lingering one by its old id (ids are reused). Its helpers are separate end_process operations.


def _op_start(host: Host, op: dict[str, Any], timeout: int) -> None:
    name = str(op.get("name"))
    svc = host.scm.get(name)
    if svc.state == "stop_pending":
        # The SCM refuses StartService until the process reports SERVICE_STOPPED: the executor waits.
        try:
            _wait_stopped(host, name, timeout)
        except _OpError as err:
            raise _OpError(f"service {name} is still stopping after {timeout} seconds and cannot be started "
                           f"until it has stopped (state: {_net_status(svc.state)})") from err
    op["result"] = "already_running"
    _wait_out_pending(host, svc, timeout)  # Start-PlannedService: a start under way
    if svc.state == "paused":
        svc.state = "running"  # ServiceController.Continue(): StartService would answer 1056
        op["result"] = "started"
        return
    if svc.state != "running":
        op["result"] = "started"
        host.scm.start(name)  # the model starts instantly; dependencies first, 1058 if disabled
        if svc.state == "stopped":
            # Start-PlannedService: the service fell back to Stopped after StartService succeeded (fault
            # services.NAME.start_exit_code): fail at once with its exit codes, not after the whole timeout.
            code = svc.win32_exit_code
            raise _OpError(f"service {name} stopped while starting: Win32 exit code {WIN32_MESSAGES[code]} ({code}), "
                           "service-specific exit code 0")


def _op_expect_stopped(host: Host, op: dict[str, Any], timeout: int) -> None:
    name = str(op.get("name"))
    seconds = int(op.get("seconds") or 0)
    host.tick(float(seconds))
    state = host.scm.get(name).state
    if state != "stopped":
        raise _OpError(f"service {name} did not stay stopped: it is {_net_status(state)} {seconds} seconds later")


def _op_end_process(host: Host, op: dict[str, Any], timeout: int) -> None:
    op["result"] = _end_process(host, op, timeout)


#: Invoke-ServiceOp's branches, one per operation of the vocabulary (_service_window/ops.py OPS); a test
#: holds the two to the same names.
OP_HANDLERS: dict[str, Callable[[Host, dict[str, Any], int], None]] = {
    "set_mode": _op_set_mode,
    "stop": _op_stop,
    "start": _op_start,
    "expect_stopped": _op_expect_stopped,
    "end_process": _op_end_process,
}


def run_op(host: Host, op: dict[str, Any], timeout: int) -> None:
    """Invoke-ServiceOp: one planned operation (Ansible.Basic already refused an op outside the spec's
    choices; the last branch is the executor's own guard)."""
    handler = OP_HANDLERS.get(str(op.get("op")))
    if handler is None:
        raise _OpError(f"unknown operation '{op.get('op')}' for service {op.get('name')}")
    handler(host, op, timeout)


def _gather(ctx: ModuleContext, version_evidence: bool) -> dict[str, Any]:
    host = ctx.host
    return {
        "changed": False,
        "journal_path": journal_path(host),
        "services": service_table(host, version_evidence),
        "journal_text": read_journal(host),
        "journal_untrusted": journal_trust_problem(host),
        "host_time": host_time(host),
        "host_name": host.computer_name,
    }


def _apply(ctx: ModuleContext, fix: str) -> dict[str, Any]:
    """The apply phase; fix is the executor's advice, with {name} for the service whose operation failed."""
    host = ctx.host
    params = ctx.params
    path = journal_path(host)
    applied: list[dict[str, Any]] = []
    result: dict[str, Any] = {"changed": False, "journal_path": path, "applied": applied}
    if ctx.check_mode:
        return result
    # Open-JournalLock + Get-JournalHash: the twin runs one request per host at a time (the endpoint lock), which
    # is what the exclusive journal.json.lock gives the executor; the compare-and-swap is the same.
    untrusted = journal_trust_problem(host)
    if untrusted:
        raise ModuleFailed(f"the journal {path} cannot be trusted: {untrusted}; nothing was changed", **result)
    current = read_journal(host)
    current_hash = "" if current is None else hashlib.sha256(current.encode("utf-8")).hexdigest()
    if current_hash != params.get("_journal_expected", ""):
        raise ModuleFailed(f"the journal {path} changed since this task read it: another run is working on this "
                           "host; nothing was changed. Run the task again to see which run holds the host.", **result)
    if params.get("_journal_before") is not None:
        try:
            write_journal(host, params["_journal_before"])
        except WindowsError_ as err:
            raise ModuleFailed(f"failed to write the journal {path} before changing anything: {err}",
                               **result) from err
        result["changed"] = True
    failures: list[dict[str, Any]] = []
    for op in params.get("_plan") or []:
        try:
            run_op(host, op, int(params["timeout"]))
        except (WindowsError_, _OpError) as err:
            what = f"process {op.get('name')} (id {op.get('process_id')})" if op.get("op") == "end_process" else (
                f"service {op.get('name')}")
            failures.append({"op": op.get("op"), "name": op.get("name"),
                             "msg": f"{op.get('op')} of {what} failed: {err}"})
            if len(failures) == 1:
                result["failed_op"] = op
            if not params.get("_continue_on_error"):
                msg = f"{failures[0]['msg']}. The journal {path} holds {fix.format(name=op.get('name'))}"
                raise ModuleFailed(msg, **result) from err
            continue
        applied.append(op)
        if op.get("result") not in NO_CHANGE_RESULTS:
            result["changed"] = True
        # Fault events between two operations of one apply (after the K-th operation that completed).
        host.fire_events(after_op=len(applied), after_op_for=str(op.get("name")))
    if failures:
        # Invoke-JournaledPlan: a restore lists every failure and leaves _journal_after unwritten.
        result["failures"] = failures
        listed = "; ".join(f["msg"] for f in failures)
        total = len(params.get("_plan") or [])
        raise ModuleFailed(f"{len(failures)} of {total} operations failed: {listed}. The host is still in the window: "
                           f"the journal {path} keeps every record. {fix.format(name=failures[0]['name'])}", **result)
    if params.get("_journal_after") is not None:
        try:
            write_journal(host, params["_journal_after"])
        except WindowsError_ as err:
            raise ModuleFailed(f"every planned operation ran, but the journal {path} could not be updated: {err}. "
                               "Run the task again to record the result.", **result) from err
        result["changed"] = True
    # Get-ServiceState: the verification read of every service the plan acted on.
    plan = params.get("_plan") or []
    names = list(dict.fromkeys(str(op.get("name")) for op in plan if op.get("op") != "end_process"))
    result["after"] = [service_state(host, name) for name in names]
    return result


def service_state(host: Host, name: str) -> dict[str, str]:
    """Get-ServiceState for one name: start mode and state, or state 'missing' when it no longer exists."""
    try:
        svc = host.scm.get(name)
    except WindowsError_:
        return {"name": name, "start_mode": "", "state": "missing"}
    return {"name": name, "start_mode": svc.start_mode, "state": svc.state}


@module("configmgr.sql_upgrade.win_service_quiesce")
def win_service_quiesce(ctx: ModuleContext) -> dict[str, Any]:
    if ctx.params.get("_phase") == "gather":
        result = _gather(ctx, version_evidence=True)
        result["processes"] = process_snapshot(ctx.host)
        # Every service's status is readable in the model: the executor's unreadable list stays empty.
        result["unreadable_services"] = []
        result["system_root"] = session_env(ctx.host)["SYSTEMROOT"]
        return result
    return _apply(
        ctx,
        "the prior state of every service this run changes and the processes it ends (which a restore does not "
        "bring back): run win_service_quiesce with state=restored to put "
        "the host back, or fix {name} and run again.",
    )


@module("configmgr.sql_upgrade.wmi_disable")
def wmi_disable(ctx: ModuleContext) -> dict[str, Any]:
    if ctx.params.get("_phase") == "gather":
        return _gather(ctx, version_evidence=False)
    return _apply(
        ctx,
        "Winmgmt's prior start mode and running dependents: run wmi_disable with state=enabled to put them back.",
    )
