"""Environment variables of the WinRM session on a twin host, and %VAR% expansion as .NET does it.

[Environment]::ExpandEnvironmentVariables replaces %NAME% for defined names (case-insensitive) and leaves
unknown ones as they are; the twin refuses unknown names instead, so a path it cannot resolve is named.
"""

from __future__ import annotations

import re

from twin.emulation import UnknownCommand
from twin.host import Host

# The session of the built-in Administrator on Windows Server (what a WinRM logon gets).
_DEFAULT_ENV = {
    "SYSTEMROOT": "C:\\Windows",
    "WINDIR": "C:\\Windows",
    "SYSTEMDRIVE": "C:",
    "PROGRAMDATA": "C:\\ProgramData",
    "ALLUSERSPROFILE": "C:\\ProgramData",
    "PROGRAMFILES": "C:\\Program Files",
    "PROGRAMFILES(X86)": "C:\\Program Files (x86)",
    "USERPROFILE": "C:\\Users\\Administrator",
    "APPDATA": "C:\\Users\\Administrator\\AppData\\Roaming",
    "LOCALAPPDATA": "C:\\Users\\Administrator\\AppData\\Local",
    "TEMP": "C:\\Users\\Administrator\\AppData\\Local\\Temp",
    "TMP": "C:\\Users\\Administrator\\AppData\\Local\\Temp",
}


def session_env(host: Host) -> dict[str, str]:
    env = dict(_DEFAULT_ENV)
    extra = getattr(host, "env", None)
    if isinstance(extra, dict):
        env.update({str(k).upper(): str(v) for k, v in extra.items()})
    return env


def expand_env(host: Host, text: str) -> str:
    env = session_env(host)

    def sub(m: re.Match[str]) -> str:
        name = m.group(1).upper()
        if name not in env:
            raise UnknownCommand(f"environment variable %{m.group(1)}% is not modelled by the twin")
        return env[name]

    return re.sub(r"%([^%\\/]+)%", sub, text)
