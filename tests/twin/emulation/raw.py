"""The raw PowerShell commands Ansible sends without a module: the shell plugin's cleanup, win_reboot's.

Recognised (ansible-core 2.19 plugins/shell/powershell.py; ansible.windows 3.3.0 plugin_utils/_reboot.py):
- ``Remove-Item 'PATH' -Force [-Recurse];``  (ShellModule.remove: the module temp dir)
- ``(Get-CimInstance -ClassName Win32_OperatingSystem -Property LastBootUpTime).LastBootUpTime.ToFileTime()``
  (win_reboot's default boot_time_command: WMI!)
- the reboot script: removes HKLM:\\...\\Winlogon\\AutoLogonChecked, runs ``shutdown.exe /r /t N /c MSG`` and
  prints ``{"stdout", "stderr", "rc"}`` as JSON
- ``C:\\Windows\\System32\\shutdown.exe /a``
- the post-reboot test: ``Get-Item -LiteralPath 'HKLM:\\...\\AutoLogonChecked' -ErrorAction Stop; 'TOKEN'``
Anything else raises UnknownCommand naming the script. Any WMI/CIM use found in a script (pscontract.wmi_rules)
calls host.wmi.require first, so WMI fails in the window whatever the command.
"""

from __future__ import annotations

import json
import re
import weakref
from collections.abc import Callable

from twin.emulation import UnknownCommand
from twin.host import Host, WindowsError_, WmiUnavailable

# The exit-code suffix comes in two forms: ShellModule._encode_script(preserve_rc=True) appends it on its own line
# ("\r\nIf (-not $?) {...}"), ansible.windows' _reboot._execute_command after "; ". Strip exactly the form used,
# never a ';' the script itself ends with (the shell's "Remove-Item '...' -Force;").
_RC_SUFFIX = re.compile(
    r"(?:\s*\n|; )If \(-not \$\?\) \{ If \(Get-Variable LASTEXITCODE -ErrorAction SilentlyContinue\) "
    r"\{ exit \$LASTEXITCODE \} Else \{ exit 1 \} \}\s*$", re.IGNORECASE)
_STRICT = re.compile(r"^\s*Set-StrictMode -Version Latest\s*\n", re.IGNORECASE)

_REMOVE = re.compile(r"^Remove-Item '((?:[^']|'')*)' -Force( -Recurse)?;$")
_BOOT_TIME = re.compile(
    r"^\(Get-CimInstance -ClassName Win32_OperatingSystem -Property LastBootUpTime\)"
    r"\.LastBootUpTime\.ToFileTime\(\)$", re.IGNORECASE)
_REBOOT = re.compile(
    r"^\$ErrorActionPreference = 'Continue'\s*if \(\$(True|False)\) \{\s*Remove-Item -LiteralPath '([^']+)' -Force "
    r"-ErrorAction SilentlyContinue\s*\}\s*\$stdout = \$null\s*\$stderr = \. \{ C:\\Windows\\System32\\shutdown\.exe "
    r"/r /t (\d+) /c (.*?) \| Set-Variable stdout \} 2>&1 \| ForEach-Object ToString\s*ConvertTo-Json -Compress "
    r"-InputObject @\{\s*stdout = \(@\(\$stdout\) -join \"`n\"\)\s*stderr = \(@\(\$stderr\) -join \"`n\"\)\s*"
    r"rc = \$LASTEXITCODE\s*\}$", re.DOTALL | re.IGNORECASE)
_ABORT = re.compile(r"^C:\\Windows\\System32\\shutdown\.exe /a$", re.IGNORECASE)
_TEST = re.compile(r"^Get-Item -LiteralPath '([^']+)' -ErrorAction Stop; '([^']*)'$")

# Pending `shutdown.exe /r /t N`: host -> model time at which shutdown begins. Fired by the front end
# (fire_due_shutdown) when the controller reconnects, after the command that scheduled it has been cleaned up.
# Weak keys: a host that is gone (a test's fleet stopped) takes its pending shutdown with it.
_PENDING: weakref.WeakKeyDictionary[Host, float] = weakref.WeakKeyDictionary()


def normalise(script: str) -> str:
    """Undo ShellModule._encode_script's wrapping: Set-StrictMode line, the exit-code suffix, blank lines."""
    text = _STRICT.sub("", script.replace("\r\n", "\n"))
    text = _RC_SUFFIX.sub("", text.strip())
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def _wmi_uses(script: str) -> list[str]:
    """WMI/CIM commands in a script, from the one forbidden list (pscontract.wmi_rules)."""
    from pscontract.wmi_rules import find_wmi_uses  # noqa: PLC0415  (tree-sitter parser, loaded on first use)

    return [use.command for use in find_wmi_uses(script)]


