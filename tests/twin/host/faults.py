"""Fault injection: parsed and validated from a scenario's `faults:` section or set through the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import ScenarioError

STOP_FAULTS = ("stuck", "slow")


@dataclass
class ServiceFault:
    stop: str  # 'stuck': never leaves STOP_PENDING; 'slow': STOP_PENDING for `seconds`
    seconds: float | None = None


@dataclass
class Faults:
    services: dict[str, ServiceFault] = field(default_factory=dict)  # key: lower-case service name
    drop_after_commands: int | None = None
    setup_exit_code: int | None = None
    reboot_hang: bool = False
    unreachable: bool = False

    def update(self, section: Any, path: str = "faults") -> None:
        """Merge a `faults:` section (same shape as the scenario file's); validates first."""
        parsed = parse_faults(section, path)
        self.services.update(parsed.services)
        if parsed.drop_after_commands is not None:
            self.drop_after_commands = parsed.drop_after_commands
        if parsed.setup_exit_code is not None:
            self.setup_exit_code = parsed.setup_exit_code
        self.reboot_hang = self.reboot_hang or parsed.reboot_hang
        self.unreachable = self.unreachable or parsed.unreachable

    def snapshot(self) -> dict[str, Any]:
        return {
            "services": {k: {"stop": v.stop, "seconds": v.seconds} for k, v in sorted(self.services.items())},
            "connection": {"drop_after_commands": self.drop_after_commands},
            "setup": {"exit_code": self.setup_exit_code},
            "reboot": {"hang": self.reboot_hang},
            "unreachable": self.unreachable,
        }


def _mapping(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ScenarioError(path, f"expected a mapping, got {type(value).__name__}")
    return value


def _unknown(value: dict[str, Any], allowed: tuple[str, ...], path: str) -> None:
    for key in value:
        if key not in allowed:
            raise ScenarioError(f"{path}.{key}", f"unknown key (allowed: {', '.join(allowed)})")


def _int(value: Any, path: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioError(path, f"{value!r} is not an integer")
    if minimum is not None and value < minimum:
        raise ScenarioError(path, f"{value} is less than {minimum}")
    return value


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise ScenarioError(path, f"{value!r} is not true or false")
    return value


def parse_faults(section: Any, path: str = "faults", service_names: set[str] | None = None) -> Faults:
    faults = Faults()
    if section is None:
        return faults
    data = _mapping(section, path)
    _unknown(data, ("services", "connection", "setup", "reboot", "unreachable"), path)
    for name, spec in _mapping(data.get("services") or {}, f"{path}.services").items():
        spath = f"{path}.services.{name}"
        if service_names is not None and str(name).lower() not in service_names:
            raise ScenarioError(spath, f"no service named {name!r} on this host")
        spec = _mapping(spec, spath)
        _unknown(spec, ("stop", "seconds"), spath)
        stop = spec.get("stop")
        if stop not in STOP_FAULTS:
            raise ScenarioError(f"{spath}.stop", f"{stop!r} is not one of {', '.join(STOP_FAULTS)}")
        seconds = None
        if stop == "slow":
            if "seconds" not in spec:
                raise ScenarioError(f"{spath}.seconds", "required when stop is 'slow'")
            seconds = float(_int(spec["seconds"], f"{spath}.seconds", minimum=1))
        elif "seconds" in spec:
            raise ScenarioError(f"{spath}.seconds", "only valid when stop is 'slow'")
        faults.services[str(name).lower()] = ServiceFault(stop=stop, seconds=seconds)
    if "connection" in data:
        conn = _mapping(data["connection"], f"{path}.connection")
        _unknown(conn, ("drop_after_commands",), f"{path}.connection")
        faults.drop_after_commands = _int(
            conn.get("drop_after_commands"), f"{path}.connection.drop_after_commands", minimum=0
        )
    if "setup" in data:
        setup = _mapping(data["setup"], f"{path}.setup")
        _unknown(setup, ("exit_code",), f"{path}.setup")
        code = _int(setup.get("exit_code"), f"{path}.setup.exit_code")
        if code in (0, 3010):
            raise ScenarioError(f"{path}.setup.exit_code", f"{code} is a success code, not a fault")
        faults.setup_exit_code = code
    if "reboot" in data:
        reboot = _mapping(data["reboot"], f"{path}.reboot")
        _unknown(reboot, ("hang",), f"{path}.reboot")
        faults.reboot_hang = _bool(reboot.get("hang"), f"{path}.reboot.hang")
    if "unreachable" in data:
        faults.unreachable = _bool(data["unreachable"], f"{path}.unreachable")
    return faults
