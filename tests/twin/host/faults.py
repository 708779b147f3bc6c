"""Fault injection: parsed and validated from a scenario's `faults:` section or set through the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import WIN32_MESSAGES, ScenarioError
from .validate import expect_bool, expect_int, expect_keys, expect_list, expect_map, expect_one_of, expect_str

STOP_FAULTS = ("stuck", "slow")


@dataclass
class ServiceFault:
    stop: str | None = None  # 'stuck': never leaves STOP_PENDING; 'slow': STOP_PENDING for `seconds`
    seconds: float | None = None
    # Tamper protection (EDR / antivirus agents): OpenService with the rights to change or stop it, and
    # ChangeServiceConfig / ControlService, answer ERROR_ACCESS_DENIED (5), even to an administrator.
    protected: bool = False
    # QueryServiceConfig answers ERROR_ACCESS_DENIED (5); the executor reads the registry instead.
    config_unreadable: bool = False
    # StartService succeeds, then the service stops while starting with this Win32 exit code (e.g. 1067).
    start_exit_code: int | None = None


EVENT_ACTIONS = ("start", "start_slow", "stop", "set_mode")
EVENT_MODES = ("auto", "delayed", "manual", "disabled")


@dataclass
class Event:
    """Something that happens to a service by itself on a busy server (a recovery action, the component
    manager, another tool or operator), at a chosen moment: before the N-th WinRM command runs (so between a
    module's gather and its apply), or after the K-th operation of an apply. Fires once."""

    service: str
    action: str  # start | stop | set_mode
    at_command: int | None = None
    after_op: int | None = None
    after_op_for: str | None = None  # after the apply's operation on this service (or process) name
    at_module: str | None = None  # before the first command that runs this (Counters.ran label) runs
    start_mode: str | None = None  # for set_mode
    seconds: int | None = None  # for start_slow: START_PENDING this long, then running

    def as_dict(self) -> dict[str, Any]:
        return {"service": self.service, "do": self.action, "at_command": self.at_command,
                "after_op": self.after_op, "after_op_for": self.after_op_for, "at_module": self.at_module,
                "start_mode": self.start_mode,
                "seconds": self.seconds}


MODULE_FAULTS = ("drop", "lose_output", "disk_full", "lease_ends")


@dataclass
class ModuleFault:
    """A fault tied to what a command runs rather than to its number (the fault matrix of issue 17 puts each fault
    at each step without counting commands): the `occurrence`-th command that runs `module` (a label as
    Counters.ran records it, "configmgr.sql_upgrade.net_isolate:apply") meets it.

    drop: the connection resets before that command runs, and the host stays unreachable (the network is gone
    until a test brings it back); lose_output: the command runs to the end and the connection resets before its
    output is read (once); disk_full: from that command on, every file write fails with ERROR_DISK_FULL (112);
    lease_ends: the host's clock moves to the next scheduled task's time trigger (the watchdog's lease or probation)
    and the task runs, just before that command (a new connection slower than the probation)."""

    module: str
    action: str
    occurrence: int = 1
    seen: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"module": self.module, "do": self.action, "occurrence": self.occurrence}