Outcome = tuple[int, str, str]


def _recognise(host: Host, text: str) -> Callable[[], Outcome]:
    """The action of a recognised script; an unknown script raises UnknownCommand before anything runs."""
    m = _REMOVE.match(text)
    if m:
        path, recurse = m.group(1).replace("''", "'"), bool(m.group(2))
        return lambda: _remove(host, path, recurse)
    if _BOOT_TIME.match(text):
        return lambda: (0, f"{host.boot_time_filetime}\r\n", "")
    m = _REBOOT.match(text)
    if m:
        clear, key, delay = m.group(1).lower() == "true", m.group(2), int(m.group(3))
        return lambda: _reboot(host, clear, key, delay)
    if _ABORT.match(text):
        return lambda: _abort(host)
    m = _TEST.match(text)
    if m:
        key, token = m.group(1), m.group(2)
        if not key.upper().startswith("HKLM:\\"):
            raise UnknownCommand(f"raw Get-Item of {key!r} is not modelled by the twin (only HKLM: registry keys)")
        return lambda: _test(host, key, token)
    first = text.splitlines()[0] if text else "<empty script>"
    raise UnknownCommand(f"raw PowerShell command is not modelled by the twin: {first[:200]!r}")


def run(host: Host, script: str) -> Outcome:
    text = normalise(script)
    action = _recognise(host, text)
    uses = _wmi_uses(text)
    if uses:
        try:
            host.wmi.require(", ".join(uses))
        except WmiUnavailable as exc:
            # Get-CimInstance writes a CimException error record and the script exits 1 (preserve_rc suffix).
            return 1, "", f"{uses[0]} : {exc}\r\n"
    return action()


def _abort(host: Host) -> Outcome:
    if host in _PENDING:
        del _PENDING[host]
        return 0, "", ""
    # shutdown.exe /a without a pending shutdown: ERROR_NO_SHUTDOWN_IN_PROGRESS (1116).
    return 1116, "", "Unable to abort the system shutdown because no shutdown was in progress.(1116)\r\n"


def _remove(host: Host, path: str, recurse: bool) -> tuple[int, str, str]:
    try:
        host.fs.remove(path, recurse=recurse)
    except WindowsError_ as exc:
        return 1, "", f"Remove-Item : {exc}\r\n"
    return 0, "", ""


def _reboot(host: Host, clear_logon_key: bool, key: str, delay: int) -> tuple[int, str, str]:
    if host in _PENDING:
        # ERROR_SHUTDOWN_IS_SCHEDULED (1190): win_reboot then runs shutdown.exe /a and retries.
        msg = "A system shutdown has already been scheduled.(1190)"
        return 0, json.dumps({"stdout": "", "stderr": msg, "rc": 1190}, separators=(",", ":")) + "\r\n", ""
    if clear_logon_key and host.registry.key_exists(key):
        host.registry.delete(key)
    _PENDING[host] = host.clock.now() + delay
    return 0, json.dumps({"stdout": "", "stderr": "", "rc": 0}, separators=(",", ":")) + "\r\n", ""


def fire_due_shutdown(host: Host) -> bool:
    """Called by the front end when a new shell or command arrives: a scheduled shutdown happens now.

    The controller reconnects only after cleaning up the command that scheduled it, so the model clock is
    moved to the shutdown's due time (the `/t N` delay passes while the controller reconnects)."""
    due = _PENDING.pop(host, None)
    if due is None:
        return False
    if host.clock.now() < due:
        host.clock.advance(due - host.clock.now())
    host.reboot()  # the boot recreates LogonUI's AutoLogonChecked key (host model)
    return True


def _test(host: Host, key: str, token: str) -> tuple[int, str, str]:
    if not host.registry.key_exists(key):
        return 1, "", (f"Get-Item : Cannot find path '{key}' because it does not exist.\r\n")
    name = key.split("\\")[-1]
    hive = key.rsplit("\\", 1)[0].replace("HKLM:", "HKEY_LOCAL_MACHINE")
    listing = (f"\r\n\r\n    Hive: {hive}\r\n\r\n\r\n"
               "Name                           Property\r\n"
               f"----                           --------\r\n{name}\r\n\r\n\r\n")
    return 0, f"{listing}{token}\r\n", ""
