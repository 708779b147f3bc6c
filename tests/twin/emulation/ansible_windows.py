"""Emulation of the ansible.windows 3.3.0 modules the collection uses, after their .ps1 executors.

Each handler follows the real module's code path (cited per function) and returns exactly the keys its
RETURN documents. Options the real module has but the twin does not model are refused by name.
"""

from __future__ import annotations

import datetime
import hashlib
import ntpath
from typing import Any

from twin.emulation import ModuleContext, ModuleFailed, Options, UnknownCommand, module
from twin.host import WindowsError_, WmiUnavailable

_EPOCH_FILETIME = 116444736000000000


def _utc(unix_seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(unix_seconds, tz=datetime.UTC)


# --- win_ping ---------------------------------------------------------------------------------------------
@module("ansible.windows.win_ping")
def win_ping(ctx: ModuleContext) -> dict[str, Any]:
    opts = Options(ctx)
    data = opts.take("data", "pong")
    opts.finish()
    if data == "crash":
        # win_ping.ps1: `throw "boom"` → Ansible.Basic's unhandled-exception handler.
        raise ModuleFailed("Unhandled exception while executing module: boom")
    return {"changed": False, "ping": data}


# --- win_service_info -------------------------------------------------------------------------------------
@module("ansible.windows.win_service_info")
def win_service_info(ctx: ModuleContext) -> dict[str, Any]:
    """win_service_info.ps1: Get-Service filtered by exact name, else Get-Service -Name (wildcards allowed)."""
    opts = Options(ctx)
    name = opts.take("name")
    opts.finish()
    scm = ctx.host.scm
    names = scm.names()
    if name is None:
        selected = names
    else:
        exact = [n for n in names if n.lower() == str(name).lower()]
        # Get-Service -Name: wildcards match the service name, not the display name.
        selected = exact or [n for n in names if _wildcard(str(name), n)]
    services = [scm.info(n) for n in sorted(selected, key=str.lower)]
    return {"changed": False, "exists": bool(services), "services": services}


def _wildcard(pattern: str, text: str) -> bool:
    import fnmatch  # noqa: PLC0415

    return fnmatch.fnmatchcase(text.lower(), pattern.lower())


# --- win_service ------------------------------------------------------------------------------------------
# SCM stop wait: Stop-Service waits while STOP_PENDING, writing "Waiting for service ... to stop" every 2 s
# (ServiceController.WaitForStatus with a 2 s timeout in a loop) and never gives up. The twin advances the
# model clock in those 2 s steps and gives up after this many model seconds, failing loudly and naming the
# service, instead of hanging the test (an Ansible task against a real host would hang until its timeout).
STOP_WAIT_LIMIT = 600.0
_STATE_DIFF = {"running": "started", "stopped": "stopped", "start_pending": "start_pending",
               "stop_pending": "stop_pending", "paused": "paused"}
_UNMODELLED_SERVICE_OPTIONS = (
    "dependencies", "description", "display_name", "error_control", "failure_actions",
    "failure_actions_on_non_crash_failure", "failure_command", "failure_reboot_msg", "failure_reset_period_sec",
    "load_order_group", "password", "path", "pre_shutdown_timeout_ms", "required_privileges", "service_type",
    "sid_info", "update_password", "username",
)


def _find_service(ctx: ModuleContext, name: str) -> str | None:
    """Get-ServiceFromName: matches the service name or the display name."""
    for n in ctx.host.scm.names():
        svc = ctx.host.scm.get(n)
        if n.lower() == name.lower() or svc.display_name.lower() == name.lower():
            return n
    return None


def _service_diff(ctx: ModuleContext, name: str) -> dict[str, Any]:
    svc = ctx.host.scm.get(name)
    return {"name": svc.name, "display_name": svc.display_name, "description": svc.description,
            "dependencies": list(svc.dependencies), "path": svc.path, "start_mode": svc.start_mode,
            "state": _STATE_DIFF[svc.state], "username": svc.username, "desktop_interact": False}


def _wait_stopped(ctx: ModuleContext, name: str) -> None:
    waited = 0.0
    while ctx.host.scm.get(name).state == "stop_pending":
        if waited >= STOP_WAIT_LIMIT:
            raise ModuleFailed(
                f"Unhandled exception while executing module: twin: service '{name}' is still STOP_PENDING after "
                f"{int(waited)} s; Stop-Service would wait for it indefinitely (\"Waiting for service '{name}' "
                "to stop...\")")
        ctx.host.tick(2.0)
        waited += 2.0


def _stop(ctx: ModuleContext, name: str, force: bool) -> None:
    """Stop-Service [-Force]: without -Force, refuses when a dependent is running (not only the SCM's 1051)."""
    scm = ctx.host.scm
    if not force:
        running = [d for d in scm.get(name).dependency_of if scm.get(d).state != "stopped"]
        if running:
            svc = scm.get(name)
            raise ModuleFailed(
                f"Unhandled exception while executing module: Cannot stop service '{svc.display_name} ({svc.name})' "
                "because it has dependent services. It can only be stopped if the Force flag is set.")
    scm.stop(name, force=force)
    _wait_stopped(ctx, name)
    if force:
        for dep in scm.get(name).dependency_of:
            _wait_stopped(ctx, dep)


def _start(ctx: ModuleContext, name: str) -> None:
    """Start-Service: the SCM starts dependencies first; a disabled one fails with 1058."""
    try:
        ctx.host.scm.start(name)
    except WindowsError_ as exc:
        svc = ctx.host.scm.get(name)
        raise ModuleFailed(f"Unhandled exception while executing module: Service '{svc.display_name} ({svc.name})' "
                           f"cannot be started due to the following error: Cannot start service {svc.name} on "
                           f"computer '.'. {exc.message}") from exc


@module("ansible.windows.win_service")
def win_service(ctx: ModuleContext) -> dict[str, Any]:
    opts = Options(ctx)
    name = opts.take("name")
    state = opts.take("state")
    start_mode = opts.take("start_mode")
    force = bool(opts.take("force_dependent_services", False))
    opts.take("dependency_action", "set", modelled=lambda v: v == "set")
    opts.take("desktop_interact", False, modelled=lambda v: v is False)
    opts.refuse(*_UNMODELLED_SERVICE_OPTIONS)
    opts.finish()
    if name is None:
        raise ModuleFailed("missing required arguments: name")
    if state not in (None, "started", "stopped", "restarted", "absent", "paused"):
        raise ModuleFailed(f"value of state must be one of: started, stopped, restarted, absent, paused, got: {state}")
    if start_mode not in (None, "auto", "manual", "disabled", "delayed"):
        raise ModuleFailed(f"value of start_mode must be one of: auto, manual, disabled, delayed, got: {start_mode}")
    if state in ("absent", "paused"):
        raise UnknownCommand(f"ansible.windows.win_service: state={state} is not modelled by the twin")

    found = _find_service(ctx, str(name))
    result: dict[str, Any] = {"changed": False, "exists": False}
    if found is None:
        if state is None and start_mode is None:
            return result
        raise ModuleFailed(f"Service '{name}' is not installed, need to set 'path' to create a new service")
    scm = ctx.host.scm
    before = _service_diff(ctx, found)
    svc = scm.get(found)
    if start_mode is not None and svc.start_mode != start_mode:
        result["changed"] = True
        if not ctx.check_mode:
            scm.set_start_mode(found, start_mode)
    current = scm.get(found).state
    if state == "started" and current != "running":
        result["changed"] = True
        if not ctx.check_mode:
            _start(ctx, found)
    elif state == "stopped" and current != "stopped":
        result["changed"] = True
        if not ctx.check_mode:
            _stop(ctx, found, force)
    elif state == "restarted":
        # Restart-Service: stop (with -Force: dependents too) then start; it restarts the dependents it stopped.
        result["changed"] = True
        if not ctx.check_mode:
            stopped_dependents = [d for d in scm.get(found).dependency_of if scm.get(d).state == "running"]
            if current != "stopped":
                _stop(ctx, found, force)
            _start(ctx, found)
            for dep in stopped_dependents:
                _start(ctx, dep)

    after = _service_diff(ctx, found)
    if ctx.check_mode:
        # win_service.ps1 writes the desired values into the after-diff; the result keys come from it.
        if start_mode is not None:
            after["start_mode"] = start_mode
        if state is not None:
            after["state"] = state
    svc = scm.get(found)
    result.update({
        "exists": True,
        "name": after["name"],
        "display_name": after["display_name"],
        "description": after["description"],
        "dependencies": after["dependencies"],
        "path": after["path"],
        "start_mode": after["start_mode"],
        "username": "LocalSystem" if (after["username"] or "").lower() in ("localsystem", "nt authority\\system")
        else after["username"],
        "desktop_interact": False,
        "state": "running" if after["state"] in ("started", "restarted") else after["state"].replace("_", ""),
        "depended_by": list(svc.dependency_of),
        "can_pause_and_continue": "pause_continue" in [c.lower() for c in svc.running_controls],
    })
    if ctx.diff:
        result["diff"] = {"before": before, "after": after}
    return result


def _path_option(opts: Options) -> Any:
    """`path` with its aliases `dest` and `name` (Ansible.Basic copies an alias's value to the option)."""
    values = [opts.take(key) for key in ("path", "dest", "name")]
    return next((v for v in values if v), None)


# --- win_stat ---------------------------------------------------------------------------------------------
def _unix(mtime: float) -> float:
    return float(mtime)


@module("ansible.windows.win_stat")
def win_stat(ctx: ModuleContext) -> dict[str, Any]:
    opts = Options(ctx)
    path = _path_option(opts)
    get_checksum = bool(opts.take("get_checksum", True))
    get_size = bool(opts.take("get_size", True))
    algorithm = opts.take("checksum_algorithm", "sha1")
    # The twin's file system has no symbolic links or junctions, so following them changes nothing (the fetch
    # action asks with follow=True).
    opts.take("follow", False)
    opts.finish()
    if not path:
        raise ModuleFailed("missing required arguments: path")
    if algorithm not in ("md5", "sha1", "sha256", "sha384", "sha512"):
        raise ModuleFailed("value of checksum_algorithm must be one of: md5, sha1, sha256, sha384, sha512, "
                           f"got: {algorithm}")
    fs = ctx.host.fs
    if not fs.exists(path):
        return {"changed": False, "stat": {"exists": False}}
    info = fs.stat(path)
    full = info["path"]
    is_dir = bool(info["is_dir"])
    stat: dict[str, Any] = {
        "exists": True, "attributes": "Directory" if is_dir else "Archive", "isarchive": not is_dir,
        "isdir": is_dir, "ishidden": False, "isjunction": False, "islnk": False, "isreadonly": False,
        "isreg": not is_dir, "isshared": False, "nlink": 1, "hlnk_targets": [],
        "creationtime": _unix(info["mtime"]), "lastaccesstime": _unix(info["mtime"]),
        "lastwritetime": _unix(info["mtime"]), "path": full, "filename": ntpath.basename(full.rstrip("\\")),
        "owner": "BUILTIN\\Administrators",
    }
    if is_dir:
        # win_stat.ps1: Get-CimInstance -ClassName Win32_Share for every directory → needs WMI.
        ctx.host.wmi.require("Get-CimInstance -ClassName Win32_Share (ansible.windows.win_stat)")
        if get_size:
            stat["size"] = _dir_size(ctx, full)
    else:
        stat["extension"] = ntpath.splitext(full)[1]
        if get_checksum:
            stat["checksum"] = hashlib.new(algorithm, fs.read(full)).hexdigest()
        if get_size:
            stat["size"] = int(info["size"])
    return {"changed": False, "stat": stat}


def _dir_size(ctx: ModuleContext, path: str) -> int:
    total = 0
    for child in ctx.host.fs.listdir(path):
        full = path.rstrip("\\") + "\\" + child
        total += _dir_size(ctx, full) if ctx.host.fs.is_dir(full) else int(ctx.host.fs.stat(full)["size"])
    return total


# --- win_file ---------------------------------------------------------------------------------------------
@module("ansible.windows.win_file")
def win_file(ctx: ModuleContext) -> dict[str, Any]:
    """win_file.ps1 (Ansible.ModuleUtils.Legacy). The real module ignores unknown options (Legacy Parse-Args);
    the twin refuses them instead, so that a typo cannot make a test pass."""
    opts = Options(ctx)
    path = _path_option(opts)
    state = opts.take("state")
    opts.refuse("_original_basename")
    opts.finish()
    if not path:
        raise ModuleFailed("Get-AnsibleParam: Missing required argument: path")
    if state not in (None, "absent", "directory", "file", "touch"):
        raise ModuleFailed(f"Get-AnsibleParam: Argument state needs to be one of absent,directory,file,touch "
                           f"but was {state}.")
    fs = ctx.host.fs
    changed = False
    if state == "touch":
        changed = True
        if not ctx.check_mode:
            data = fs.read(path) if fs.exists(path) and not fs.is_dir(path) else b"\r\n"
            if not fs.is_dir(path):
                fs.write(path, data)  # Out-File of $null writes an empty line; touching rewrites mtime
    if fs.exists(path):
        if state == "absent":
            changed = True
            if not ctx.check_mode:
                fs.remove(path, recurse=True)
        elif state == "directory" and not fs.is_dir(path):
            raise ModuleFailed(f"path {path} is not a directory")
        elif state == "file" and fs.is_dir(path):
            raise ModuleFailed(f"path {path} is not a file")
    else:
        if state is None:
            state = "file" if ntpath.basename(path) else "directory"
        if state == "directory":
            changed = True
            if not ctx.check_mode:
                fs.mkdir(path)
        elif state == "file":
            raise ModuleFailed(f"path {path} will not be created")
    return {"changed": changed}


# --- setup ------------------------------------------------------------------------------------------------
# setup.ps1's literal $spec. The module then adds every other option it is given as `type = 'raw'` (so that
# the gather_facts action can pass options it does not know), which pscontract refuses to read as a dynamic
# spec; _setup_spec does the same here, and the handler refuses those extra options by name.
_SETUP_OPTIONS: dict[str, Any] = {
    "_measure_subset": {"type": "bool", "default": False},
    "fact_path": {"type": "path"},
    "gather_subset": {"type": "list", "elements": "str", "default": "all"},
    "gather_timeout": {"type": "int", "default": 10},
}


def _setup_spec(args: dict[str, Any]) -> dict[str, Any]:
    options = dict(_SETUP_OPTIONS)
    for key in args:
        if not key.startswith("_") and key not in options:
            options[key] = {"type": "raw"}
    return {"options": options, "supports_check_mode": True}


@module("ansible.windows.setup", argspec=_setup_spec)
def setup(ctx: ModuleContext) -> dict[str, Any]:
    """setup.ps1 reads Win32_ComputerSystem / Win32_OperatingSystem / Win32_Bios through Get-CimInstance for
    most subsets, so it needs WMI (a stopped winmgmt is demand-started; a disabled one fails the module)."""
    opts = Options(ctx)
    subset = opts.take("gather_subset", ["all"])
    opts.take("gather_timeout", 10)
    opts.take("_measure_subset", False, modelled=lambda v: v is False)
    opts.take("fact_path", modelled=lambda v: False)  # local facts (*.ps1 / *.json run on the host)
    extra = sorted(k for k in ctx.params if k not in _SETUP_OPTIONS and ctx.params[k] is not None)
    if extra:
        raise UnknownCommand(f"ansible.windows.setup: option {', '.join(extra)} (accepted by setup.ps1 as raw and "
                             "ignored) is not modelled by the twin")
    opts.finish()
    subsets = [subset] if isinstance(subset, str) else list(subset)
    if subsets not in (["all"], ["min"], ["!all"], ["!all", "!min"]):
        raise UnknownCommand(f"ansible.windows.setup: gather_subset={subsets} is not modelled by the twin")
    host = ctx.host
    try:
        host.wmi.require("Get-CimInstance -ClassName Win32_OperatingSystem (ansible.windows.setup)")
    except WmiUnavailable as exc:
        # setup.ps1 wraps each subset; a CIM failure surfaces as the module's failure message.
        raise ModuleFailed(f"Unhandled exception while executing module: {exc}") from exc
    boot = host.boot_time_filetime
    facts: dict[str, Any] = {
        "ansible_hostname": host.computer_name.upper()[:15],
        "ansible_nodename": host.computer_name.upper()[:15],
        "ansible_system": "Win32NT",
        "ansible_os_family": "Windows",
        "ansible_os_name": "Microsoft Windows Server 2022 Standard",
        "ansible_distribution": "Microsoft Windows Server 2022 Standard",
        "ansible_distribution_version": "10.0.20348.0",
        # setup.ps1: $win32OS.LastBootUpTime.ToString("u") (universal sortable, "yyyy-MM-dd HH:mm:ssZ").
        "ansible_lastboot": _utc(host.boot_time).strftime("%Y-%m-%d %H:%M:%SZ"),
        "ansible_uptime_seconds": int(host.clock.now() - (boot - _EPOCH_FILETIME) / 10_000_000),
        "module_setup": True,
    }
    return {"changed": False, "ansible_facts": facts}


# --- win_command (ansible.windows 3.3.0 win_command.ps1) ----------------------------------------------------------
# Only what the benchmark's hand-written baseline runs (tests/bench/baseline_kb256202.yml): netsh advfirewall rules
# (KB step 4 and 6) and SQL Server setup.exe from the local media (KB step 5), synchronously, as win_command waits
# for its process. Every other program raises UnknownCommand naming it.

def _c_quote(arg: str) -> str:
    """ConvertTo-EscapedArgument (module_utils/Process.psm1): the C runtime's quoting of one argument."""
    if arg and not any(c in arg for c in ' \t\n\v"'):
        return arg
    out, backslashes = ['"'], 0
    for char in arg:
        if char == "\\":
            backslashes += 1
            continue
        if char == '"':
            out.append("\\" * (backslashes * 2 + 1) + '"')
        else:
            out.append("\\" * backslashes + char)
        backslashes = 0
    out.append("\\" * (backslashes * 2) + '"')
    return "".join(out)


def _win_command_run(ctx: ModuleContext, line: str) -> tuple[int, str, str]:
    from twin.emulation.sql_steps import setup_params, split_command_line  # noqa: PLC0415  (registers sql_steps)

    args = split_command_line(line)
    if not args:
        raise ModuleFailed(f"Failed to run: '{line}': the command line is empty")
    program = ntpath.basename(args[0]).lower()
    if program in ("netsh", "netsh.exe"):
        rc, out = ctx.host.net.netsh(args[1:])
        return rc, out, ""
    if program == "setup.exe" and ntpath.isabs(args[0]):
        # setup.exe /Q waits for the whole upgrade; win_command waits for setup (Start-AnsibleWindowsProcess).
        # A missing setup.exe: CreateProcess fails with ERROR_FILE_NOT_FOUND, win_command's rc is that code.
        try:
            code = ctx.host.sql.run_setup(ntpath.dirname(args[0]), setup_params(args[1:]))
        except WindowsError_ as exc:
            raise ModuleFailed(f"Failed to run: '{line}': {exc}", rc=exc.code, cmd=line) from exc
        return code, "", ""
    raise UnknownCommand(f"ansible.windows.win_command: program {args[0]!r} is not modelled by the twin "
                         "(it models netsh advfirewall rules and SQL Server setup.exe)")


@module("ansible.windows.win_command", supports_check_mode=False)
def win_command(ctx: ModuleContext) -> dict[str, Any]:
    opts = Options(ctx)
    raw = opts.take("_raw_params")
    cmd = opts.take("cmd")
    argv = opts.take("argv")
    opts.refuse("chdir", "creates", "removes", "stdin", "output_encoding_override")
    opts.finish()
    if cmd:
        line = str(cmd)
    elif raw:
        line = str(raw).strip()
    else:
        line = " ".join(_c_quote(str(a)) for a in argv or [])
    start = _utc(ctx.host.clock.now())
    rc, stdout, stderr = _win_command_run(ctx, line)
    end = _utc(ctx.host.clock.now())
    delta = end - start
    hours, rest = divmod(delta.total_seconds(), 3600)
    result = {"changed": True, "cmd": line, "rc": rc, "stdout": stdout, "stderr": stderr,
              "start": start.strftime("%Y-%m-%d %H:%M:%S.%f"), "end": end.strftime("%Y-%m-%d %H:%M:%S.%f"),
              "delta": f"{int(hours)}:{int(rest // 60):02d}:{rest % 60:09.6f}"}
    if rc != 0:
        raise ModuleFailed("non-zero return code", **result)
    return result
