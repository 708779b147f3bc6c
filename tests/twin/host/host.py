"""The Host: one Windows site server, its clock, and the time-driven behaviour that ties the parts together."""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from typing import Any

from .clock import Clock, to_filetime
from .errors import Unmodelled, WindowsError_, WmiUnavailable
from .faults import Faults
from .fs import FileSystem
from .net import Network
from .powershell import PowerShellPolicy
from .processes import ProcessTable
from .registry import Registry
from .scm import Scm, Service
from .sources import Share
from .sql import SqlServer
from .tasks import TaskScheduler
from .wmi import Wmi

SITE_COMPONENT_MANAGER = "SMS_SITE_COMPONENT_MANAGER"
LOGON_UI_KEY = r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon\AutoLogonChecked"
# Time a restart takes: services stop at shutdown, then the boot; delayed-auto services start 120 s
# after the automatic ones (the SCM's default AutoStartDelay).
SHUTDOWN_SECONDS = 20.0
BOOT_SECONDS = 45.0
DELAYED_AUTO_START_SECONDS = 120.0


@dataclass
class Counters:
    winrm_commands: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    # What each command that reached the exec wrapper ran, in order: a module's name (with its executor phase,
    # "configmgr.sql_upgrade.sql_setup:poll"), a wrapper action ("winrm_put_file.ps1"), or "raw" for a script
    # without the wrapper. The benchmark counts setup's polls apart with it; the fault matrix finds each step's
    # commands with it.
    ran: list[str] = field(default_factory=list)


