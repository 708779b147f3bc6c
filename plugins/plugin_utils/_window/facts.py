# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the executors' gather phase reports, parsed into typed facts; anything malformed is refused by name.

Service names on Windows are case-insensitive (the SCM database compares them without case), so every
lookup in this package uses ``casefold()`` while results keep the name as the host spelled it.

Internal to configmgr.sql_upgrade (controller-side, not a public API).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .._action.errors import PlanError

START_MODES = ("auto", "delayed", "manual", "disabled", "boot", "system")
STATES = ("running", "stopped", "start_pending", "stop_pending", "paused", "continue_pending", "pause_pending")
RUNNING_STATES = ("running", "start_pending", "paused", "continue_pending", "pause_pending", "stop_pending")


# --------------------------------------------------------------------------------------------------------
# Facts
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceFact:
    """One service as the executor's gather phase reports it."""

    name: str
    start_mode: str
    state: str
    dependencies: tuple[str, ...] = ()
    process_id: int = 0
    path: str = ""
    display_name: str = ""
    product_name: str = ""
    company_name: str = ""
    #: The file whose version resource was read (the binary, or a svchost service's ServiceDll).
    binary: str = ""
    #: The service could be opened with the rights to reconfigure and stop it (tamper-protected security
    #: agents refuse them with ERROR_ACCESS_DENIED, 5, even to an administrator).
    can_change: bool = True
    #: A running service accepts SERVICE_CONTROL_STOP (one that does not answers 1052).
    accepts_stop: bool = True
    #: QueryServiceConfig worked; otherwise the executor read the configuration from the registry.
    config_readable: bool = True

    @property
    def is_running(self) -> bool:
        return self.state in RUNNING_STATES

    def change_limit(self) -> str | None:
        """Why this service cannot be stopped and disabled by the module, or None when it can."""
        if not self.config_readable:
            return "its configuration cannot be read (QueryServiceConfig: access denied), so it cannot be changed"
        if not self.can_change:
            return ("it refuses the rights to stop and reconfigure it (access denied), as tamper-protected "
                    "security agents do")
        if self.is_running and not self.accepts_stop:
            return "it does not accept a stop control (the SCM would answer ERROR_INVALID_SERVICE_CONTROL, 1052)"
        return None


def _flag(name: str, raw: Mapping[str, Any], key: str) -> bool:
    """A capability flag of the gather (absent: true, as before the executor reported it)."""
    value = raw.get(key, True)
    if not isinstance(value, bool):
        raise PlanError(f"service {name!r} has a malformed {key} {value!r}")
    return value


def facts_from_gather(services: Iterable[Mapping[str, Any]]) -> list[ServiceFact]:
    """Turn the executor's ``services`` list into facts, refusing anything malformed by name."""
    facts: list[ServiceFact] = []
    seen: dict[str, str] = {}
    for raw in services:
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise PlanError(f"gathered service without a name: {raw!r}")
        if name.casefold() in seen:
            raise PlanError(f"service {name!r} reported twice by the host")
        seen[name.casefold()] = name
        mode = raw.get("start_mode")
        state = raw.get("state")
        if mode not in START_MODES:
            raise PlanError(f"service {name!r} has unknown start mode {mode!r}")
        if state not in STATES:
            raise PlanError(f"service {name!r} has unknown state {state!r}")
        deps = raw.get("dependencies") or []
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            raise PlanError(f"service {name!r} has malformed dependencies {deps!r}")
        facts.append(
            ServiceFact(
                name=name,
                start_mode=mode,
                state=state,
                dependencies=tuple(deps),
                process_id=int(raw.get("process_id") or 0),
                path=str(raw.get("path") or ""),
                display_name=str(raw.get("display_name") or ""),
                product_name=str(raw.get("product_name") or ""),
                company_name=str(raw.get("company_name") or ""),
                binary=str(raw.get("binary") or ""),
                can_change=_flag(name, raw, "can_change"),
                accepts_stop=_flag(name, raw, "accepts_stop"),
                config_readable=_flag(name, raw, "config_readable"),
            )
        )
    return facts


@dataclass(frozen=True)
class ProcessFact:
    """One process of the executor's Toolhelp32 snapshot (CreateToolhelp32Snapshot, no WMI).

    ``parent_process_id`` is the creator's id at creation time (Windows never updates it, so it can be
    stale); ``created`` is the creation time as a FILETIME (0 when the executor could not read it)."""

    name: str
    process_id: int
    parent_process_id: int = 0
    created: int = 0


def processes_from_gather(processes: Iterable[Mapping[str, Any]]) -> list[ProcessFact]:
    facts: list[ProcessFact] = []
    for raw in processes:
        name = raw.get("name")
        pid = raw.get("process_id")
        if not isinstance(name, str) or not isinstance(pid, int) or isinstance(pid, bool) or pid < 0:
            raise PlanError(f"gathered process is malformed: {raw!r}")
        facts.append(
            ProcessFact(name, pid, int(raw.get("parent_process_id") or 0), int(raw.get("created") or 0))
        )
    return facts
