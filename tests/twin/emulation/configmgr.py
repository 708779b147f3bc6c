"""Emulation of this collection's executors win_service_quiesce.ps1 and wmi_disable.ps1 on a twin host.

Both executors are thin: ``_phase=gather`` reads the service table (plus, for quiesce, each binary's version
resource) and the on-host journal; ``_phase=apply`` writes the journal and runs an explicit list of Service
Control Manager operations. The emulation follows the PowerShell line by line (the private utils
plugins/module_utils/_*.psm1), against the host model, and returns the same keys. Arguments were already validated
against the spec extracted from the .ps1 (pscontract); anything the twin does not model is refused by name.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from collections.abc import Callable
from importlib.resources import files
from typing import Any

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.ops import (
    NO_CHANGE_RESULTS,
    SETTABLE_START_MODES,
)
from twin.emulation import ModuleContext, ModuleFailed, UnknownCommand, module
from twin.emulation.paths import session_env
from twin.host import Host, WindowsError_
from twin.host.clock import parse_iso
from twin.host.errors import WIN32_MESSAGES
from twin.host.fs import ADMINISTRATORS, SYSTEM
from twin.host.net import PROFILES, FirewallRule
from twin.host.scenario import binary_of
from twin.host.sql import INSTANCE_NAMES_KEY, login_for, windows_rights

# Where the journal lives: the schema's x-location (the same file the controller validates against).
JOURNAL_SCHEMA = json.loads(files(
    "ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window"
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
    write_file(host, journal_path(host), text)


def write_file(host: Host, path: str, text: str) -> None:
    """Write-JournalText at any path of the journal folder (the watchdog script is written the same way)."""
    folder = _folder(path)
    if not host.fs.is_dir(folder):
        host.fs.mkdir(folder)
    if host.fs.exists(path + ".tmp"):
        host.fs.remove(path + ".tmp")
    host.fs.write(path + ".tmp", text.encode("utf-8"))
    host.fs.write(path, host.fs.read(path + ".tmp"))
    host.fs.remove(path + ".tmp")
    host.fs.set_security(path, ADMINISTRATORS, [SYSTEM, ADMINISTRATORS])


def watchdog_script_path(host: Host) -> str:
    """Get-WatchdogScriptPath: watchdog.ps1 beside the journal."""
    return _folder(journal_path(host)) + "\\watchdog.ps1"


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


def _wait_stopped(host: Host, name: str, timeout: int, waited_before: int = 0, slice_seconds: int = 0) -> float:
    """Stop-PlannedService's wait for SERVICE_STOPPED: the seconds it waited in this call, or -1 when the slice
    ended first (the stop goes on; the next call resumes it)."""
    waited = 0.0
    while host.scm.get(name).state != "stopped":
        if waited >= timeout - waited_before:
            state = host.scm.get(name).state
            raise _OpError(f"service {name} did not stop within {timeout} seconds (state: {_net_status(state)})")
        if slice_seconds and waited > slice_seconds:
            return -1.0
        host.tick(POLL_SECONDS)
        waited += POLL_SECONDS
    return waited


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


def _op_stop(host: Host, op: dict[str, Any], timeout: int, end_hung: bool = False) -> None:
    name = str(op.get("name"))
    svc = host.scm.get(name)  # new ServiceController(name): 1060 if it does not exist
    waited_before = int(op.get("_waited") or 0)
    slice_seconds = int(op.get("_slice") or 0)
    begun = host.clock.now()
    # Act on the state at apply time: stopped now is done; started since the gather is stopped like the others.
    # A resumed stop (an earlier slice sent the control) is the plan's own stop, not one found done.
    op["result"] = "stopped" if waited_before else "already_stopped"
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
        try:
            if _wait_stopped(host, name, timeout, waited_before, slice_seconds) < 0:
                op["result"] = "stopping"
                op["_waited"] = waited_before + int(host.clock.now() - begun)
                return
        except _OpError:
            if not end_hung:
                raise
            pid = _end_hung(host, name)
            if pid <= 0:
                raise
            op["process_id"] = pid
            op["result"] = "ended_hung"
    # The service's own process ends with the service in the model; the executor does not end a
    # lingering one by its old id (ids are reused). Its helpers are separate end_process operations.


def _end_hung(host: Host, name: str) -> int:
    """Stop-HungServiceProcess: a service still STOP_PENDING has its own process ended (never a shared one); the SCM
    records it stopped (a crash: recovery actions do not start a disabled service). 0 when no longer stopping."""
    svc = host.scm.get(name)
    if svc.state != "stop_pending" or svc.process_id <= 0:
        return 0
    pid = svc.process_id
    if svc.service_type != "win32_own_process":
        raise _OpError(f"service {name} is still stopping and shares its process (id {pid}) with other services; it "
                       "is not ended. End it by hand or wait, then run the task again")
    host.scm.kill_process(pid)
    _wait_stopped(host, name, 30)
    return pid


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


#: Invoke-ServiceOp's branches, one per operation of the vocabulary (_window/ops.py OPS); a test
#: holds the two to the same names.

# --- net_isolate's operations (_Firewall.psm1 / _Watchdog.psm1: Set-FirewallProfileState, Add-IsolationRule,
# Remove-IsolationRule, Register-Watchdog, Unregister-Watchdog) ---------------------------------------------------

ISOLATION_PREFIX = "configmgr.sql_upgrade isolation ("
ISOLATION_GROUP = "configmgr.sql_upgrade"
WATCHDOG_TASK = "\\configmgr.sql_upgrade\\watchdog"


def _op_set_profile(host: Host, op: dict[str, Any], timeout: int) -> None:
    profile = host.net.firewall.profiles[str(op.get("name"))]
    want = bool(op.get("enabled"))
    if profile.enabled == want:
        op["result"] = "unchanged"
        return
    profile.enabled = want  # netsh advfirewall set <profile>profile state on|off
    op["result"] = "changed"


def _op_add_rule(host: Host, op: dict[str, Any], timeout: int) -> None:
    host.net.firewall.rules.append(FirewallRule(
        str(op.get("name")), str(op.get("direction")), "block", str(op.get("protocol")), None,
        list(op.get("remote_addresses") or []), None, True, list(op.get("remote_ports") or []) or None,
        ISOLATION_GROUP))
    op["result"] = "changed"


def _op_remove_rule(host: Host, op: dict[str, Any], timeout: int) -> None:
    name = str(op.get("name"))
    if not name.startswith(ISOLATION_PREFIX):
        raise _OpError(f"rule '{name}' is not an isolation rule of configmgr.sql_upgrade; it is left alone")
    before = len(host.net.firewall.rules)
    host.net.firewall.rules = [r for r in host.net.firewall.rules if r.name != name]
    op["result"] = "changed" if len(host.net.firewall.rules) != before else "unchanged"


def _op_register_watchdog(host: Host, op: dict[str, Any], timeout: int) -> None:
    # watchdog.ps1 (Invoke-ServiceWindowWatchdog's text) beside the journal, then schtasks /Create /XML /F.
    write_file(host, watchdog_script_path(host), "# Invoke-ServiceWindowWatchdog (the twin: run_watchdog)")
    host.tasks.register(str(op.get("name")), int(op.get("minutes") or 0), True, run_watchdog)
    op["result"] = "changed"


def _op_remove_watchdog(host: Host, op: dict[str, Any], timeout: int) -> None:
    op["result"] = "changed" if host.tasks.delete(str(op.get("name"))) else "unchanged"
    script = watchdog_script_path(host)
    if host.fs.exists(script):
        host.fs.remove(script)


OP_HANDLERS: dict[str, Callable[[Host, dict[str, Any], int], None]] = {
    "set_mode": _op_set_mode,
    "stop": _op_stop,
    "start": _op_start,
    "expect_stopped": _op_expect_stopped,
    "end_process": _op_end_process,
    "set_profile": _op_set_profile,
    "add_rule": _op_add_rule,
    "remove_rule": _op_remove_rule,
    "register_watchdog": _op_register_watchdog,
    "remove_watchdog": _op_remove_watchdog,
}


def run_op(host: Host, op: dict[str, Any], timeout: int, end_hung: bool = False) -> None:
    """Invoke-ServiceOp: one planned operation (Ansible.Basic already refused an op outside the spec's
    choices; the last branch is the executor's own guard). end_hung: its -EndHung switch, for a stop."""
    if op.get("op") == "stop":
        _op_stop(host, op, timeout, end_hung)
        return
    handler = OP_HANDLERS.get(str(op.get("op")))
    if handler is None:
        raise _OpError(f"unknown operation '{op.get('op')}' for service {op.get('name')}")
    handler(host, op, timeout)


def _gather(ctx: ModuleContext, version_evidence: bool) -> dict[str, Any]:
    host = ctx.host
    watchdog = gather_lease(ctx)
    return {
        "changed": False,
        "journal_path": journal_path(host),
        "watchdog": watchdog,
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
    # Invoke-JournaledPlan: only win_service_quiesce has end_hung_services.
    end_hung = bool(params.get("end_hung_services"))
    plan = params.get("_plan") or []
    resume_at = int(params.get("_resume_at") or 0)
    if not 0 <= resume_at <= len(plan):
        raise ModuleFailed(f"_resume_at {resume_at} is outside the plan of {len(plan)} operations; nothing was changed",
                           **result)
    for index in range(resume_at, len(plan)):
        op = plan[index]
        # Invoke-PlanLocked: the slice travels with the operation for its handler, and leaves it afterwards.
        op["_slice"] = int(params.get("_slice") or 0)
        op["_waited"] = int(params.get("_waited") or 0) if index == resume_at else 0
        # A stop of a Configuration Manager service carries its own timeout and end_hung (ops.py OPS).
        op_timeout, op_end_hung = int(params["timeout"]), end_hung
        if op.get("op") == "stop" and op.get("timeout") is not None:
            op_timeout = int(op["timeout"])
        if op.get("op") == "stop" and op.get("end_hung") is not None:
            op_end_hung = bool(op["end_hung"])
        try:
            run_op(host, op, op_timeout, op_end_hung)
        except (WindowsError_, _OpError) as err:
            what = _what(op)
            failures.append({"op": op.get("op"), "name": op.get("name"),
                             "msg": f"{op.get('op')} of {what} failed: {err}"})
            if len(failures) == 1:
                result["failed_op"] = op
            if not params.get("_continue_on_error"):
                msg = f"{failures[0]['msg']}. The journal {path} holds {fix.format(name=op.get('name'))}"
                raise ModuleFailed(msg, **result) from err
            continue
        finally:
            waited = int(op.pop("_waited", 0))
            op.pop("_slice", None)
        if op.get("result") == "stopping":
            # Still stopping at the end of the slice: _journal_after unwritten; the caller's lease is renewed.
            result["pending"] = {"index": index, "op": op.get("op"), "name": op.get("name"), "waited": waited,
                                 "timeout": op_timeout,
                                 "state": service_state(host, str(op.get("name")))["state"]}
            found = watchdog_task(host)  # Get-RenewedLease: renewed unless it has ended
            if found and not found["expired"]:
                renew_lease(host)
            return result
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
    # Get-ServiceState: the verification read of every service the plan acted on (net_isolate.ps1 reads the
    # firewall itself after this returns: FIREWALL_OPS).
    plan = params.get("_plan") or []
    names = list(dict.fromkeys(str(op.get("name")) for op in plan if op.get("op") in SERVICE_OPS))
    result["after"] = [service_state(host, name) for name in names]
    return result


SERVICE_OPS = ("set_mode", "stop", "start", "expect_stopped")


def _what(op: dict[str, Any]) -> str:
    """What an operation was for, as Invoke-PlanLocked names it in a failure."""
    kind = op.get("op")
    if kind == "end_process":
        return f"process {op.get('name')} (id {op.get('process_id')})"
    if kind in ("add_rule", "remove_rule"):
        return f"firewall rule '{op.get('name')}'"
    if kind == "set_profile":
        return f"firewall profile {op.get('name')}"
    if kind in ("register_watchdog", "remove_watchdog"):
        return f"scheduled task {op.get('name')}"
    return f"service {op.get('name')}"


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


# --- the lease: Update-ServiceWindowLease, Get-WatchdogTask and the watchdog itself ------------------------------


def watchdog_task(host: Host) -> dict[str, str] | None:
    """Get-WatchdogTask: the task and its time trigger's StartBoundary (the host's local time; the twin's is UTC)."""
    task = host.tasks.get(WATCHDOG_TASK)
    if task is None:
        return None
    # Register-Watchdog's StartBoundary: invariant culture, with the local offset (twin hosts run in UTC).
    fires = _dt.datetime.fromtimestamp(task.fires, tz=_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    return {"task": WATCHDOG_TASK, "fires": fires, "expired": task.fires < host.clock.now()}


def renew_lease(host: Host) -> dict[str, str] | None:
    """Update-ServiceWindowLease: with an open window recorded in a trusted journal and the watchdog registered,
    move its time trigger to now + the recorded lease: the isolation's while isolated, else the window's own
    (lease_minutes) while services or WMI are still to be put back."""
    text = read_journal(host)
    if text is None or journal_trust_problem(host):
        return None
    doc = json.loads(text)
    network, services, wmi = doc.get("network"), doc.get("services"), doc.get("wmi")
    minutes = 0
    if network and network.get("status") == "isolated":
        minutes = int(network["lease_minutes"])
    elif "lease_minutes" in doc and ((services and services.get("status") == "quiesced")
                                     or (wmi and wmi.get("status") != "enabled")):
        minutes = int(doc["lease_minutes"])
    if minutes <= 0 or host.tasks.get(WATCHDOG_TASK) is None:
        return None
    host.tasks.register(WATCHDOG_TASK, minutes, True, run_watchdog)
    return watchdog_task(host)


def gather_lease(ctx: ModuleContext) -> dict[str, Any] | None:
    """The gathers' lease step: the watchdog as found; renewed (not in check mode) unless it has ended."""
    found = watchdog_task(ctx.host)
    if not ctx.check_mode and found and not found["expired"]:
        renew_lease(ctx.host)
    return found


def _undo_refusal(op: dict[str, Any], recorded: list[str]) -> str:
    """Test-UndoOp: '' when the watchdog may run `op` from the journal, else why not."""
    kind, name = str(op.get("op")), str(op.get("name"))
    if kind in ("set_mode", "start"):
        if name.casefold() not in {r.casefold() for r in recorded}:  # -notcontains compares without case
            return f"{name} is not a service the journal records"
        if kind == "set_mode" and op.get("start_mode") not in SETTABLE_START_MODES:
            return f"start mode '{op.get('start_mode')}' is not one a restore sets"
        return ""
    if kind == "remove_rule":
        if name.startswith(ISOLATION_PREFIX):
            return ""
        return f"rule '{name}' is not an isolation rule of configmgr.sql_upgrade"
    if kind == "set_profile":
        return "" if name in PROFILES else f"'{name}' is not a firewall profile"
    return f"'{kind}' is not an operation of a restore"


def _watchdog_set_mode(host: Host, op: dict[str, Any], timeout: int) -> None:
    """Invoke-WatchdogServiceOp's set_mode: sc.exe config NAME start= MODE (ChangeServiceConfig; 1060 for a missing
    service, which Invoke-NativeCommand's rc reports)."""
    host.scm.set_start_mode(str(op["name"]), str(op["start_mode"]))
    op["result"] = "changed"


#: What watchdog.ps1 runs an undo operation with: services through Invoke-WatchdogServiceOp (its start waits out a
#: stop, continues a paused service, starts and waits for Running: the model of _op_start), the firewall through
#: net_isolate's own handlers, copied into the script by their text.
WATCHDOG_OPS: dict[str, Callable[[Host, dict[str, Any], int], None]] = {
    "set_mode": _watchdog_set_mode,
    "start": _op_start,
    "remove_rule": _op_remove_rule,
    "set_profile": _op_set_profile,
}


def run_watchdog(host: Host, trigger: str) -> bool:
    """Invoke-ServiceWindowWatchdog, step by step: True when it has finished, False while it waits for SQL Server
    setup (the script's Start-Sleep loop while the recorded setup process exists). Under a Group Policy execution
    policy that blocks local unsigned scripts, powershell.exe refuses watchdog.ps1 and the task ends having done
    nothing (host/powershell.py)."""
    if host.powershell.script_blocked():
        return True
    path = journal_path(host)
    text = read_journal(host)
    if text is None:
        host.tasks.delete(WATCHDOG_TASK)
        return True
    doc = json.loads(text)
    log: list[str] = []
    setup = doc.get("setup")
    if setup and setup.get("status") == "running":
        # Process id 0: the controller has not recorded it yet; the setup runner's state file names it (or the
        # runner is still starting setup: the script waits until ten minutes after the recorded start).
        setup_pid = int(setup["process_id"])
        state_file = path.rsplit("\\", 1)[0] + "\\setup_state.json"
        ended = False
        if setup_pid == 0 and host.fs.exists(state_file):
            state = json.loads(host.fs.read(state_file).decode("utf-8"))
            ended = state.get("ended") is not None
            setup_pid = 0 if ended else int(state.get("process_id") or 0)
        if not ended:
            found = host.processes.get(setup_pid) if setup_pid > 0 else None
            # Process ids are reused: one that started more than two minutes after setup's recorded start is
            # another process (Invoke-ServiceWindowWatchdog compares Process.StartTime).
            if found is not None and found.created > parse_iso(str(setup["started"])) + 120:
                found = None
            if setup_pid > 0 and found is not None:
                return False
            if setup_pid == 0 and not host.fs.exists(state_file):
                if host.clock.now() - parse_iso(str(setup["started"])) < 600:
                    return False
        log.append(f"waited for SQL Server setup (process {setup_pid}) to end")
    # The journal's undo (planned by the controller: plugins/plugin_utils/_window/undo.py), each operation checked
    # (Test-UndoOp) and run (Invoke-WatchdogServiceOp, or net_isolate's firewall handlers); nothing decided here.
    opened = [name for name, section, statuses in (("network", doc.get("network"), ("isolated",)),
                                                   ("wmi", doc.get("wmi"), ("disabled", "setup")),
                                                   ("services", doc.get("services"), ("quiesced",)))
              if section and section.get("status") in statuses]
    if opened and "undo" not in doc:
        return True  # a journal from before the undo: left as it is, with the task (see the script)
    recorded = [*((doc.get("services") or {}).get("records") or {}), *(["Winmgmt"] if doc.get("wmi") else []),
                *((doc.get("wmi") or {}).get("dependents") or [])]
    ran = 0
    for item in doc.get("undo") or []:
        op = dict(item)
        refused = _undo_refusal(op, recorded)
        if refused:
            log.append(f"refused {op.get('op')} of {op.get('name')}: {refused}")
            continue
        try:
            if op.get("op") in ("remove_rule", "set_profile") and host.powershell.com_refused():
                # net_isolate's firewall handlers use HNetCfg.FwPolicy2 (New-Object -ComObject): refused in
                # ConstrainedLanguage.
                raise _OpError(str(host.powershell.com_refused()))
            WATCHDOG_OPS[str(op["op"])](host, op, 120)
            ran += 1
        except (WindowsError_, _OpError) as err:
            log.append(f"{op.get('op')} of {op.get('name')} failed: {err}")
    for name, status in (("network", "restored"), ("wmi", "enabled"), ("services", "restored")):
        if name in opened:
            doc[name]["status"] = status
    if opened:
        log.append(f"{', '.join(opened)} put back ({ran} of {len(doc.get('undo') or [])} operations ran)")
    if "undo" in doc:
        doc["undo"] = []
    now = host_time(host)
    said = "; ".join(log)
    doc["watchdog"] = {"fired": now, "trigger": trigger, "result": said if len(said) <= 2000 else said[:1997] + "..."}
    doc["updated"] = now
    # ConvertTo-Json -Depth 8 (indentation differs from the controller's; the content is what counts).
    try:
        write_file(host, path, json.dumps(doc, indent=4))
    except WindowsError_:
        # The script runs with $ErrorActionPreference = 'Continue': a failed WriteAllText / Replace (a full disk)
        # is a statement-terminating error, written to the task's error stream, and the script goes on. The
        # window is back on the host; the journal still says it is open, so a later restore finds every record
        # as recorded and marks it so.
        pass
    host.tasks.delete(WATCHDOG_TASK)
    script = watchdog_script_path(host)
    if host.fs.exists(script):
        host.fs.remove(script)
    return True


# --- net_isolate ------------------------------------------------------------------------------------------------


def _read_addresses(items: list[str] | None) -> list[str]:
    """INetFwRule.RemoteAddresses as Windows reads it back: a single IPv4 address comes back with its mask."""
    out = []
    for item in items or []:
        if "-" not in item and "/" not in item and ":" not in item:
            out.append(f"{item}/255.255.255.255")
        else:
            out.append(item)
    return out


def firewall_state(host: Host) -> dict[str, Any]:
    """Get-FirewallState: each profile (LocalPolicyModifyState only for the current profiles, those of the
    adapters that are up) and this collection's isolation rules by name (ConvertTo-RuleFact)."""
    current = {a.profile for a in host.net.adapters if a.up}
    profiles = {
        name: {
            "enabled": p.enabled,
            "current": name in current,
            "modify_state": p.modify_state() if name in current else None,
            "policy_enabled": p.policy_enabled,
            "local_rules_merged": p.local_rules_merged,
            "shields_up": p.shields_up,
        }
        for name, p in host.net.firewall.profiles.items()
    }
    rules = {}
    for r in host.net.firewall.rules:
        if r.group == ISOLATION_GROUP or r.name.startswith(ISOLATION_PREFIX):
            rules[r.name] = {
                "name": r.name, "direction": r.direction, "action": r.action, "protocol": r.protocol,
                "remote_addresses": _read_addresses(r.remote_addresses), "remote_ports": list(r.remote_ports or []),
                "profiles": "all" if r.profiles is None else "some", "enabled": r.enabled,
            }
    return {"profiles": profiles, "rules": rules}


def domain_facts(host: Host) -> dict[str, Any]:
    """Get-DomainFact: the connection's account, the server's domain and its controllers (nltest)."""
    account = host.net.account
    domain = host.net.domain
    name = account.name if "\\" in account.name else f"{host.computer_name}\\{account.name}"
    return {
        "account": name,
        "account_is_domain": bool(account.domain and domain),
        "authentication": "NTLM" if account.domain else "Basic",
        "domain": domain.name if domain else "",
        "controllers": list(domain.controllers) if domain else [],
    }


#: The operations after which net_isolate.ps1 reads the firewall back (firewall_after).
FIREWALL_OPS = ("set_profile", "add_rule", "remove_rule")


@module("configmgr.sql_upgrade.net_isolate")
def net_isolate(ctx: ModuleContext) -> dict[str, Any]:
    host = ctx.host
    phase = ctx.params.get("_phase")
    if phase == "gather":
        watchdog = gather_lease(ctx)
        return {
            "changed": False,
            "journal_path": journal_path(host),
            "firewall": firewall_state(host),
            "peers": host.net.winrm_peers(),
            "domain": domain_facts(host),
            "watchdog": watchdog,
            "journal_text": read_journal(host),
            "journal_untrusted": journal_trust_problem(host),
            "host_time": host_time(host),
            "host_name": host.computer_name,
        }
    if phase == "confirm":
        result: dict[str, Any] = {"changed": False, "journal_path": journal_path(host), "watchdog": None}
        if not ctx.check_mode:
            result["watchdog"] = renew_lease(host)
            result["changed"] = True
            if result["watchdog"] is None:
                # net_isolate.ps1: the lease no longer holds (the probation ended before this confirm).
                raise ModuleFailed(f"the isolation's lease no longer holds: the watchdog task {WATCHDOG_TASK} is gone "
                                   f"or the journal {journal_path(host)} no longer records the isolation (its "
                                   "probation ended before this confirm, and the watchdog put the network back)",
                                   lease_lost=True, **result)
        return result
    result = _apply(ctx, "the firewall profiles' prior state and this collection's rules: run net_isolate with "
                         "state=restored to put the network back, or fix {name} and run again.")
    # net_isolate.ps1 after Invoke-JournaledPlan: Get-FirewallState when the plan had firewall operations.
    if any(op.get("op") in FIREWALL_OPS for op in ctx.params.get("_plan") or []):
        result["firewall_after"] = firewall_state(host)
    result["watchdog"] = watchdog_task(host)
    return result


# --- sql_single_user_check ----------------------------------------------------------------------------------------

GATE_APPLICATION = "configmgr.sql_upgrade sql_single_user_check"


def connection_login(host: Host) -> str:
    """SUSER_SNAME() of a Windows-authenticated connection as the WinRM account: DOMAIN\\user as given, the
    computer's name for a local account (COMPUTER\\Administrator), the NetBIOS domain for a domain account given as
    user or UPN."""
    account = host.net.account
    if "\\" in account.name:
        return account.name
    user = account.name.split("@", 1)[0]
    prefix = (host.domain_netbios or host.computer_name) if account.domain else host.computer_name
    return f"{prefix}\\{user}"


@module("configmgr.sql_upgrade.sql_single_user_check")
def sql_single_user_check(ctx: ModuleContext) -> dict[str, Any]:
    """The executor's one read: instances from the registry, the service from the SCM, then its own SqlClient
    connection (Application Name = GATE_APPLICATION, never pooled, closed at the end): the version, the user
    sessions but its own, the databases. The model has no SQL logins: a login_user is refused by name."""
    host = ctx.host
    name = str(ctx.params["instance"])
    try:
        names = list(host.registry.values(INSTANCE_NAMES_KEY))
    except WindowsError_:
        names = []
    service = "MSSQLSERVER" if name == "MSSQLSERVER" else f"MSSQL${name}"
    state = host.scm.get(service).state if host.scm.exists(service) else "missing"
    result: dict[str, Any] = {
        "changed": False, "instances": names,
        "instance": {"name": name, "service": service, "service_state": state, "version": None, "edition": None},
        "connected": False, "connect_error": None, "sessions": [], "databases": [],
    }
    # PowerShell's -notcontains compares strings without case.
    if name.casefold() not in {n.casefold() for n in names} or state != "running":
        return result
    if ctx.params.get("login_user"):
        raise UnknownCommand("sql_single_user_check with login_user: the twin models Windows authentication only")
    inst = host.sql.instance(name)
    if inst.single_user and inst.single_user_owner != GATE_APPLICATION:
        # The one connection of single-user mode is taken (setup's, or whoever was first): error 18461.
        login = login_for(host.net.account.name, host.domain_netbios, host.computer_name)
        result["connect_error"] = (f"SQL Server error 18461: Login failed for user '{login}'. Reason: Server is in "
                                   "single user mode. Only one administrator can connect at this time.")
        return result
    # Windows authentication as the connection's account; WinRM admits administrators (its default SDDL), so the
    # account is a member of BUILTIN\Administrators too.
    login = connection_login(host)
    rights = windows_rights(inst, [login, "BUILTIN\\Administrators"])
    if rights is None:
        result["connect_error"] = f"SQL Server error 18456: Login failed for user '{login}'."
        return result
    result["connected"] = True
    result["instance"].update(version=inst.version, edition=inst.edition)
    result["permissions"] = rights
    # Without VIEW SERVER STATE a login sees only its own session (sys.dm_exec_sessions, Permissions), which the
    # query leaves out (session_id <> @@SPID).
    result["sessions"] = [
        {"session_id": s["spid"], "login_name": s["login_name"], "host_name": s["host_name"],
         "program_name": s["program_name"], "host_process_id": s["host_process_id"], "status": "sleeping"}
        for s in inst.sessions()
    ] if rights["view_server_state"] else []
    result["databases"] = [{"name": db, "state": "ONLINE", "user_access": spec.get("user_access", "MULTI_USER")}
                           for db, spec in sorted(inst.databases.items(), key=lambda item: item[0].casefold())]
    return result
