"""Fault injection: parsed and validated from a scenario's `faults:` section or set through the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import ScenarioError
from .validate import expect_bool, expect_int, expect_keys, expect_map, expect_one_of

STOP_FAULTS = ("stuck", "slow")


@dataclass
class ServiceFault:
    stop: str  # 'stuck': never leaves STOP_PENDING; 'slow': STOP_PENDING for `seconds`
    seconds: float | None = None


@dataclass
class Faults:
    services: dict[str, ServiceFault] = field(default_factory=dict)  # key: lower-case service name
    drop_after_commands: int | None = None
    # The N-th WinRM command runs to the end, then the connection resets before its output is read (the
    # network blinks mid-task): the host is changed, the controller never hears how. Once; later requests work.
    lose_output_of_command: int | None = None
    setup_exit_code: int | None = None
    reboot_hang: bool = False
    unreachable: bool = False

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
        self.reboot_hang = self.reboot_hang or parsed.reboot_hang
        self.unreachable = self.unreachable or parsed.unreachable

    def snapshot(self) -> dict[str, Any]:
        return {
            "services": {k: {"stop": v.stop, "seconds": v.seconds} for k, v in sorted(self.services.items())},
            "connection": {"drop_after_commands": self.drop_after_commands,
                           "lose_output_of_command": self.lose_output_of_command},
            "setup": {"exit_code": self.setup_exit_code},
            "reboot": {"hang": self.reboot_hang},
            "unreachable": self.unreachable,
        }


def parse_faults(section: Any, path: str = "faults", service_names: set[str] | None = None) -> Faults:
    faults = Faults()
    if section is None:
        return faults
    data = expect_map(section, path)
    expect_keys(data, ("services", "connection", "setup", "reboot", "unreachable"), path)
    for name, spec in expect_map(data.get("services") or {}, f"{path}.services").items():
        spath = f"{path}.services.{name}"
        if service_names is not None and str(name).lower() not in service_names:
            raise ScenarioError(spath, f"no service named {name!r} on this host")
        spec = expect_map(spec, spath)
        expect_keys(spec, ("stop", "seconds"), spath)
        stop = expect_one_of(spec.get("stop"), STOP_FAULTS, f"{spath}.stop")
        seconds = None
        if stop == "slow":
            if "seconds" not in spec:
                raise ScenarioError(f"{spath}.seconds", "required when stop is 'slow'")
            seconds = float(expect_int(spec["seconds"], f"{spath}.seconds", minimum=1))
        elif "seconds" in spec:
            raise ScenarioError(f"{spath}.seconds", "only valid when stop is 'slow'")
        faults.services[str(name).lower()] = ServiceFault(stop=stop, seconds=seconds)
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
        expect_keys(setup, ("exit_code",), f"{path}.setup")
        code = expect_int(setup.get("exit_code"), f"{path}.setup.exit_code")
        if code in (0, 3010):
            raise ScenarioError(f"{path}.setup.exit_code", f"{code} is a success code, not a fault")
        faults.setup_exit_code = code
    if "reboot" in data:
        reboot = expect_map(data["reboot"], f"{path}.reboot")
        expect_keys(reboot, ("hang",), f"{path}.reboot")
        faults.reboot_hang = expect_bool(reboot.get("hang"), f"{path}.reboot.hang")
    if "unreachable" in data:
        faults.unreachable = expect_bool(data["unreachable"], f"{path}.unreachable")
    return faults