@dataclass
class Faults:
    services: dict[str, ServiceFault] = field(default_factory=dict)  # key: lower-case service name
    drop_after_commands: int | None = None
    # The N-th WinRM command runs to the end, then the connection resets before its output is read (the
    # network blinks mid-task): the host is changed, the controller never hears how. Once; later requests work.
    lose_output_of_command: int | None = None
    setup_exit_code: int | None = None
    # Setup's engine package writes nothing (Detail.txt, its MSI log) for this many seconds, then goes on: a hang
    # that ends (an MSI waiting on a file in use). Setup is never killed for it.
    setup_stall_seconds: int | None = None
    reboot_hang: bool = False
    unreachable: bool = False
    disk_full: bool = False  # every file write fails with ERROR_DISK_FULL (112)
    events: list[Event] = field(default_factory=list)
    at_module: list[ModuleFault] = field(default_factory=list)

    def module_fault(self, label: str) -> str | None:
        """The fault due for a command that runs `label` now (each fires once), or None."""
        for fault in self.at_module:
            if fault.module.lower() == label.lower():
                fault.seen += 1
                if fault.seen == fault.occurrence:
                    self.at_module.remove(fault)
                    return fault.action
        return None

    def due(self, *, at_command: int | None = None, after_op: int | None = None,
            after_op_for: str | None = None, at_module: str | None = None) -> list[Event]:
        """The events due at this moment, removed from the list (each fires once)."""
        now = [e for e in self.events if (at_command is not None and e.at_command == at_command)
               or (after_op is not None and e.after_op == after_op)
               or (after_op_for is not None and (e.after_op_for or "").lower() == after_op_for.lower())
               or (at_module is not None and (e.at_module or "").lower() == at_module.lower())]
        self.events = [e for e in self.events if e not in now]
        return now

    def update(self, section: Any, path: str = "faults") -> None:
        """Merge a `faults:` section (same shape as the scenario file's); validates first."""
        parsed = parse_faults(section, path)
        self.services.update(parsed.services)
        if parsed.drop_after_commands is not None:
            self.drop_after_commands = parsed.drop_after_commands
        if parsed.lose_output_of_command is not None:
            self.lose_output_of_command = parsed.lose_output_of_command
        if parsed.setup_exit_code is not None:
            self.setup_exit_code = parsed.setup_exit_code
        if parsed.setup_stall_seconds is not None:
            self.setup_stall_seconds = parsed.setup_stall_seconds
        self.events.extend(parsed.events)
        self.at_module.extend(parsed.at_module)
        self.disk_full = self.disk_full or parsed.disk_full
        self.reboot_hang = self.reboot_hang or parsed.reboot_hang
        self.unreachable = self.unreachable or parsed.unreachable

    def snapshot(self) -> dict[str, Any]:
        return {
            "services": {k: {"stop": v.stop, "seconds": v.seconds, "protected": v.protected,
                             "config_unreadable": v.config_unreadable, "start_exit_code": v.start_exit_code}
                         for k, v in sorted(self.services.items())},
            "connection": {"drop_after_commands": self.drop_after_commands,
                           "lose_output_of_command": self.lose_output_of_command},
            "setup": {"exit_code": self.setup_exit_code, "stall_seconds": self.setup_stall_seconds},
            "reboot": {"hang": self.reboot_hang},
            "unreachable": self.unreachable,
            "events": [e.as_dict() for e in self.events],
            "at_module": [f.as_dict() for f in self.at_module],
            "disk": {"full": self.disk_full},
        }


def parse_faults(section: Any, path: str = "faults", service_names: set[str] | None = None) -> Faults:
    faults = Faults()
    if section is None:
        return faults
    data = expect_map(section, path)
    expect_keys(data, ("services", "connection", "setup", "reboot", "unreachable", "events", "disk", "at_module"),
                path)
    for name, spec in expect_map(data.get("services") or {}, f"{path}.services").items():
        spath = f"{path}.services.{name}"
        if service_names is not None and str(name).lower() not in service_names:
            raise ScenarioError(spath, f"no service named {name!r} on this host")
        spec = expect_map(spec, spath)
        expect_keys(spec, ("stop", "seconds", "protected", "config_unreadable", "start_exit_code"), spath)
        protected = expect_bool(spec.get("protected", False), f"{spath}.protected")
        unreadable = expect_bool(spec.get("config_unreadable", False), f"{spath}.config_unreadable")
        start_code = None
        if "start_exit_code" in spec:
            start_code = expect_int(spec["start_exit_code"], f"{spath}.start_exit_code", minimum=1)
            if start_code not in WIN32_MESSAGES:
                raise ScenarioError(f"{spath}.start_exit_code", f"{start_code} is not a Win32 error the model knows "
                                    f"({', '.join(map(str, sorted(WIN32_MESSAGES)))})")
        if "stop" not in spec and not (protected or unreadable or start_code):
            raise ScenarioError(spath, "give stop (stuck | slow), protected, config_unreadable or start_exit_code")
        stop = expect_one_of(spec.get("stop"), STOP_FAULTS, f"{spath}.stop") if "stop" in spec else None
        seconds = None
        if stop == "slow":
            if "seconds" not in spec:
                raise ScenarioError(f"{spath}.seconds", "required when stop is 'slow'")
            seconds = float(expect_int(spec["seconds"], f"{spath}.seconds", minimum=1))
        elif "seconds" in spec:
            raise ScenarioError(f"{spath}.seconds", "only valid when stop is 'slow'")
        faults.services[str(name).lower()] = ServiceFault(stop=stop, seconds=seconds, protected=protected,
                                                          config_unreadable=unreadable, start_exit_code=start_code)
    if "connection" in data:
        conn = expect_map(data["connection"], f"{path}.connection")
        expect_keys(conn, ("drop_after_commands", "lose_output_of_command"), f"{path}.connection")
        if "drop_after_commands" in conn:
            faults.drop_after_commands = expect_int(
                conn.get("drop_after_commands"), f"{path}.connection.drop_after_commands", minimum=0
            )
        if "lose_output_of_command" in conn:
            faults.lose_output_of_command = expect_int(
                conn.get("lose_output_of_command"), f"{path}.connection.lose_output_of_command", minimum=1
            )
    if "setup" in data:
        setup = expect_map(data["setup"], f"{path}.setup")
        expect_keys(setup, ("exit_code", "stall_seconds"), f"{path}.setup")
        if not setup:
            raise ScenarioError(f"{path}.setup", "give exit_code or stall_seconds")
        if "exit_code" in setup:
            code = expect_int(setup.get("exit_code"), f"{path}.setup.exit_code")
            if code in (0, 3010):
                raise ScenarioError(f"{path}.setup.exit_code", f"{code} is a success code, not a fault")
            faults.setup_exit_code = code
        if "stall_seconds" in setup:
            faults.setup_stall_seconds = expect_int(setup["stall_seconds"], f"{path}.setup.stall_seconds", minimum=1)
    if "reboot" in data:
        reboot = expect_map(data["reboot"], f"{path}.reboot")
        expect_keys(reboot, ("hang",), f"{path}.reboot")
        faults.reboot_hang = expect_bool(reboot.get("hang"), f"{path}.reboot.hang")
    if "unreachable" in data:
        faults.unreachable = expect_bool(data["unreachable"], f"{path}.unreachable")
    if "disk" in data:
        disk = expect_map(data["disk"], f"{path}.disk")
        expect_keys(disk, ("full",), f"{path}.disk")
        faults.disk_full = expect_bool(disk.get("full"), f"{path}.disk.full")
    for i, raw in enumerate(expect_list(data.get("events") or [], f"{path}.events")):
        faults.events.append(parse_event(raw, f"{path}.events[{i}]", service_names))
    for i, raw in enumerate(expect_list(data.get("at_module") or [], f"{path}.at_module")):
        item = expect_map(raw, f"{path}.at_module[{i}]")
        expect_keys(item, ("module", "do", "occurrence"), f"{path}.at_module[{i}]", required=("module", "do"))
        faults.at_module.append(ModuleFault(
            expect_str(item["module"], f"{path}.at_module[{i}].module"),
            expect_one_of(item["do"], MODULE_FAULTS, f"{path}.at_module[{i}].do"),
            expect_int(item.get("occurrence", 1), f"{path}.at_module[{i}].occurrence", minimum=1)))
    return faults


