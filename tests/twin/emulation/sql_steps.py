"""Emulation of this collection's executors of KB 256202 steps 1 and 5: sql_media.ps1 and sql_setup.ps1.

Each phase follows its PowerShell (plugins/modules/sql_media.ps1, sql_setup.ps1) against the host model and returns
the same keys (the executor protocol in plugin_utils/_window/protocol.py). Setup itself is the host model's
(twin/host/sql.py, setup_steps): the setup task started by sql_setup runs it on the host's clock, one step each
time the Task Scheduler looks at it, so that the controller's polls see it running, then ended.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
from typing import Any

from twin.emulation import ModuleContext, ModuleFailed, UnknownCommand, module
from twin.emulation.configmgr import (
    gather_lease,
    host_time,
    journal_path,
    journal_trust_problem,
    read_journal,
    write_file,
    write_journal,
)
from twin.host import Host, WindowsError_
from twin.host.clock import parse_iso
from twin.host.errors import Unmodelled
from twin.host.sources import read_iso
from twin.host.sql import BOOTSTRAP_FOLDER, INSTANCE_NAMES_KEY, parse_media, parse_version

MARKER = ".configmgr_sql_upgrade"
SETUP_TASK = "\\configmgr.sql_upgrade\\sql_setup"
SQL_ROOT_KEY = "HKLM\\SOFTWARE\\Microsoft\\Microsoft SQL Server"
PID_LINE = re.compile(r'^\s*PID\s*=\s*"?[0-9A-Za-z]{5}(-[0-9A-Za-z]{5}){4}"?\s*$')


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _join(*parts: str) -> str:
    return "\\".join(p.strip("\\") if i else p.rstrip("\\") for i, p in enumerate(parts))


def media_facts(host: Host, root: str) -> dict[str, Any]:
    """Get-MediaFact: setup.exe's ProductVersion (the twin's setup.exe is its media text) and a PID= line in
    x64\\DefaultSetup.ini. A setup.exe that is not twin media has no version resource the model knows: null."""
    fact: dict[str, Any] = {"setup_version": None, "product_key_in_media": False}
    setup = _join(root, "setup.exe")
    if host.fs.exists(setup) and not host.fs.is_dir(setup):
        try:
            fact["setup_version"] = parse_media(host.fs.read(setup).decode("ascii", "replace"), setup).product_version
        except Unmodelled:
            fact["setup_version"] = None
    ini = _join(root, "x64", "DefaultSetup.ini")
    if host.fs.exists(ini):
        text = host.fs.read(ini).decode("utf-8", "replace")
        fact["product_key_in_media"] = any(PID_LINE.match(line) for line in text.splitlines())
    return fact


def _relative_files(host: Host, root: str) -> list[str]:
    """Get-RelativeFile: every file below root, the marker folder left out."""
    return [f for f in host.fs.walk_files(root) if not f.lower().startswith(MARKER + "\\")]


def _remove(host: Host, path: str) -> None:
    if host.fs.exists(path):
        host.fs.remove(path, recurse=True)


# --- sql_media ------------------------------------------------------------------------------------------------

@module("configmgr.sql_upgrade.sql_media")
def sql_media(ctx: ModuleContext) -> dict[str, Any]:
    host = ctx.host
    params = ctx.params
    dest = str(params["dest"])
    partial = dest + ".partial"
    chunk_dir = _join(partial, "chunks")
    files_dir = _join(partial, "files")
    media_dir = _join(partial, "media")
    phase = params["_phase"]
    if phase == "gather":
        return _media_gather(ctx, dest, chunk_dir)
    if ctx.check_mode:
        raise UnknownCommand("sql_media: a change phase in check mode (the action plugin never sends one)")
    if phase == "discard":
        _remove(host, partial)
        return {"changed": True}
    if phase == "stage":
        return _media_stage(ctx, dest, chunk_dir, files_dir)
    return _media_commit(ctx, dest, partial, files_dir, media_dir)


def _media_gather(ctx: ModuleContext, dest: str, chunk_dir: str) -> dict[str, Any]:
    host = ctx.host
    fs = host.fs
    result: dict[str, Any] = {"changed": False, "dest_exists": fs.is_dir(dest), "dest_empty": True,
                              "marker_text": None, "manifest_text": None, "staged_hashes": {},
                              "setup_version": None, "product_key_in_media": False}
    if result["dest_exists"]:
        result["dest_empty"] = not fs.listdir(dest)
        source = _join(dest, MARKER, "source.json")
        manifest = _join(dest, MARKER, "files.sha256")
        if fs.exists(source):
            result["marker_text"] = fs.read(source).decode("utf-8")
        if fs.exists(manifest):
            result["manifest_text"] = fs.read(manifest).decode("utf-8")
            result["staged_hashes"] = {name: _sha256(fs.read(_join(dest, name)))
                                       for name in _relative_files(host, dest)}
        result.update(media_facts(host, dest))
    chunks: dict[str, Any] = {}
    if fs.is_dir(chunk_dir):
        for name in fs.listdir(chunk_dir):
            if name.lower().endswith(".part"):
                data = fs.read(_join(chunk_dir, name))
                chunks[name] = {"size": len(data), "sha256": _sha256(data)}
    result["partial_chunks"] = chunks
    try:
        result["free_bytes"] = fs.free_bytes(dest)
    except WindowsError_:
        result["free_bytes"] = None
    if ctx.params.get("_prepare") and not ctx.check_mode:
        fs.mkdir(chunk_dir)
        result["changed"] = True
    return result


def _assert_free(host: Host, dest: str, needed: int) -> None:
    free = host.fs.free_bytes(dest)
    if free < needed:
        raise ModuleFailed(f"the volume of {dest} has {free // 1048576} MiB free and the media needs "
                           f"{needed // 1048576} MiB; nothing was copied. Free space or choose another dest",
                           changed=True)


PULL_BUFFER = 1024 * 1024  # Copy-StreamSlice's buffer: the slice is checked after each one


class _Pull:
    """Copy-StreamSlice on the host's clock: bytes move at host.pull_rate until the slice (_slice seconds) is
    over; the buffer that crosses the end of the slice is written whole."""

    def __init__(self, host: Host, slice_seconds: int) -> None:
        self.host = host
        self.left = float(slice_seconds) if slice_seconds > 0 else float("inf")
        self.pulled = 0
        self.seconds = 0.0

    def take(self, count: int, sliced: bool = True) -> tuple[int, bool]:
        """(bytes moved of `count`, ended): all of them, or as many whole buffers as the slice allows."""
        rate = self.host.pull_rate
        if rate is None or count == 0:
            self.pulled += count
            return count, True
        needed = count / rate
        if not sliced or needed <= self.left:
            moved, ended = count, True
        else:
            buffers = max(1, -(-int(self.left * rate) // PULL_BUFFER))
            moved = min(count, buffers * PULL_BUFFER)
            ended = moved == count
        spent = moved / rate
        self.host.tick(spent)
        self.left -= spent
        self.seconds += spent
        self.pulled += moved
        return moved, ended

    @property
    def over(self) -> bool:
        return self.left <= 0


def _media_stage(ctx: ModuleContext, dest: str, chunk_dir: str, files_dir: str) -> dict[str, Any]:
    host = ctx.host
    fs = host.fs
    params = ctx.params
    source = params.get("_source")
    resume = bool(params.get("_resume")) and source != "controller"
    if not resume:
        _remove(host, files_dir)
    fs.mkdir(files_dir)
    result: dict[str, Any] = {"changed": True}
    pull = _Pull(host, int(params.get("_slice") or 0))
    if source == "controller":
        for item in params.get("_files") or []:
            target = _join(files_dir, str(item["name"]))
            fs.mkdir(target.rsplit("\\", 1)[0])
            data = b"".join(fs.read(_join(chunk_dir, str(name))) for name in item.get("chunks") or [])
            fs.write(target, data)
        _remove(host, chunk_dir)
    elif source == "url":
        url = str(params["url"])
        if params.get("url_username"):
            raise UnknownCommand("sql_media: url_username (an authenticating web server is not modelled)")
        body = host.web.get(url)
        if body is None:
            # Invoke-AnsibleWindowsWebRequest: a non-2xx answer raises the WebException (status in the result).
            raise ModuleFailed("Unhandled exception while executing module: The remote server returned an error: "
                               "(404) Not Found.", changed=True, status_code=404)
        target = _join(files_dir, str(params["_file_name"]))
        offset = len(fs.read(target)) if resume and fs.exists(target) else 0
        ranges = url not in host.web_no_ranges
        # Range: bytes=<offset>- answered 206 with the rest; a server without ranges answers 200, the whole file.
        start = offset if ranges else 0
        if start == 0:
            _assert_free(host, dest, len(body) * int(params.get("_space_needed") or 1))
        kept = fs.read(target)[:start] if start else b""
        moved, ended = pull.take(len(body) - start, sliced=ranges)
        fs.write(target, kept + body[start:start + moved])
        if not ended:
            result["pending"] = {"bytes_done": start + moved, "bytes_total": len(body)}
        result.update({"status_code": 206 if start else 200, "elapsed": 0.1, "msg": "OK"})
    elif source == "share":
        path = str(params["share_path"])
        parts = path.lstrip("\\").split("\\")
        root = "\\\\" + parts[0] + "\\" + parts[1]
        share = host.shares.get(root.lower())
        if share is None:
            # New-PSDrive on a share nobody serves: ERROR_BAD_NET_NAME (67).
            raise ModuleFailed(f"Unhandled exception while executing module: The network name cannot be found "
                               f"({root})", changed=True)
        if not params.get("share_user"):
            # No credentials: the network logon of the WinRM session has none to pass on (the double hop).
            raise ModuleFailed(f"Unhandled exception while executing module: Access is denied ({root})", changed=True)
        if (str(params["share_user"]).lower(), params.get("share_password")) != (share.user.lower(), share.password):
            # WNetAddConnection2 with a wrong password: ERROR_LOGON_FAILURE (1326).
            raise ModuleFailed("Unhandled exception while executing module: The user name or password is incorrect",
                               changed=True)
        inside = "\\".join(parts[2:]).lower()
        files = {name: data for name, data in share.files.items()
                 if not inside or name.lower() == inside or name.lower().startswith(inside + "\\")}
        if not files:
            raise ModuleFailed(f"Unhandled exception while executing module: Cannot find path "
                               f"'CfgMgrSqlMedia:\\{inside}' because it does not exist.", changed=True)
        total = sum(len(d) for d in files.values())
        if not resume:
            _assert_free(host, dest, total * int(params.get("_space_needed") or 1))
        done = 0
        # Sort-Object FullName: the share's files in name order, without case.
        for name, data in sorted(files.items(), key=lambda item: item[0].casefold()):
            if name.lower() == inside:  # a single file (an ISO)
                relative = name.rsplit("\\", 1)[-1]
            else:
                relative = name[len(inside) + 1:] if inside else name
            target = _join(files_dir, relative)
            fs.mkdir(target.rsplit("\\", 1)[0])
            have = fs.read(target) if fs.exists(target) else b""
            if len(have) > len(data):
                have = b""  # not a part of this file: copy it again
            if len(have) < len(data):
                if pull.over:
                    result["pending"] = {"bytes_done": done, "bytes_total": total}
                    break
                moved, ended = pull.take(len(data) - len(have))
                have = have + data[len(have):len(have) + moved]
                fs.write(target, have)
                if not ended:
                    result["pending"] = {"bytes_done": done + len(have), "bytes_total": total}
                    break
            done += len(have)
    else:
        raise UnknownCommand(f"sql_media stage: _source {source!r}")
    if "pending" in result:
        # The next slice goes on from here; the hashes are taken once every byte is in.
        result["pending"].update(seconds=round(pull.seconds, 1), bytes_pulled=pull.pulled)
        return result
    hashes = {}
    total = 0
    for name in fs.walk_files(files_dir):
        data = fs.read(_join(files_dir, name))
        hashes[name] = _sha256(data)
        total += len(data)
    result.update({"hashes": hashes, "bytes": total})
    return result


def _media_commit(ctx: ModuleContext, dest: str, partial: str, files_dir: str, media_dir: str) -> dict[str, Any]:
    host = ctx.host
    fs = host.fs
    _remove(host, media_dir)
    if ctx.params.get("_iso"):
        image = _join(files_dir, fs.walk_files(files_dir)[0])
        # Mount-DiskImage is the Storage module's CDXML cmdlet: a CIM call through winmgmt.
        host.wmi.require("Mount-DiskImage")
        fs.mkdir(media_dir)
        for name, data in read_iso(fs.read(image), image).items():
            target = _join(media_dir, name)
            fs.mkdir(target.rsplit("\\", 1)[0])
            fs.write(target, data)
        _remove(host, files_dir)
    else:
        fs.move(files_dir, media_dir)
    fact = media_facts(host, media_dir)
    if fact["setup_version"] is None:
        _remove(host, partial)
        raise ModuleFailed("the source holds no setup.exe with a version at its top: it is not SQL Server media; "
                           f"nothing was staged in {dest}", changed=True)
    lines = [f"{_sha256(fs.read(_join(media_dir, name)))}  {name}" for name in _relative_files(host, media_dir)]
    marker = _join(media_dir, MARKER)
    fs.mkdir(marker)
    fs.write(_join(marker, "files.sha256"), ("\n".join(lines) + "\n").encode("utf-8"))
    fs.write(_join(marker, "source.json"), str(ctx.params["_marker"]).encode("utf-8"))
    _remove(host, dest)
    fs.move(media_dir, dest)
    _remove(host, partial)
    return {"changed": True, **fact, "files": len(lines)}


# --- sql_setup ------------------------------------------------------------------------------------------------

def _state_path(host: Host) -> str:
    return journal_path(host).rsplit("\\", 1)[0] + "\\setup_state.json"


def _run_path(host: Host) -> str:
    return journal_path(host).rsplit("\\", 1)[0] + "\\setup_run.json"


def _runner_path(host: Host) -> str:
    return journal_path(host).rsplit("\\", 1)[0] + "\\setup_runner.ps1"


def split_command_line(text: str) -> list[str]:
    """CommandLineToArgvW / the C runtime's rules (what setup.exe, a .NET program, reads): spaces separate
    arguments outside quotes; 2n backslashes before a quote are n backslashes and the quote toggles quoting;
    2n+1 are n backslashes and a literal quote; other backslashes are literal."""
    args: list[str] = []
    current: list[str] = []
    in_quotes = False
    have = False
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            count = 0
            while i < len(text) and text[i] == "\\":
                count += 1
                i += 1
            if i < len(text) and text[i] == '"':
                current.append("\\" * (count // 2))
                if count % 2:
                    current.append('"')
                    i += 1
                have = True
                continue
            current.append("\\" * count)
            have = True
            continue
        if char == '"':
            in_quotes = not in_quotes
            have = True
        elif char in " \t" and not in_quotes:
            if have:
                args.append("".join(current))
                current, have = [], False
        else:
            current.append(char)
            have = True
        i += 1
    if have:
        args.append("".join(current))
    return args


def setup_params(arguments: list[str]) -> dict[str, Any]:
    """setup.exe's /NAME=value and /SWITCH arguments as its parameters."""
    params: dict[str, Any] = {}
    for arg in arguments:
        if not arg.startswith("/"):
            raise Unmodelled(f"setup argument {arg!r} (setup's parameters start with /)")
        name, sep, value = arg[1:].partition("=")
        params[name] = value if sep else True
    return params


