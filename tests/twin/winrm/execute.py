"""Run one decoded WinRM command on a twin host: module, file transfer, temp dir, or raw script.

Returns (exit code, stdout, stderr) as powershell.exe would produce them. Anything not modelled ends with a
non-zero exit code and a message naming it (for modules, in Ansible.Basic's ``{"failed": true, "msg"}``
shape so that Ansible prints it), never with a silent success.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import sys
import traceback
from typing import Any

from twin.emulation import UnknownCommand, run_module, run_raw
from twin.emulation.paths import expand_env
from twin.host import Host, Unmodelled, WindowsError_, WmiUnavailable
from twin.winrm.payload import (
    Bootstrap,
    PayloadError,
    decode_bootstrap_input,
    decode_command_line,
    is_bootstrap,
    module_fqcn,
    split_type_pipeline,
)

Result = tuple[int, bytes, bytes]


class ConnectionFault(Exception):
    """A fault at_module (faults.py, ModuleFault) resets the connection: the front end drops the request."""


# Exec-wrapper actions Ansible may put before module_wrapper.ps1 that the twin does not model. Each is named
# when refused, so a test cannot pass by the twin ignoring it.
_UNMODELLED_WRAPPERS = {
    "become_wrapper.ps1": "become (runas) is not modelled by the twin",
    # ansible-core 2.19 async_wrapper.ps1 spawns the async process directly when the session's job object
    # allows breakaway, and otherwise through WMI (Invoke-CimMethod Win32_Process Create): whether it needs WMI
    # depends on the job object WinRM / PSRP run it in, which the twin does not model, so async is refused.
    "async_wrapper.ps1": "async is not modelled by the twin (it may need WMI Win32_Process.Create)",
    "async_watchdog.ps1": "async is not modelled by the twin",
    "coverage_wrapper.ps1": "PowerShell coverage collection is not modelled by the twin",
}


def _json(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode("utf-8")


def _failed(msg: str) -> Result:
    return 1, _json({"failed": True, "msg": msg, "changed": False}), b""


def execute(host: Host, command: str, arguments: str, stdin: bytes) -> Result:
    try:
        return _execute(host, command, arguments, stdin)
    except ConnectionFault:
        raise
    except Unmodelled as exc:
        # The host model met something it does not model (CONTRACT.md): a failed task naming it.
        return _failed(f"twin: not modelled by the host model: {exc}")
    except Exception as exc:  # noqa: BLE001  (a bug in the twin must fail the task loudly, never hang it)
        trace = traceback.format_exc()
        print(f"twin: internal error on {host.name}:\n{trace}", file=sys.stderr, flush=True)
        return _failed(f"twin: internal error on {host.name}: {type(exc).__name__}: {exc}")


def execute_script(host: Host, script: str, stdin: bytes) -> Result:
    """Run a decoded script with its input, as the psrp plugin sends it (the same failures as execute()).

    Without pipelining the psrp plugin runs the shell's ``type PATH | PowerShell ... -EncodedCommand B64`` line
    itself as a script in the runspace (PowerShell's ``type`` is Get-Content): the same as cmd.exe's pipe."""
    try:
        if script.startswith("type ") and not stdin:
            return _execute(host, "type", script[len("type "):], b"")
        return _script(host, script, stdin, psrp=True)
    except ConnectionFault:
        raise
    except Unmodelled as exc:
        return _failed(f"twin: not modelled by the host model: {exc}")
    except Exception as exc:  # noqa: BLE001  (a bug in the twin must fail the task loudly, never hang it)
        trace = traceback.format_exc()
        print(f"twin: internal error on {host.name}:\n{trace}", file=sys.stderr, flush=True)
        return _failed(f"twin: internal error on {host.name}: {type(exc).__name__}: {exc}")


def _execute(host: Host, command: str, arguments: str, stdin: bytes) -> Result:
    if command.lower() == "type":
        # No pipelining: cmd.exe's `type` feeds the put_file'd module input to the bootstrap wrapper.
        try:
            path, command, arguments = split_type_pipeline(arguments)
        except PayloadError as exc:
            return 1, b"", f"twin: {exc}\r\n".encode()
        if not host.fs.exists(path) or host.fs.is_dir(path):
            return 1, b"", b"The system cannot find the file specified.\r\n"
        stdin = host.fs.read(path)
    try:
        script = decode_command_line(command, arguments)
    except PayloadError as exc:
        return 1, b"", f"twin: {exc}\r\n".encode()
    return _script(host, script, stdin)


def _script(host: Host, script: str, stdin: bytes, psrp: bool = False) -> Result:
    if not is_bootstrap(script):
        host.counters.ran.append("raw")
        fault = _module_fault(host, "raw")
        if stdin:
            return 1, b"", b"twin: a raw PowerShell script with stdin input is not modelled\r\n"
        try:
            rc, out, err = run_raw(host, script)
        except UnknownCommand as exc:
            return 1, b"", f"twin: {exc}\r\n".encode()
        if fault == "lose_output":
            raise ConnectionFault("fault at_module lose_output of a raw command (it ran)")
        return rc, out.encode("utf-8"), err.encode("utf-8")
    try:
        boot = decode_bootstrap_input(stdin)
        return _run_actions(host, boot, psrp)
    except (PayloadError, UnknownCommand) as exc:
        return _failed(f"twin: {exc}")
    except WmiUnavailable as exc:
        return _failed(f"{exc}")


def _run_actions(host: Host, boot: Bootstrap, psrp: bool = False) -> Result:
    if not boot.actions:
        raise PayloadError("exec manifest has no actions")
    for action in boot.actions[:-1]:
        if psrp and action.name == "async_wrapper.ps1":
            # Over psrp the pipeline runs in the WinRM plug-in's job object, which does not allow breakaway, so
            # async_wrapper.ps1 starts its process with WMI (Win32_Process.Create): refused while WMI is stopped.
            host.wmi.require("Invoke-CimMethod Win32_Process Create (async_wrapper.ps1 over psrp)")
        reason = _UNMODELLED_WRAPPERS.get(action.name)
        raise PayloadError(f"exec wrapper action {action.name}: {reason or 'not modelled by the twin'}")
    action = boot.actions[-1]
    if action.name != "module_wrapper.ps1":
        host.counters.ran.append(action.name)
    if action.name == "module_wrapper.ps1":
        return _module(host, action.params)
    if action.name == "winrm_put_file.ps1":
        return _put_file(host, str(action.params["Path"]), boot.extra_input)
    if action.name == "psrp_put_file.ps1":
        # The psrp plugin sends each base64 chunk as one input object (lines joined with "\n" here).
        return _put_file(host, str(action.params["Path"]), boot.extra_input.replace(b"\n", b"\r\n"))
    if action.name == "psrp_fetch_file.ps1":
        return _psrp_fetch_file(host, str(action.params["Path"]), int(action.params["BufferSize"]))
    if action.name == "winrm_fetch_file.ps1":
        p = action.params
        return _fetch_file(host, str(p["Path"]), int(p["BufferSize"]), int(p["Offset"]))
    if action.name == "powershell_mkdtemp.ps1":
        return _mkdtemp(host, str(action.params["Directory"]), str(action.params["Name"]))
    if action.name == "powershell_expand_user.ps1":
        return _expand_user(host, str(action.params["Path"]))
    raise PayloadError(f"exec wrapper action {action.name} is not modelled by the twin")


# What ansible-core's module_wrapper.ps1 action receives (executor/powershell/module_manifest.py).
_MODULE_PARAMS = {"Script", "Environment", "Variables", "CSharpModules", "PowerShellModules", "ForModule"}


def _module(host: Host, params: dict[str, Any]) -> Result:
    script = str(params.get("Script", ""))
    unknown = sorted(set(params) - _MODULE_PARAMS)
    if unknown:
        raise PayloadError(f"module wrapper parameter(s) {', '.join(unknown)} for {script} "
                           "are not modelled by the twin")
    if params.get("Environment"):
        # The real wrapper sets these in the module's process environment; the twin has no per-task
        # environment, so a task with `environment:` must not pass as if the keyword were absent.
        raise PayloadError(f"the task environment ({', '.join(sorted(params['Environment']))}) for {script} "
                           "is not modelled by the twin")
    if not params.get("ForModule"):
        raise PayloadError(f"script {script} (Ansible 'script' substyle) is not modelled by the twin")
    variables = params.get("Variables") or []
    args = next((v["Value"] for v in variables if v.get("Name") == "complex_args"), None)
    if not isinstance(args, dict):
        raise PayloadError(f"module {script}: no complex_args variable in the manifest")
    fqcn = module_fqcn(script)
    phase = args.get("_phase")
    label = f"{fqcn}:{phase}" if isinstance(phase, str) else fqcn
    host.counters.ran.append(label)
    fault = _module_fault(host, label)
    # Fault events at_module: what happens on the host by itself just before this command runs.
    host.fire_events(at_module=label)
    result = run_module(host, fqcn, args)
    if fault == "lose_output":
        raise ConnectionFault(f"fault at_module lose_output of {label} (it ran)")
    # Ansible.Basic ExitJson exits 0, FailJson exits 1; both write the JSON result on stdout.
    return (1 if result.get("failed") else 0), _json(result), b""


def _module_fault(host: Host, label: str) -> str | None:
    """A fault at_module due for this command: drop and disk_full act now; lose_output is left to the caller
    (after the command ran)."""
    fault = host.faults.module_fault(label)
    if fault == "drop":
        host.faults.unreachable = True  # the network to the host is gone: this request and every later one reset
        raise ConnectionFault(f"fault at_module drop before {label}")
    if fault == "disk_full":
        host.faults.disk_full = True
    if fault == "lease_ends":
        host.tasks.fire_next_time_trigger()
    return fault


def _put_file(host: Host, path: str, data: bytes) -> Result:
    """winrm_put_file.ps1: each stdin line is base64 of ≤250,000 bytes; answer the SHA1 of what was written."""
    content = bytearray()
    for line in data.split(b"\r\n"):
        if line.strip():
            try:
                content += base64.b64decode(line.strip(), validate=True)
            except binascii.Error as exc:
                raise PayloadError(f"put_file to {path}: a data line is not base64 ({exc})") from exc
    try:
        host.fs.write(path, bytes(content))
    except WindowsError_ as exc:
        return 1, b"", f"{exc}\r\n".encode()
    return 0, _json({"sha1": hashlib.sha1(content).hexdigest()}), b""


def _fetch_file(host: Host, path: str, buffer_size: int, offset: int) -> Result:
    """winrm_fetch_file.ps1: base64 of one chunk, '[DIR]' for a directory, exit 1 if missing."""
    if host.fs.is_dir(path):
        return 0, b"[DIR]\r\n", b""
    if not host.fs.exists(path):
        return 1, b"", f"{path} does not exist\r\n".encode()
    chunk = host.fs.read(path)[offset:offset + buffer_size]
    return 0, (base64.b64encode(chunk) + b"\r\n") if chunk else b"", b""


def _psrp_fetch_file(host: Host, path: str, buffer_size: int) -> Result:
    """psrp_fetch_file.ps1: '[FILE]' then one base64 object per buffer, '[DIR]' for a directory, an error if missing
    (one output line per object; the psrp front end writes each line as one object)."""
    if host.fs.is_dir(path):
        return 0, b"[DIR]\r\n", b""
    if not host.fs.exists(path):
        return 1, b"", f"{path} does not exist\r\n".encode()
    data = host.fs.read(path)
    chunks = [base64.b64encode(data[i:i + buffer_size]) for i in range(0, len(data), buffer_size)]
    return 0, b"\r\n".join([b"[FILE]", *chunks]) + b"\r\n", b""


def _mkdtemp(host: Host, directory: str, name: str) -> Result:
    """powershell_mkdtemp.ps1: New-Item -ItemType Directory under the expanded remote_tmp; prints FullName."""
    base = expand_env(host, directory)
    full = base.rstrip("\\") + "\\" + name
    if host.fs.exists(full):
        return 1, b"", f"An item with the specified name {full} already exists.\r\n".encode()
    host.fs.mkdir(full)
    return 0, (full + "\r\n").encode(), b""


def _expand_user(host: Host, path: str) -> Result:
    """powershell_expand_user.ps1: '~' is the WinRM session's working directory, the user's profile."""
    home = expand_env(host, "%USERPROFILE%")
    if path == "~":
        out = home
    elif path.startswith("~\\") or path.startswith("~/"):
        out = home + "\\" + path[2:]
    else:
        out = path
    return 0, (out + "\r\n").encode(), b""