def parse_event(raw: Any, path: str, service_names: set[str] | None = None) -> Event:
    """One `events` entry: {service, do: start|stop|set_mode, start_mode (set_mode), at_command | after_op}."""
    item = expect_map(raw, path)
    expect_keys(item, ("service", "do", "start_mode", "seconds", "at_command", "after_op", "after_op_for",
                       "at_module"), path,
                required=("service", "do"))
    service = expect_str(item["service"], f"{path}.service")
    if service_names is not None and service.lower() not in service_names:
        raise ScenarioError(f"{path}.service", f"no service named {service!r} on this host")
    action = expect_one_of(item["do"], EVENT_ACTIONS, f"{path}.do")
    mode = None
    if action == "set_mode":
        mode = expect_one_of(item.get("start_mode"), EVENT_MODES, f"{path}.start_mode")
    elif "start_mode" in item:
        raise ScenarioError(f"{path}.start_mode", "only valid with do: set_mode")
    seconds = None
    if action == "start_slow":
        seconds = expect_int(item.get("seconds"), f"{path}.seconds", minimum=1)
    elif "seconds" in item:
        raise ScenarioError(f"{path}.seconds", "only valid with do: start_slow")
    when = [k for k in ("at_command", "after_op", "after_op_for", "at_module") if k in item]
    if len(when) != 1:
        raise ScenarioError(path, "give exactly one of at_command (before the N-th WinRM command), after_op "
                                  "(after the K-th operation of an apply), after_op_for (after the apply's "
                                  "operation on that name) or at_module (before the first command that runs it)")
    if when[0] == "at_module":
        return Event(service, action, at_module=expect_str(item["at_module"], f"{path}.at_module"),
                     start_mode=mode, seconds=seconds)
    if when[0] == "after_op_for":
        return Event(service, action, after_op_for=expect_str(item["after_op_for"], f"{path}.after_op_for"),
                     start_mode=mode, seconds=seconds)
    moment = expect_int(item[when[0]], f"{path}.{when[0]}", minimum=1)
    return Event(service, action, at_command=moment if when[0] == "at_command" else None,
                 after_op=moment if when[0] == "after_op" else None, start_mode=mode, seconds=seconds)