def _write_state(host: Host, state: dict[str, Any]) -> None:
    # The runner runs as SYSTEM: its state file is a plain write in the journal's protected folder.
    host.fs.write(_state_path(host), json.dumps(state, separators=(",", ":")).encode("utf-8"))


def run_setup_task(host: Host, trigger: str) -> bool:
    """The setup task's runner (Invoke-SetupRunner), one step per look of the Task Scheduler: True once it ended."""
    now = host_time(host)
    if host.sql.active_setup is None:
        if not host.fs.exists(_run_path(host)):
            raise Unmodelled("the setup task ran without its setup_run.json (a second run of the same task)")
        run = json.loads(host.fs.read(_run_path(host)).decode("utf-8"))
        host.fs.remove(_run_path(host))  # the product key leaves the disk before setup starts
        setup = str(run["setup"])
        state: dict[str, Any] = {"process_id": 0, "started": None, "exit_code": None, "ended": None, "error": None}
        if not host.fs.exists(setup):
            state.update(error="The system cannot find the file specified", ended=now)
            _write_state(host, state)
            return True
        pid = host.processes.spawn("setup", setup, 0)
        state.update(process_id=pid, started=now)
        _write_state(host, state)
        steps = host.sql.setup_steps(setup.rsplit("\\", 1)[0], setup_params(split_command_line(str(run["arguments"]))))
        try:
            seconds = next(steps)
        except StopIteration as done:
            _end_setup(host, pid, state, int(done.value))
            return True
        except WindowsError_ as err:
            return _setup_cannot_write(host, pid, state, err)
        host.sql.active_setup = (steps, pid, host.clock.now() + seconds)
        return False
    steps, pid, wake = host.sql.active_setup
    # Each look of the Task Scheduler runs every part of setup whose time has come (a slow poll sees several).
    log = host.sql.runs[-1].log if host.sql.runs else None
    while host.clock.now() >= wake:
        if log is not None:
            log.lag = host.clock.now() - wake  # what this part writes, it wrote when it was due
        try:
            seconds = next(steps)
        except StopIteration as done:
            host.sql.active_setup = None
            state = json.loads(host.fs.read(_state_path(host)).decode("utf-8"))
            _end_setup(host, pid, state, int(done.value))
            return True
        except WindowsError_ as err:
            host.sql.active_setup = None
            state = json.loads(host.fs.read(_state_path(host)).decode("utf-8"))
            return _setup_cannot_write(host, pid, state, err)
        finally:
            if log is not None:
                log.lag = 0.0
        wake += seconds
        host.sql.active_setup = (steps, pid, wake)
    return False


