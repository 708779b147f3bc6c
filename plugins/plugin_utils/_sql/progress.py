# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an operator sees while setup runs: its progress read from its own logs, and a possible hang called out.

Setup's logs (Microsoft Learn, "View and read SQL Server Setup log files"; docs/sql-setup.md): each run writes
Setup Bootstrap\\Log\\<YYYYMMDD_HHMMSS>\\Detail.txt, the actions of the workflow in the order they run, each line
"(<thread>) <yyyy-MM-dd HH:mm:ss> <component>: <message>" with "Running Action: <name>" and "Completed Action:
<name>, returned True|False"; and one MSI log per package, <Feature>_<Architecture>_<Interaction>.log. Only the form
of those lines is read here, never a list of action names: setup's workflow differs between versions.

Pure functions and one small tracker; sql_setup's action plugin prints what they return.

Internal to configmgr.sql_upgrade (controller-side, not a public API).
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._action.progress import MAX_LINE, duration, one_line, parse_utc

_DETAIL_LINE = re.compile(r"^\(\d{1,4}\)\s+\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\s+(?P<message>.*)$")
_RUNNING = re.compile(r"\bRunning Action:\s*(?P<action>\S+)")
_COMPLETED = re.compile(r"\bCompleted Action:\s*(?P<action>[^,\s]+),\s*returned\s+(?P<result>\w+)")
_MSI_LOG = re.compile(r"^(?P<feature>.+?)_(?:Cpu64|Cpu32|x64|x86|Arm64|IA64)_\d+(?:_.*)?\.log$", re.IGNORECASE)


@dataclass(frozen=True)
class SetupSnapshot:
    """One poll's reading of setup's logs."""

    phase: str | None  # the action running (or, once it completed, the last one that ran)
    phase_done: bool  # that action has completed
    feature: str | None  # the package whose MSI log was written last
    last_line: str | None  # Detail.txt's last line, its message only
    position: tuple[Any, ...]  # changes whenever setup writes any of its logs
    written: float | None  # the newest write to Detail.txt or an MSI log (host clock, Unix seconds)
    folder: str | None


def read_detail(tail: str) -> tuple[str | None, bool, str | None]:
    """(phase, phase_done, last line) from the end of Detail.txt. Lines that are not setup's own form (a wrapped
    exception text, a partial first line) count for the last line only."""
    phase: str | None = None
    done = False
    last: str | None = None
    for raw in tail.splitlines():
        line = raw.strip()
        if not line:
            continue
        match = _DETAIL_LINE.match(line)
        message = match.group("message") if match else line
        if set(message.split(":", 1)[-1].strip()) <= {"-"}:
            continue  # setup's separator lines ("Slp: ------")
        last = message
        running = _RUNNING.search(message)
        if running:
            phase, done = running.group("action"), False
            continue
        completed = _COMPLETED.search(message)
        if completed and completed.group("action") == phase:
            done = True
        elif completed and phase is None:
            phase, done = completed.group("action"), True
    return phase, done, (one_line(last) if last is not None else None)


def feature_of(log_name: Any) -> str | None:
    """sql_engine_core_inst_Cpu64_1.log -> sql_engine_core_inst; None for a log that is not a package's."""
    if not isinstance(log_name, str):
        return None
    match = _MSI_LOG.match(log_name)
    return match.group("feature") if match else None


def snapshot(progress: Mapping[str, Any] | None) -> SetupSnapshot | None:
    """The executor's `progress` (sql_setup poll) as a reading; None before setup has made its log folder."""
    if not progress:
        return None
    phase, done, last = read_detail(str(progress.get("detail_tail") or ""))
    written = [t for t in (parse_utc(progress.get("detail_written")), parse_utc(progress.get("log_written")))
               if t is not None]
    position = (progress.get("folder"), progress.get("detail_length"), progress.get("log_name"),
                progress.get("log_length"))
    return SetupSnapshot(phase, done, feature_of(progress.get("log_name")), last, position,
                         max(written) if written else None, progress.get("folder"))


@dataclass
class SetupWatch:
    """Follows setup across polls: one line per poll, and a possible hang called out when none of setup's logs has
    been written for `stall_after` seconds (again at every further `stall_after`). Times are the host's clock, so
    a slow or dropped connection does not look like a hang. It never stops setup."""

    stall_after: int
    position: tuple[Any, ...] | None = None
    moved_at: float | None = None
    called_out: int = 0  # multiples of stall_after already called out for this quiet spell
    last: dict[str, Any] = field(default_factory=dict)  # the last reading (the result's `progress`)
    stalls: list[str] = field(default_factory=list)  # every possible hang called out (the result's `stalls`)

    def observe(self, snap: SetupSnapshot | None, host_now: float | None,
                started: float | None) -> tuple[str, str | None]:
        """(the progress line, the possible-hang warning or None) for one poll."""
        since = duration(host_now - started) if host_now is not None and started is not None else "?"
        head = f"{since} since setup started"
        if snap is None:
            return one_line(f"{head}; setup has not written its log folder yet"), None
        self.last = {"phase": snap.phase, "feature": snap.feature, "last_line": snap.last_line,
                     "log_folder": snap.folder}
        if snap.position != self.position:
            self.position = snap.position
            self.moved_at = snap.written if snap.written is not None else host_now
            self.called_out = 0
        quiet = host_now - self.moved_at if host_now is not None and self.moved_at is not None else None
        parts = [head]
        if snap.phase:
            parts.append(f"{'after' if snap.phase_done else 'running'} {snap.phase}")
        if snap.feature:
            parts.append(f"package {snap.feature}")
        if quiet is not None and quiet >= 60:
            parts.append(f"logs quiet for {duration(quiet)}")
        line = "; ".join(parts)
        if snap.last_line:
            line += f'; last: "{snap.last_line}"'
        warning = None
        if self.stall_after > 0 and quiet is not None and quiet >= self.stall_after * (self.called_out + 1):
            self.called_out = int(quiet // self.stall_after)
            warning = one_line(
                f"setup may hang: no write to its logs for {duration(quiet)} (stall_warning "
                f"{self.stall_after} s), at {snap.phase or 'its start'}"
                + (f", package {snap.feature}" if snap.feature else "")
                + f". Setup is left running. Read the end of {snap.folder}\\Detail.txt and the newest *.log there",
                MAX_LINE * 2)
            self.stalls.append(warning)
        return one_line(line), warning


def setup_seconds(summary: Mapping[str, Any] | None, run_state: Mapping[str, Any] | None) -> int | None:
    """Setup's own duration: Summary.txt's End time - Start time (both the host's local time), else the runner's
    UTC start and end."""
    summary = summary or {}
    fmt = "%Y-%m-%d %H:%M:%S"
    try:
        start = _dt.datetime.strptime(str(summary.get("start_time")), fmt)
        end = _dt.datetime.strptime(str(summary.get("end_time")), fmt)
        if end >= start:
            return int((end - start).total_seconds())
    except ValueError:
        pass
    run_state = run_state or {}
    started, ended = parse_utc(run_state.get("started")), parse_utc(run_state.get("ended"))
    if started is not None and ended is not None and ended >= started:
        return int(ended - started)
    return None
