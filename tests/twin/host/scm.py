"""The Service Control Manager: services, dependencies, start modes, stop faults, recovery actions.

Semantics follow the Win32 service API (StartService / ControlService(SERVICE_CONTROL_STOP) /
ChangeServiceConfig) and what ansible.windows.win_service layers on top (force_dependent_services).
Service names are case-insensitive, as in the SCM database (WinRM lists 'RPCSS', the service is 'RpcSs').
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import Unmodelled, WindowsError_

if TYPE_CHECKING:
    from .host import Host

START_MODES = ("auto", "delayed", "manual", "disabled")
STATES = ("running", "stopped", "start_pending", "stop_pending", "paused")
ROLES = ("windows", "sql", "configmgr", "iis", "third_party")

# win_service_info reports SERVICE_RUNNING as 'started' (win_service_info.ps1: `Running { 'started' }`).
INFO_STATE = {
    "running": "started",
    "stopped": "stopped",
    "start_pending": "start_pending",
    "stop_pending": "stop_pending",
    "paused": "paused",
}

# ERROR_PROCESS_ABORTED: the exit code the SCM records for a service whose process died without
# reporting SERVICE_STOPPED (event 7031/7034 "terminated unexpectedly").
ERROR_PROCESS_ABORTED = 1067


@dataclass
class Service:
    name: str
    display_name: str
    description: str | None
    path: str
    start_mode: str
    state: str
    dependencies: list[str]
    process_id: int
    failure_actions: list[dict[str, Any]]
    failure_actions_on_non_crash_failure: bool
    failure_command: str | None
    failure_reboot_msg: str | None
    failure_reset_period_sec: int
    triggers: list[dict[str, Any]]
    service_type: str
    username: str | None
    # Reported as loaded; not behaviour (error_control, sid_info, required_privileges ...).
    static_info: dict[str, Any]
    # Controls the service accepts while running (empty while stopped, as SCM reports).
    running_controls: list[str]
    # Model-only facts (not part of win_service_info's output).
    role: str
    sql_client: bool
    product_name: str | None
    company_name: str | None
    file_version: str | None
    service_dll: str | None
    sql_program_name: str | None
    sql_instance: str | None
    component_manager_restarts: bool
    # Dynamic bookkeeping.
    win32_exit_code: int = 0
    stop_deadline: float | None = None  # slow stop: SERVICE_STOPPED at this clock time
    run_id: int = 0  # incremented on each start, so stale timed events are ignored
    failure_count: int = 0
    last_failure_at: float | None = None
    dependency_of: list[str] = field(default_factory=list)

    @property
    def alive(self) -> bool:
        """Its process exists: running, paused, or on its way down (STOP_PENDING still holds connections)."""
        return self.state in ("running", "paused", "start_pending", "stop_pending")


class Scm:
    def __init__(self, host: Host, services: list[Service]) -> None:
        self._host = host
        self._services: dict[str, Service] = {s.name.lower(): s for s in services}
        self._derive_dependents()

    # -- lookup -------------------------------------------------------------------------------------
    def names(self) -> list[str]:
        return [s.name for s in self._services.values()]

    def all(self) -> list[Service]:
        return list(self._services.values())

    def exists(self, name: str) -> bool:
        return name.lower() in self._services

    def get(self, name: str) -> Service:
        try:
            return self._services[name.lower()]
        except KeyError:
            # OpenService -> ERROR_SERVICE_DOES_NOT_EXIST (1060)
            raise WindowsError_(1060, name) from None

    def by_pid(self, pid: int) -> list[Service]:
        return [s for s in self._services.values() if s.process_id == pid and s.alive]

    def info(self, name: str) -> dict[str, Any]:
        return service_info(self.get(name))

    def _derive_dependents(self) -> None:
        for svc in self._services.values():
            svc.dependency_of = []
        for svc in self._services.values():
            for dep in svc.dependencies:
                target = self._services.get(dep.lower())
                if target is not None:
                    target.dependency_of.append(svc.name)

    def running_dependents(self, name: str) -> list[Service]:
        svc = self.get(name)
        return [self.get(d) for d in svc.dependency_of if self.get(d).state != "stopped"]

    # -- control ------------------------------------------------------------------------------------
    def start(self, name: str) -> None:
        self._start(self.get(name), chain=())

    def _start(self, svc: Service, chain: tuple[str, ...]) -> None:
        if svc.state in ("running", "start_pending", "paused"):
            # StartService on an active service: ERROR_SERVICE_ALREADY_RUNNING (1056).
            raise WindowsError_(1056, svc.name)
        if svc.state == "stop_pending":
            # The SCM refuses to start a service until its process reports SERVICE_STOPPED.
            raise WindowsError_(1061, svc.name)
        if svc.start_mode == "disabled":
            # StartService on a disabled service: ERROR_SERVICE_DISABLED (1058).
            raise WindowsError_(1058, svc.name)
        # The SCM starts every dependency first; if one cannot start the dependent fails with
        # ERROR_SERVICE_DEPENDENCY_FAIL (1068).
        for dep_name in svc.dependencies:
            if self._host.is_driver(dep_name):
                continue  # kernel drivers (HTTP, Tcpip, ...) are boot/system-start and always loaded
            if not self.exists(dep_name):
                raise WindowsError_(1075, f"{svc.name} depends on {dep_name}")
            dep = self.get(dep_name)
            if dep.state in ("running", "paused", "start_pending"):
                continue
            if dep.name in chain:
                raise Unmodelled(f"dependency cycle {' -> '.join(chain + (dep.name,))}")
            try:
                self._start(dep, chain + (svc.name,))
            except WindowsError_ as err:
                raise WindowsError_(1068, f"{svc.name}: dependency {dep.name} failed: {err}") from err
            if dep.state == "stopped":
                # The dependency stopped while starting (fault start_exit_code): the dependent cannot start.
                raise WindowsError_(1068, f"{svc.name}: dependency {dep.name} stopped while starting")
        fault = self._host.faults.services.get(svc.name.lower())
        if fault is not None and fault.start_exit_code:
            # StartService succeeded, the process started and stopped again while starting: the SCM records
            # SERVICE_STOPPED with the exit code (what QueryServiceStatusEx's dwWin32ExitCode then shows).
            svc.win32_exit_code = fault.start_exit_code
            return
        svc.state = "running"
        svc.win32_exit_code = 0
        svc.run_id += 1
        svc.process_id = self._host.allocate_pid(svc)
        self._host.on_service_started(svc)

    def _check_protected(self, svc: Service, what: str) -> None:
        """Fault services.NAME.protected: tamper protection refuses the change (ERROR_ACCESS_DENIED, 5)."""
        fault = self._host.faults.services.get(svc.name.lower())
        if fault is not None and fault.protected:
            raise WindowsError_(5, f"{what} of {svc.name} (tamper protection)")

    def is_protected(self, name: str) -> bool:
        fault = self._host.faults.services.get(self.get(name).name.lower())
        return fault is not None and fault.protected

    def config_readable(self, name: str) -> bool:
        fault = self._host.faults.services.get(self.get(name).name.lower())
        return fault is None or not fault.config_unreadable

    def stop(self, name: str, force: bool = False) -> None:
        svc = self.get(name)
        self._check_protected(svc, "stop")
        if svc.state == "stopped":
            # ControlService(STOP) on a stopped service: ERROR_SERVICE_NOT_ACTIVE (1062).
            raise WindowsError_(1062, svc.name)
        if svc.state in ("stop_pending", "start_pending"):
            # Stopping, or still starting: ERROR_SERVICE_CANNOT_ACCEPT_CTRL (1061).
            raise WindowsError_(1061, svc.name)
        active = self.running_dependents(svc.name)
        if active and not force:
            # ERROR_DEPENDENT_SERVICES_RUNNING (1051): the SCM never stops dependents by itself.
            raise WindowsError_(1051, f"{svc.name}: {', '.join(d.name for d in active)}")
        if force:
            # win_service force_dependent_services: stop dependents first, deepest first.
            for dep in active:
                if dep.state not in ("stopped", "stop_pending"):
                    self.stop(dep.name, force=True)
            still = self.running_dependents(svc.name)
            if still:
                # A dependent is still STOP_PENDING (slow or stuck): the SCM still counts it as active.
                raise WindowsError_(1051, f"{svc.name}: {', '.join(d.name for d in still)} still stopping")
        if "stop" not in svc.running_controls:
            # The service does not accept SERVICE_CONTROL_STOP (e.g. RpcSs): ERROR_INVALID_SERVICE_CONTROL.
            raise WindowsError_(1052, svc.name)
        fault = self._host.faults.services.get(svc.name.lower())
        if fault is not None and fault.stop == "stuck":
            # The process acknowledges the control and never reports SERVICE_STOPPED.
            svc.state = "stop_pending"
            svc.stop_deadline = None
            return
        if fault is not None and fault.stop == "slow":
            svc.state = "stop_pending"
            svc.stop_deadline = self._host.clock.now() + float(fault.seconds or 0)
            self._host.schedule(svc.stop_deadline, "stop_complete", svc.name, svc.run_id)
            return
        self._finish_stop(svc, exit_code=0)

    def begin_slow_start(self, name: str, seconds: float) -> None:
        """Something else started the service and it takes `seconds` to report SERVICE_RUNNING: it is
        START_PENDING until then (ControlService answers ERROR_SERVICE_CANNOT_ACCEPT_CTRL, 1061, meanwhile).
        Disabling it in between does not stop a start already under way."""
        svc = self.get(name)
        if svc.state != "stopped":
            raise WindowsError_(1056, svc.name)
        if svc.start_mode == "disabled":
            raise WindowsError_(1058, svc.name)
        svc.state = "start_pending"
        svc.run_id += 1
        svc.process_id = self._host.allocate_pid(svc)
        self._host.schedule(self._host.clock.now() + seconds, "start_complete", svc.name, svc.run_id)

    def complete_slow_start(self, name: str, run_id: int) -> None:
        svc = self.get(name)
        if svc.state == "start_pending" and svc.run_id == run_id:
            svc.state = "running"
            svc.win32_exit_code = 0
            self._host.on_service_started(svc)

    def complete_slow_stop(self, name: str, run_id: int) -> None:
        svc = self.get(name)
        if svc.state == "stop_pending" and svc.run_id == run_id and svc.stop_deadline is not None:
            self._finish_stop(svc, exit_code=0)

    def _finish_stop(self, svc: Service, exit_code: int) -> None:
        pid = svc.process_id
        svc.state = "stopped"
        svc.process_id = 0
        svc.stop_deadline = None
        svc.win32_exit_code = exit_code
        self._host.on_service_stopped(svc)
        self._host.processes.on_service_stopped(svc, pid)

    def set_start_mode(self, name: str, mode: str) -> None:
        if mode not in START_MODES:
            raise WindowsError_(87, f"start mode {mode!r} is not one of {', '.join(START_MODES)}")
        # ChangeServiceConfig changes the configuration only: a running service keeps running when
        # disabled, and nothing starts when a service is set to auto.
        self._check_protected(self.get(name), "ChangeServiceConfig")
        self.get(name).start_mode = mode

    def kill_process(self, pid: int) -> None:
        victims = self.by_pid(pid)
        if not victims or pid <= 0:
            # OpenProcess on a pid that does not exist: ERROR_INVALID_PARAMETER (87)
            # (taskkill: 'The process "PID" not found.').
            raise WindowsError_(87, f"process {pid} not found")
        for svc in victims:
            self._finish_stop(svc, exit_code=ERROR_PROCESS_ABORTED)
            self._on_crash(svc)

    def _on_crash(self, svc: Service) -> None:
        """The SCM's recovery: the Nth failure within failure_reset_period_sec runs action N (the last
        action repeats). Only for a process that ended without reporting SERVICE_STOPPED: a clean stop
        through the SCM never fires them (SERVICE_FAILURE_ACTIONS docs). A disabled service is not
        restarted (StartService would fail with 1058)."""
        now = self._host.clock.now()
        if (
            svc.last_failure_at is not None
            and svc.failure_reset_period_sec
            and (now - svc.last_failure_at > svc.failure_reset_period_sec)
        ):
            svc.failure_count = 0
        svc.failure_count += 1
        svc.last_failure_at = now
        if not svc.failure_actions:
            return
        action = svc.failure_actions[min(svc.failure_count, len(svc.failure_actions)) - 1]
        if action["type"] == "none":
            return
        if action["type"] != "restart":
            raise Unmodelled(f"{svc.name}: failure action {action['type']!r} (only 'restart' and 'none')")
        self._host.schedule(now + action["delay_ms"] / 1000.0, "recovery_restart", svc.name, svc.run_id)

    def recovery_restart(self, name: str, run_id: int) -> None:
        svc = self.get(name)
        if svc.state != "stopped" or svc.run_id != run_id or svc.start_mode == "disabled":
            return
        try:
            self._start(svc, chain=())
        except WindowsError_ as err:
            self._host.log_event("System", 7000, f"{svc.name} failed to start after a failure: {err}")

    def shutdown_all(self) -> None:
        """System shutdown: every service process ends (SCM sends SERVICE_CONTROL_SHUTDOWN and then
        terminates what does not exit in time), and no recovery action fires."""
        for svc in self._services.values():
            if svc.state != "stopped":
                svc.state = "stopped"
                svc.process_id = 0
                svc.stop_deadline = None
                svc.win32_exit_code = 0


def service_info(svc: Service) -> dict[str, Any]:
    """One entry of win_service_info's `services`, keys as win_service_info.ps1 builds them."""
    info: dict[str, Any] = {
        "checkpoint": 0,
        "controls_accepted": list(svc.running_controls) if svc.state == "running" else [],
        "dependencies": list(svc.dependencies),
        "dependency_of": list(svc.dependency_of),
        "description": svc.description,
        "desktop_interact": False,
        "display_name": svc.display_name,
        "error_control": "normal",
        "failure_actions": [dict(a) for a in svc.failure_actions],
        "failure_actions_on_non_crash_failure": svc.failure_actions_on_non_crash_failure,
        "failure_command": svc.failure_command,
        "failure_reboot_msg": svc.failure_reboot_msg,
        "failure_reset_period_sec": svc.failure_reset_period_sec,
        "launch_protection": "none",
        "load_order_group": "",
        "name": svc.name,
        "path": svc.path,
        "pre_shutdown_timeout_ms": 180000,
        "preferred_node": None,
        "process_id": svc.process_id,
        "required_privileges": [],
        "service_exit_code": 0,
        "service_flags": [],
        "service_type": svc.service_type,
        "sid_info": "none",
        "start_mode": svc.start_mode,
        "state": INFO_STATE[svc.state],
        "triggers": [dict(t) for t in svc.triggers],
        "username": svc.username,
        "wait_hint_ms": 0,
        "win32_exit_code": svc.win32_exit_code,
    }
    for key, value in svc.static_info.items():
        info[key] = value
    if svc.state == "stop_pending":
        info["wait_hint_ms"] = 30000
        info["checkpoint"] = 1
    return info