def _setup_cannot_write(host: Host, pid: int, state: dict[str, Any], err: WindowsError_) -> bool:
    """Setup could not write a file of its own (its log, a binary: fault disk.full): it fails with the Win32 error
    as an HRESULT (HRESULT_FROM_WIN32: 0x8007xxxx). The runner records that end if it can still write its state;
    if not, it dies with the write, and the task ends with nothing recorded (the controller then finds setup's
    process gone without an end, and says so)."""
    code = -(0x100000000 - (0x80070000 | (err.code & 0xFFFF)))
    try:
        _end_setup(host, pid, state, code)
    except WindowsError_:
        if host.processes.get(pid) is not None:
            host.processes.exit(pid)
    return True


def _end_setup(host: Host, pid: int, state: dict[str, Any], code: int) -> None:
    host.processes.exit(pid)
    state.update(exit_code=code, ended=host_time(host))
    _write_state(host, state)


def setup_state(host: Host) -> dict[str, Any]:
    """Get-SetupState: the task (schtasks /Query /FO CSV: Running or Ready), the runner's state, the process."""
    task = host.tasks.get(SETUP_TASK)
    out: dict[str, Any] = {"task": None, "run_state": None, "process_alive": False}
    if task is not None:
        out["task"] = {"task": SETUP_TASK, "status": "Running" if task.running else "Ready"}
    path = _state_path(host)
    if host.fs.exists(path):
        read = json.loads(host.fs.read(path).decode("utf-8"))
        out["run_state"] = {k: read.get(k) for k in ("process_id", "started", "exit_code", "ended", "error")}
        out["run_state"]["process_id"] = int(read.get("process_id") or 0)
        if out["run_state"]["process_id"] > 0 and read.get("exit_code") is None:
            out["process_alive"] = host.processes.get(out["run_state"]["process_id"]) is not None
    return out


