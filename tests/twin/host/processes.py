"""The process table: what a Toolhelp32 snapshot of the host shows, and TerminateProcess.

Windows facts modelled here:
- CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS) lists every process with th32ProcessID,
  th32ParentProcessID and szExeFile, without WMI. The parent id is the creator's id *at creation*: it is
  not updated when the parent exits, so it can be stale (and reused by a later process). A reader that
  wants "child of this running process" must also check that the child was created after the parent
  (GetProcessTimes, what Process.StartTime reads); the model keeps creation times for that.
- Service processes are created by services.exe. Stopping a service does NOT end the processes it
  started: the SCM only waits for the service's own process to report SERVICE_STOPPED. Helpers a service
  spawned keep running (unless the service ends them itself: ``exits_with_service``).
- TerminateProcess on a service's own process is a crash to the SCM (recovery actions fire).
  OpenProcess(PROCESS_TERMINATE) on the System process is denied (5); a protected process (PPL) denies
  it too (``end: denied``); a process stuck in a kernel-mode wait accepts TerminateProcess but does not
  exit (``end: stuck``).
- At shutdown every process ends; after the boot services start again and spawn their helpers, but an
  interactive user's processes (the Configuration Manager console) come back only when someone logs on
  and starts them: the model does not bring them back.

Scenario section ``processes:`` (list), one item per non-service process:
    name:               image name without .exe (Process.ProcessName), e.g. Microsoft.ConfigurationManagement
    path:               full path of the image
    parent_service:     the service that spawns it each time the service starts (a child process)
    exits_with_service: the service ends it when it stops (only with parent_service; default false)
    process_id:         id while it runs at load time: required for a user process and for a child of a
                        started service, forbidden for a child of a stopped service (it is not running)
    parent_process_id:  a user process's parent id as Toolhelp reports it (may be stale); default 0
    end:                fault: denied | stuck
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .clock import to_filetime
from .errors import ScenarioError, Unmodelled, WindowsError_

if TYPE_CHECKING:
    from .host import Host
    from .scm import Service

SYSTEM_PID = 4
END_FAULTS = ("denied", "stuck", "exiting")
PROCESS_KEYS = ("name", "path", "parent_service", "exits_with_service", "process_id", "parent_process_id", "end")


@dataclass
class ProcessSpec:
    name: str
    path: str
    parent_service: str | None
    exits_with_service: bool
    process_id: int
    parent_process_id: int
    end: str | None


@dataclass
class Process:
    process_id: int
    name: str
    parent_process_id: int
    created: float  # model clock seconds; FILETIME through created_filetime
    path: str
    kind: str  # system | service | wmi | child | user
    parent_service: str | None = None
    spec: ProcessSpec | None = None
    terminating: bool = False  # TerminateProcess accepted, process not gone (end: stuck)

    @property
    def created_filetime(self) -> int:
        return to_filetime(self.created)


def image_name(path: str) -> str:
    """Process.ProcessName: the image file name without its .exe extension."""
    from .scenario import binary_of  # scenario imports this module

    base = binary_of(path).replace("/", "\\").rsplit("\\", 1)[-1]
    return base[:-4] if base.lower().endswith(".exe") else base


# -- scenario ----------------------------------------------------------------------------------------
def validate_processes(items: Any, services: list[dict[str, Any]]) -> None:
    """Check the `processes:` section against the services (names, states and process ids)."""
    if items is None:
        return
    if not isinstance(items, list):
        raise ScenarioError("processes", f"expected a list, got {type(items).__name__}")
    state = {s["name"].lower(): s["state"] for s in services}
    used = {int(s.get("process_id") or 0): f"service {s['name']}" for s in services if s.get("process_id")}
    used[SYSTEM_PID] = "the System process"
    for i, raw in enumerate(items):
        path = f"processes[{i}]"
        if not isinstance(raw, dict):
            raise ScenarioError(path, f"expected a mapping, got {type(raw).__name__}")
        for key in raw:
            if key not in PROCESS_KEYS:
                raise ScenarioError(f"{path}.{key}", f"unknown key (allowed: {', '.join(PROCESS_KEYS)})")
        for key in ("name", "path"):
            if not isinstance(raw.get(key), str) or not raw[key]:
                raise ScenarioError(f"{path}.{key}", f"{raw.get(key)!r} is not a non-empty string")
        if raw["name"].lower().endswith(".exe") or any(c in raw["name"] for c in "\\/*?"):
            raise ScenarioError(f"{path}.name", f"{raw['name']!r}: give the image name without .exe or path")
        parent = raw.get("parent_service")
        if parent is not None and (not isinstance(parent, str) or parent.lower() not in state):
            raise ScenarioError(f"{path}.parent_service", f"{parent!r} is not a service in this file")
        if "exits_with_service" in raw:
            if not isinstance(raw["exits_with_service"], bool):
                raise ScenarioError(f"{path}.exits_with_service", f"{raw['exits_with_service']!r} is not true or false")
            if parent is None:
                raise ScenarioError(f"{path}.exits_with_service", "only a child process (parent_service) has it")
        if raw.get("end") is not None and raw["end"] not in END_FAULTS:
            raise ScenarioError(f"{path}.end", f"{raw['end']!r} is not one of {', '.join(END_FAULTS)}")
        for key in ("process_id", "parent_process_id"):
            value = raw.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ScenarioError(f"{path}.{key}", f"{value!r} is not a non-negative integer")
        if parent is not None and "parent_process_id" in raw:
            raise ScenarioError(f"{path}.parent_process_id", "a child's parent is its service's process")
        running = parent is None or state[parent.lower()] == "started"
        pid = raw.get("process_id")
        if running and not pid:
            what = "a user process" if parent is None else f"a child of the started service {parent}"
            raise ScenarioError(f"{path}.process_id", f"{what} is running and needs its process id")
        if not running and pid:
            raise ScenarioError(f"{path}.process_id", f"{parent} is stopped, so its child is not running")
        if pid:
            if pid % 4:
                # Windows allocates process ids from a handle table: always multiples of 4.
                raise ScenarioError(f"{path}.process_id", f"{pid} is not a multiple of 4")
            if pid in used:
                raise ScenarioError(f"{path}.process_id", f"{pid} is already the id of {used[pid]}")
            used[pid] = path


def build_specs(items: list[dict[str, Any]] | None) -> list[ProcessSpec]:
    return [
        ProcessSpec(
            name=raw["name"],
            path=raw["path"],
            parent_service=raw.get("parent_service"),
            exits_with_service=raw.get("exits_with_service", False),
            process_id=raw.get("process_id") or 0,
            parent_process_id=raw.get("parent_process_id") or 0,
            end=raw.get("end"),
        )
        for raw in items or []
    ]


# -- the table ---------------------------------------------------------------------------------------
class ProcessTable:
    """Non-service processes are held here; service processes are derived from the SCM."""

    def __init__(self, host: Host, specs: list[ProcessSpec]) -> None:
        self._host = host
        self._specs = specs
        self._extra: dict[int, Process] = {}
        self._service_created: dict[int, float] = {}
        used = {s.process_id for s in host.scm.all()} | {s.process_id for s in specs}
        # services.exe (the SCM): the parent of every service process. Its id is not in the host file
        # (win_service_info does not report it): the lowest free multiple of 4 from 400 on.
        pid = 400
        while pid in used:
            pid += 4
        self.services_exe_pid = pid
        for spec in specs:
            if spec.parent_service is None:
                self._add(spec.process_id, spec, spec.parent_process_id, host.boot_time, "user", None)

    # -- queries ------------------------------------------------------------------------------------
    def pids(self) -> set[int]:
        return set(self._extra) | {SYSTEM_PID, self.services_exe_pid}

    def snapshot(self) -> list[Process]:
        """The Toolhelp32 snapshot, in process id order."""
        now_boot = self._host.boot_time
        procs = [
            Process(SYSTEM_PID, "System", 0, now_boot, "", "system"),
            Process(self.services_exe_pid, "services", 0, now_boot, r"C:\Windows\System32\services.exe", "system"),
        ]
        seen: set[int] = set()
        for svc in self._host.scm.all():
            if svc.alive and svc.process_id and svc.process_id not in seen:
                seen.add(svc.process_id)
                created = self._service_created.get(svc.process_id, now_boot)
                procs.append(
                    Process(svc.process_id, image_name(svc.path), self.services_exe_pid, created, svc.path, "service")
                )
        if self._host.wmiprvse_pid:
            # WmiPrvSE.exe hosts WMI providers (the SMS Provider); DCOM launches it.
            procs.append(
                Process(self._host.wmiprvse_pid, "WmiPrvSE", self.services_exe_pid, now_boot,
                        r"C:\Windows\System32\wbem\WmiPrvSE.exe", "wmi")
            )
        procs.extend(self._extra.values())
        return sorted(procs, key=lambda p: p.process_id)

    def get(self, pid: int) -> Process | None:
        return next((p for p in self.snapshot() if p.process_id == pid), None)

    def by_name(self, name: str) -> list[Process]:
        return [p for p in self.snapshot() if p.name.lower() == name.lower()]

    # -- behaviour ----------------------------------------------------------------------------------
    def terminate(self, pid: int) -> None:
        """TerminateProcess(OpenProcess(PROCESS_TERMINATE, pid))."""
        proc = self.get(pid)
        if proc is None:
            # OpenProcess on an id that does not exist: ERROR_INVALID_PARAMETER (87).
            raise WindowsError_(87, f"process {pid} not found")
        if proc.kind == "system" or (proc.spec is not None and proc.spec.end == "denied"):
            raise WindowsError_(5, f"process {proc.name} ({pid})")
        if proc.kind == "service":
            self._host.scm.kill_process(pid)  # a crash, as the SCM sees it: recovery actions fire
            return
        if proc.kind == "wmi":
            raise Unmodelled("ending WmiPrvSE.exe (DCOM would launch a new one on the next WMI request)")
        if proc.spec is not None and proc.spec.end == "stuck":
            proc.terminating = True  # accepted; the process never leaves its kernel-mode wait
            return
        if proc.spec is not None and proc.spec.end == "exiting":
            # Already on its way out (its parent service just stopped): TerminateProcess answers
            # ERROR_ACCESS_DENIED for a process that is exiting, and a moment later it is gone.
            del self._extra[pid]
            raise WindowsError_(5, f"process {proc.name} ({pid}) is exiting")
        del self._extra[pid]

    def on_service_started(self, svc: Service, loaded: bool) -> None:
        if svc.process_id not in self._service_created:
            self._service_created[svc.process_id] = self._host.boot_time if loaded else self._host.clock.now()
        for spec in self._specs:
            if spec.parent_service is None or spec.parent_service.lower() != svc.name.lower():
                continue
            if loaded:
                self._add(spec.process_id, spec, svc.process_id, self._host.boot_time, "child", svc.name)
            else:
                self._add(self._new_pid(), spec, svc.process_id, self._host.clock.now(), "child", svc.name)

    def on_service_stopped(self, svc: Service, pid: int) -> None:
        """The service's own process is gone; its helpers stay unless the service ends them itself."""
        if pid and not any(s.process_id == pid and s.alive for s in self._host.scm.all()):
            self._service_created.pop(pid, None)
        for proc in list(self._extra.values()):
            if proc.parent_process_id == pid and proc.spec is not None and proc.spec.exits_with_service:
                del self._extra[proc.process_id]

    def spawn(self, name: str, path: str, parent_process_id: int) -> int:
        """CreateProcess of a program that is not a service (setup.exe started by a scheduled task): its id."""
        pid = self._new_pid()
        spec = ProcessSpec(name, path, None, False, pid, parent_process_id, None)
        self._add(pid, spec, parent_process_id, self._host.clock.now(), "user", None)
        return pid

    def exit(self, pid: int) -> None:
        """The process ended by itself (ExitProcess)."""
        self._extra.pop(pid, None)

    def shutdown(self) -> None:
        self._extra.clear()
        self._service_created.clear()

    def _new_pid(self) -> int:
        used = self.pids() | {s.process_id for s in self._host.scm.all()} | {self._host.wmiprvse_pid}
        while True:
            pid = self._host.rng.randrange(1000, 16000) * 4
            if pid not in used:
                return pid

    def _add(self, pid: int, spec: ProcessSpec, ppid: int, created: float, kind: str, parent: str | None) -> None:
        self._extra[pid] = Process(pid, spec.name, ppid, created, spec.path, kind, parent, spec)

    def snapshot_dict(self) -> list[dict[str, Any]]:
        return [
            {"process_id": p.process_id, "name": p.name, "parent_process_id": p.parent_process_id, "kind": p.kind}
            for p in self.snapshot()
        ]