class Host:
    """Build with load_host(); the constructor takes an already validated scenario."""

    def __init__(self, name: str, seed: int, scenario: Any) -> None:
        from .scenario import build_parts  # circular: scenario builds parts that reference the host

        self.name = name
        self.seed = seed
        self.rng = random.Random(seed)
        self.counters = Counters()
        self.is_up = True
        self.events: list[tuple[str, int, str]] = []  # (log, event id, message), like the event log
        self.boot_order: list[str] = []
        self._queue: list[tuple[float, int, str, str, int]] = []
        self._seq = 0
        self.wmiprvse_pid = 0
        parts = build_parts(self, scenario)
        self.computer_name: str = parts["computer_name"]
        self.domain_netbios: str | None = parts["domain_netbios"]
        self.component_manager_poll_seconds: float = parts["component_manager_poll_seconds"]
        self.powershell: PowerShellPolicy = parts.get("powershell") or PowerShellPolicy()
        self._drivers: set[str] = {d.lower() for d in parts["drivers"]}
        self.clock: Clock = parts["clock"]
        self.boot_time: float = parts["boot_time"]
        self.faults: Faults = parts["faults"]
        self.registry: Registry = parts["registry"]
        self.fs: FileSystem = parts["fs"]
        self.fs.is_full = lambda: self.faults.disk_full  # fault disk.full, also when set at run time
        self.scm: Scm = Scm(self, parts["services"])
        self.processes = ProcessTable(self, parts["processes"])
        self.wmi = Wmi(self)
        self.net: Network = parts["network"](self)
        self.tasks = TaskScheduler(self)
        # What the host can download (URL -> bytes) and the shares it can reach (\\\\server\\share lower-cased ->
        # Share): machines outside the host, set by a test.
        self.web: dict[str, bytes] = {}
        self.shares: dict[str, Share] = {}
        # The host's link to those web servers and shares, in bytes per second of the host's clock (None: the
        # bytes arrive at once), and the URLs whose server answers a range request with the whole file (no
        # "Accept-Ranges: bytes"; RFC 9110 section 14 lets a server ignore Range). IIS serves static files with ranges.
        self.pull_rate: float | None = None
        self.web_no_ranges: set[str] = set()
        self.sql: SqlServer = parts["sql"](self)
        for svc in self.scm.all():  # timers of services that were already running when loaded
            if svc.state == "running":
                self.on_service_started(svc, loaded=True)

    # -- identity / helpers -------------------------------------------------------------------------
    @property
    def boot_time_filetime(self) -> int:
        return to_filetime(self.boot_time)

    def is_driver(self, name: str) -> bool:
        return name.lower() in self._drivers

    def log_event(self, log: str, event_id: int, message: str) -> None:
        self.events.append((log, event_id, message))

    def allocate_pid(self, svc: Service) -> int:
        """Process ids are multiples of 4 (Windows allocates them from a handle table). A shared-process
        service joins a running svchost with the same command line."""
        if svc.service_type == "win32_share_process":
            for other in self.scm.all():
                if other is not svc and other.alive and other.path.lower() == svc.path.lower() and other.process_id:
                    return other.process_id
        used = {s.process_id for s in self.scm.all()} | {self.wmiprvse_pid} | self.processes.pids()
        while True:
            pid = self.rng.randrange(1000, 16000) * 4
            if pid not in used:
                return pid

    # -- timed events ------------------------------------------------------------------------------
    def schedule(self, when: float, kind: str, name: str, run_id: int) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (when, self._seq, kind, name, run_id))

    def on_service_started(self, svc: Service, loaded: bool = False) -> None:
        if svc.name.lower() == "winmgmt" and not self.wmiprvse_pid:
            used = {s.process_id for s in self.scm.all()} | self.processes.pids()
            pid = self.rng.randrange(1000, 16000) * 4
            while pid in used:
                pid = self.rng.randrange(1000, 16000) * 4
            self.wmiprvse_pid = pid  # WmiPrvSE.exe hosting the SMS Provider
        if svc.name.upper() == SITE_COMPONENT_MANAGER:
            self.schedule(self.clock.now() + self.component_manager_poll_seconds, "sitecomp_poll", svc.name, svc.run_id)
        self.processes.on_service_started(svc, loaded)

    def on_service_stopped(self, svc: Service) -> None:
        if svc.name.lower() == "winmgmt":
            self.wmiprvse_pid = 0  # WmiPrvSE.exe hosts exit with the service

    def tick(self, seconds: float = 1.0) -> None:
        """Advance the clock, firing time-driven behaviour in time order."""
        if seconds < 0:
            raise ValueError("tick needs seconds >= 0")
        end = self.clock.now() + seconds
        while self._queue and self._queue[0][0] <= end:
            when, _seq, kind, name, run_id = heapq.heappop(self._queue)
            self.clock.set(max(when, self.clock.now()))
            if self.is_up:
                self._fire(kind, name, run_id)
        self.clock.set(end)
        if self.is_up:
            self._remote_wmi_clients()

    def _fire(self, kind: str, name: str, run_id: int) -> None:
        if kind == "stop_complete":
            self.scm.complete_slow_stop(name, run_id)
        elif kind == "start_complete":
            self.scm.complete_slow_start(name, run_id)
        elif kind == "recovery_restart":
            self.scm.recovery_restart(name, run_id)
        elif kind == "sitecomp_poll":
            self._sitecomp_poll(name, run_id)
        else:
            raise Unmodelled(f"timed event {kind!r}")

    def _sitecomp_poll(self, name: str, run_id: int) -> None:
        """SMS_SITE_COMPONENT_MANAGER, while it runs, checks the site's component services on its polling
        interval and starts those that are stopped (sitecomp.log "Starting service ..."). A disabled
        service cannot be started (1058): that is why quiescing disables them."""
        svc = self.scm.get(name)
        if svc.state != "running" or svc.run_id != run_id:
            return
        for other in self.scm.all():
            if other.component_manager_restarts and other.state == "stopped" and other.start_mode != "disabled":
                try:
                    self.scm.start(other.name)
                    self.log_event("Application", 1016, f"{SITE_COMPONENT_MANAGER} started {other.name}")
                except WindowsError_ as err:
                    self.log_event("Application", 1017, f"{SITE_COMPONENT_MANAGER} could not start {other.name}: {err}")
        self.schedule(self.clock.now() + self.component_manager_poll_seconds, "sitecomp_poll", name, run_id)

    def _remote_wmi_clients(self) -> None:
        """Remote SMS Provider clients (admin consoles, site systems) keep querying over WMI; each query
        demand-starts winmgmt unless it is disabled or the network keeps them out."""
        for client in self.net.remote_clients:
            if client.target == "wmi" and self.net.client_connected(client):
                try:
                    self.wmi.require(f"SMS Provider query from {client.name}")
                except WmiUnavailable:
                    pass

    # -- events (faults.events) ------------------------------------------------------------------------
    def fire_events(self, *, at_command: int | None = None, after_op: int | None = None,
                    after_op_for: str | None = None, at_module: str | None = None) -> None:
        """Run the fault events due now: a service started, stopped or reconfigured by something other than
        the module (the SCM's rules apply: starting a disabled service fails with 1058, as it would)."""
        for event in self.faults.due(at_command=at_command, after_op=after_op, after_op_for=after_op_for,
                                     at_module=at_module):
            if event.action == "set_mode":
                self.scm.set_start_mode(event.service, str(event.start_mode))
            elif event.action == "start":
                self.scm.start(event.service)
            elif event.action == "start_slow":
                self.scm.begin_slow_start(event.service, float(event.seconds or 0))
            else:
                self.scm.stop(event.service, force=True)

    # -- reboot --------------------------------------------------------------------------------------
    def reboot(self) -> None:
        """shutdown /r: every service stops, then the boot starts automatic services in dependency order
        and delayed-automatic ones after them; the boot time changes and pending-reboot markers clear.
        With faults.reboot.hang the host never comes back."""
        self.scm.shutdown_all()
        self.processes.shutdown()  # every process ends at shutdown
        self.tasks.shutdown()  # and with them every running task instance (setup, a waiting watchdog)
        self.sql.active_setup = None
        self._queue.clear()
        self.wmiprvse_pid = 0
        self.is_up = False
        self.clock.advance(SHUTDOWN_SECONDS)
        for inst in self.sql.instances.values():
            inst.single_user = False
            inst.single_user_owner = None
        if self.faults.reboot_hang:
            return
        self.clock.advance(BOOT_SECONDS)
        self.boot_time = self.clock.now()
        self.registry.clear_reboot_markers()
        # LogonUI creates this (volatile) key when the logon screen appears after boot; ansible.windows'
        # win_reboot waits for it by default (plugin_utils/_reboot.py, _LOGON_UI_KEY).
        self.registry.create_key(LOGON_UI_KEY)
        self.is_up = True
        self.boot_order = []
        self._boot_start([s for s in self.scm.all() if s.start_mode == "auto"])
        self.clock.advance(DELAYED_AUTO_START_SECONDS)
        self._boot_start([s for s in self.scm.all() if s.start_mode == "delayed"])
        self.tasks.on_boot()

    def _boot_start(self, services: list[Service]) -> None:
        for svc in services:
            if svc.state != "stopped":
                continue
            before = {s.name for s in self.scm.all() if s.state == "running"}
            try:
                self.scm.start(svc.name)
            except WindowsError_ as err:
                # Event 7001/7000: "The X service depends on the Y service which failed to start".
                self.log_event("System", 7001, f"{svc.name}: {err}")
            started = [s.name for s in self.scm.all() if s.state == "running" and s.name not in before]
            self.boot_order.extend(self._dependency_sorted(started))

    def _dependency_sorted(self, names: list[str]) -> list[str]:
        out: list[str] = []
        pending = set(n.lower() for n in names)

        def visit(name: str) -> None:
            if name.lower() not in pending:
                return
            pending.discard(name.lower())
            for dep in self.scm.get(name).dependencies:
                if self.scm.exists(dep):
                    visit(self.scm.get(dep).name)
            out.append(self.scm.get(name).name)

        for n in names:
            visit(n)
        return out

    # -- state for tests -----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "computer_name": self.computer_name,
            "is_up": self.is_up,
            "clock": self.clock.now(),
            "boot_time_filetime": self.boot_time_filetime,
            "services": {
                s.name: {"start_mode": s.start_mode, "state": s.state, "process_id": s.process_id}
                for s in self.scm.all()
            },
            "processes": self.processes.snapshot_dict(),
            "winmgmt": {"start_mode": self.scm.get("Winmgmt").start_mode, "state": self.scm.get("Winmgmt").state},
            "network": self.net.snapshot(),
            "tasks": self.tasks.snapshot(),
            "sql": self.sql.snapshot(),
            "files": self.fs.snapshot(),
            "registry": self.registry.snapshot(),
            "faults": self.faults.snapshot(),
            "counters": {
                "winrm_commands": self.counters.winrm_commands,
                "bytes_in": self.counters.bytes_in,
                "bytes_out": self.counters.bytes_out,
            },
            "events": [list(e) for e in self.events],
        }