TAIL_BYTES = 4096
LOG_FOLDER = re.compile(r"^\d{8}_\d{6}$")


def _utc(when: float) -> str:
    return _dt.datetime.fromtimestamp(when, tz=_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_log_tail(data: bytes, size: int = TAIL_BYTES) -> str:
    """Read-LogTail: the last `size` bytes from the first whole line; UTF-16 after an FF FE mark, else UTF-8."""
    start = max(0, len(data) - size)
    encoding = "utf-8"
    if data[:2] == b"\xff\xfe":
        encoding = "utf-16-le"
        start += start % 2  # UTF-16 code units start at even offsets
    text = data[start:].decode(encoding, errors="replace").lstrip("\ufeff")
    if start > 0:
        cut = text.find("\n")
        text = text[cut + 1:] if cut >= 0 else ""
    return text


def setup_progress(host: Host, version: str | None, run_state: dict[str, Any] | None) -> dict[str, Any] | None:
    """Get-SetupProgress: the newest run folder of Setup Bootstrap\\Log created since setup started (less two
    minutes), its Detail.txt and its newest MSI log. The twin's folder time is its creation time, as CreationTimeUtc."""
    if not version or not run_state or not run_state.get("started"):
        return None
    try:  # TryParseExact with "yyyy-MM-dd'T'HH:mm:ss'Z'": anything else means no progress, no failure
        started = _dt.datetime.strptime(str(run_state["started"]), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.UTC)
    except ValueError:
        return None
    since = started.timestamp() - 120
    root = setup_log_root(version)
    if not host.fs.is_dir(root):
        return None
    folders = [(host.fs.stat(f"{root}\\{name}")["mtime"], name) for name in host.fs.listdir(root)
               if LOG_FOLDER.fullmatch(name) and host.fs.is_dir(f"{root}\\{name}")]
    folders = [f for f in folders if f[0] >= since]
    if not folders:
        return None
    folder = f"{root}\\{max(folders)[1]}"
    out: dict[str, Any] = {"folder": folder, "detail_length": 0, "detail_written": None, "detail_tail": "",
                           "log_name": None, "log_length": 0, "log_written": None}
    detail = f"{folder}\\Detail.txt"
    if host.fs.exists(detail):
        data = host.fs.read(detail)
        out.update(detail_length=len(data), detail_tail=read_log_tail(data),
                   detail_written=_utc(host.fs.stat(detail)["mtime"]))
    logs = [(host.fs.stat(f"{folder}\\{name}")["mtime"], name) for name in host.fs.listdir(folder)
            if name.lower().endswith(".log") and not host.fs.is_dir(f"{folder}\\{name}")]
    if logs:
        written, name = max(logs)
        out.update(log_name=name, log_length=host.fs.stat(f"{folder}\\{name}")["size"], log_written=_utc(written))
    return out


def instance_facts(host: Host, name: str) -> dict[str, Any]:
    """Get-InstanceFact: the registry's instance id, version and edition; the SCM's engine and agent states."""
    try:
        names = host.registry.values(INSTANCE_NAMES_KEY)
    except WindowsError_:
        names = {}
    out: dict[str, Any] = {"instances": list(names), "instance_id": None, "version": None, "edition": None}
    # -contains compares without case; GetValue(name) finds the value without case too.
    match = next((k for k in names if k.casefold() == name.casefold()), None)
    if match is not None:
        iid = str(names[match])
        out["instance_id"] = iid
        for key, value, field in ((f"{SQL_ROOT_KEY}\\{iid}\\MSSQLServer\\CurrentVersion", "CurrentVersion", "version"),
                                  (f"{SQL_ROOT_KEY}\\{iid}\\Setup", "Edition", "edition")):
            try:
                out[field] = str(host.registry.get(key, value))
            except (WindowsError_, KeyError):
                out[field] = None
    engine = "MSSQLSERVER" if name == "MSSQLSERVER" else f"MSSQL${name}"
    agent = "SQLSERVERAGENT" if name == "MSSQLSERVER" else f"SQLAgent${name}"
    out["services"] = {n: host.scm.get(n).state for n in (engine, agent) if host.scm.exists(n)}
    out["winmgmt"] = host.scm.get("Winmgmt").state
    return out


def setup_log_root(version: str) -> str:
    """Get-SetupLogRoot: %ProgramFiles%\\Microsoft SQL Server\\<nnn>\\Setup Bootstrap\\Log, <nnn> = major x 10."""
    major = parse_version(version)[0]
    if major not in BOOTSTRAP_FOLDER:
        raise Unmodelled(f"SQL Server major version {major}")
    return f"C:\\Program Files\\Microsoft SQL Server\\{major * 10}\\Setup Bootstrap\\Log"


def summary_text(host: Host, version: str | None) -> str | None:
    """Get-SummaryText: Summary.txt of the media version's Setup Bootstrap\\Log."""
    if not version:
        return None
    path = f"{setup_log_root(version)}\\Summary.txt"
    return host.fs.read(path).decode("utf-8") if host.fs.exists(path) else None


def _write_checked(ctx: ModuleContext, text: str) -> None:
    """Write-JournalChecked: under the lock (one request per host at a time in the twin), compare and swap."""
    host = ctx.host
    path = journal_path(host)
    untrusted = journal_trust_problem(host)
    if untrusted:
        raise ModuleFailed(f"the journal {path} cannot be trusted: {untrusted}; nothing was changed")
    current = read_journal(host)
    current_hash = "" if current is None else hashlib.sha256(current.encode("utf-8")).hexdigest()
    if current_hash != ctx.params.get("_journal_expected", ""):
        raise ModuleFailed(f"the journal {path} changed since this task read it: another run is working on this host; "
                           "nothing was changed. Run the task again to see which run holds the host.")
    write_journal(host, text)


@module("configmgr.sql_upgrade.sql_setup")
def sql_setup(ctx: ModuleContext) -> dict[str, Any]:
    host = ctx.host
    params = ctx.params
    phase = params["_phase"]
    media = str(params["media_path"])
    result: dict[str, Any] = {"changed": False, "journal_path": journal_path(host), "host_time": host_time(host),
                              "host_name": host.computer_name, "journal_untrusted": journal_trust_problem(host)}
    if phase == "gather":
        result["watchdog"] = gather_lease(ctx)
        result.update(setup_state(host))
        result.update(instance_facts(host, str(params["instance"])))
        result.update(media_facts(host, media))
        result["summary_text"] = summary_text(host, result["setup_version"])
        result["journal_text"] = read_journal(host)
        return result
    if ctx.check_mode:
        raise UnknownCommand("sql_setup: a change phase in check mode (the action plugin never sends one)")
    if phase == "start":
        _write_checked(ctx, str(params["_journal_before"]))
        result["changed"] = True
        if host.fs.exists(_state_path(host)):
            host.fs.remove(_state_path(host))
        write_file(host, _runner_path(host), "Invoke-SetupRunner\r\n")
        write_file(host, _run_path(host), json.dumps({"setup": media.rstrip("\\") + "\\setup.exe",
                                                      "arguments": str(params["_arguments"])}))
        host.tasks.register(SETUP_TASK, 0, False, run_setup_task)
        registered = host.tasks.get(SETUP_TASK)
        if registered is not None:
            registered.fires = float("inf")  # no trigger: it runs when schtasks /Run says so
        host.tasks.run_now(SETUP_TASK)
        result.update(setup_state(host))
        result["journal_text"] = read_journal(host)
        return result
    if phase == "poll":
        if params.get("_journal_after") is not None:
            _write_checked(ctx, str(params["_journal_after"]))
            result["changed"] = True
        found = gather_lease(ctx)
        result["watchdog"] = found
        result.update(setup_state(host))
        result["progress"] = setup_progress(host, media_facts(host, media)["setup_version"], result["run_state"])
        result["summary_text"] = None
        if result["run_state"] is not None and result["run_state"]["ended"] is not None:
            result["summary_text"] = summary_text(host, media_facts(host, media)["setup_version"])
        result["journal_text"] = read_journal(host)
        return result
    if params.get("_journal_after") is not None:
        _write_checked(ctx, str(params["_journal_after"]))
    result["changed"] = True
    result.update(setup_state(host))
    host.tasks.delete(SETUP_TASK)
    for path in (_state_path(host), _runner_path(host), _run_path(host)):
        if host.fs.exists(path):
            host.fs.remove(path)
    result.update(instance_facts(host, str(params["instance"])))
    result["summary_text"] = summary_text(host, media_facts(host, media)["setup_version"])
    result["journal_text"] = read_journal(host)
    return result


# --- site_preflight -------------------------------------------------------------------------------------------

CBS_REBOOT = r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending"
WU_REBOOT = r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired"
SESSION_MANAGER = r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager"
ACTIVE_NAME = r"HKLM\SYSTEM\CurrentControlSet\Control\ComputerName\ActiveComputerName"
PENDING_NAME = r"HKLM\SYSTEM\CurrentControlSet\Control\ComputerName\ComputerName"


def _value(host: Host, key: str, name: str) -> Any:
    """Get-RegistryValue: (Get-Item key).GetValue(name), $null for a missing key or value."""
    try:
        return host.registry.get(key, name)
    except (WindowsError_, KeyError):
        return None


PROBE_TASK = "\\configmgr.sql_upgrade\\probe"


def _readiness_probe(host: Host) -> dict[str, Any]:
    """site_preflight.ps1's probe phase: the probe's task as SYSTEM runs its script under the host's PowerShell
    policy (host/powershell.py: a Group Policy execution policy that blocks unsigned scripts, a language mode that
    refuses COM), answers, and the task, script and answer are removed (in check mode too)."""
    policy = host.powershell
    folder = journal_path(host).rsplit("\\", 1)[0]
    script = f"{folder}\\probe.ps1"
    out: dict[str, Any] = {"registered": False, "register_error": None, "ran": False, "language_mode": None,
                           "com": False, "com_error": None, "machine_policy": policy.machine_policy or "Undefined"}
    host.fs.mkdir(folder)
    write_file(host, script, "probe")
    answered: dict[str, Any] = {}

    def run(owner: Host, trigger: str) -> bool:
        if owner.powershell.script_blocked():
            return True  # powershell.exe refuses the script: no answer
        refused = owner.powershell.com_refused()
        answered.update(language_mode=owner.powershell.system_language_mode, com=refused is None, com_error=refused)
        return True

    try:
        host.tasks.register(PROBE_TASK, 0, False, run)
        out["registered"] = True
        host.tasks.get(PROBE_TASK).fires = float("inf")  # no trigger: schtasks /Run
        host.tasks.run_now(PROBE_TASK)
        if answered:
            out.update(ran=True, **answered)
    finally:
        host.tasks.delete(PROBE_TASK)
        if host.fs.exists(script):
            host.fs.remove(script)
    return out


@module("configmgr.sql_upgrade.site_preflight")
def site_preflight(ctx: ModuleContext) -> dict[str, Any]:
    host = ctx.host
    params = ctx.params
    if params.get("_phase") == "probe":
        return {"changed": False, "probe": _readiness_probe(host)}
    renames = _value(host, SESSION_MANAGER, "PendingFileRenameOperations") or []
    active, pending = _value(host, ACTIVE_NAME, "ComputerName"), _value(host, PENDING_NAME, "ComputerName")
    result: dict[str, Any] = {
        "changed": False,
        "reboot": {
            "cbs_reboot_pending": host.registry.key_exists(CBS_REBOOT),
            "wu_reboot_required": host.registry.key_exists(WU_REBOOT),
            "pending_file_renames": any(bool(r) for r in renames),
            "computer_rename_pending": active is not None and pending is not None and active != pending,
        },
        "free_bytes": {},
        "configmgr": {
            "full_version": _value(host, r"HKLM\SOFTWARE\Microsoft\SMS\Setup", "Full Version"),
            "site_code": _value(host, r"HKLM\SOFTWARE\Microsoft\SMS\Identification", "Site Code"),
            "site_database": _value(host, r"HKLM\SOFTWARE\Microsoft\SMS\SQL Server", "Database Name"),
        },
        "databases": [], "connect_error": None, "media_has_key": None, "journal_text": read_journal(host),
    }
    for letter in params.get("drives") or {}:
        try:
            result["free_bytes"][str(letter)] = host.fs.free_bytes(f"{letter}:\\")
        except WindowsError_:
            result["free_bytes"][str(letter)] = None
    facts = instance_facts(host, str(params["instance"]))
    result["instance_id"], result["version"] = facts["instance_id"], facts["version"]
    if params.get("media_path"):
        ini = _join(str(params["media_path"]), "x64", "DefaultSetup.ini")
        if host.fs.exists(ini):
            result["media_has_key"] = media_facts(host, str(params["media_path"]))["product_key_in_media"]
    if not facts["instance_id"]:
        return result
    inst = host.sql.instance(str(params["instance"]))
    if inst.service_state() != "running":
        result["connect_error"] = ("SQL Server error 2: A network-related or instance-specific error occurred while "
                                   "establishing a connection to SQL Server.")
        return result
    now = host.clock.now()
    rows = []
    for name, spec in sorted(inst.databases.items(), key=lambda item: item[0].casefold()):
        last = spec.get("last_full_backup")
        # DATEDIFF(minute, backup_finish_date, GETDATE()): whole minute boundaries crossed.
        age = None if not last else int(now // 60) - int(parse_iso(str(last)) // 60)
        rows.append({"name": name, "collation": spec.get("collation"), "backup_age_minutes": age})
    result["databases"] = rows
    return result
