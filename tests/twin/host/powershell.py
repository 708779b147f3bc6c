"""What Windows PowerShell 5.1 lets a script run as SYSTEM from a scheduled task do, on this host.

Microsoft Learn, "about_Execution_Policies": the execution policy of the MachinePolicy scope is set by Group Policy
("Turn on Script Execution") and takes precedence over every other scope, the Process scope that
`powershell.exe -ExecutionPolicy Bypass` sets included. Under AllSigned a script that is not signed does not run;
under Restricted no script runs; RemoteSigned, Unrestricted and Bypass run a local unsigned script (`-File` on a
script written locally is not from the internet). "about_Language_Modes": where AppLocker or Windows Defender
Application Control enforce script rules, a script the policy does not allow runs in ConstrainedLanguage, where
`New-Object -ComObject` is refused ("Cannot create type. Only core types are supported in this language mode.").
The collection's watchdog.ps1 and its readiness probe are local unsigned scripts run by a SYSTEM task with
`-ExecutionPolicy Bypass -File`, so both follow these rules in the twin (emulation/configmgr.py).
"""

from __future__ import annotations

from dataclasses import dataclass

EXECUTION_POLICIES = ("AllSigned", "Bypass", "RemoteSigned", "Restricted", "Unrestricted", "Undefined")
LANGUAGE_MODES = ("FullLanguage", "ConstrainedLanguage")
#: The MachinePolicy values under which a local unsigned script does not run, whatever -ExecutionPolicy says.
BLOCKING_POLICIES = ("AllSigned", "Restricted")
CLM_COM_ERROR = "Cannot create type. Only core types are supported in this language mode."


@dataclass(frozen=True)
class PowerShellPolicy:
    """host.powershell: the Group Policy execution policy (None: not set, 'Undefined'), and the language mode a
    SYSTEM task's local script gets (AppLocker / WDAC)."""

    machine_policy: str | None = None
    system_language_mode: str = "FullLanguage"

    def script_blocked(self) -> str | None:
        """Why a local unsigned script run with -ExecutionPolicy Bypass does not run, or None."""
        if self.machine_policy in BLOCKING_POLICIES:
            if self.machine_policy == "Restricted":
                return "running scripts is disabled on this system (execution policy Restricted, set by Group Policy)"
            return "the script is not digitally signed (execution policy AllSigned, set by Group Policy)"
        return None

    def com_refused(self) -> str | None:
        return CLM_COM_ERROR if self.system_language_mode == "ConstrainedLanguage" else None
