"""SQL Server setup's log files, written while setup runs, on the host's clock.

Microsoft Learn, "View and read SQL Server Setup log files" (sql/database-engine/install-windows/
view-and-read-sql-server-setup-log-files):
- every run writes a folder of its own, %ProgramFiles%\\Microsoft SQL Server\\<nnn>\\Setup Bootstrap\\Log\\
  <YYYYMMDD_HHMMSS>, named after the time the run started (the computer's local time: twin hosts run in UTC);
- Detail.txt in that folder "is generated for the main workflow such as install or upgrade, and provides the
  details of the execution ... based on the time when each action for the installation was invoked"; it shows the
  order in which the actions ran; an error is logged at the end of the file;
- each MSI that setup runs has a log of its own in that folder, <Feature>_<Architecture>_<Interaction>.log
  (for example sql_engine_core_inst_Cpu64_1.log), written while that package installs;
- Summary.txt (in Log\\ and as Summary_<Machine>_<YYYYMMDD_HHMMSS>.txt in the run's folder) is written when setup
  ends (SqlServer._finish).

Detail.txt's lines as setup writes them: "(<thread>) <yyyy-MM-dd HH:mm:ss> <component>: <message>", the workflow's
actions as "Running Action: <name>" and "Completed Action: <name>, returned True|False", and "Setup closed with exit
code: 0x<hex>" last. The action names below are the twin's own model of an upgrade's workflow; the controller reads
only the form of the lines (plugins/plugin_utils/_sql/progress.py), never a list of names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .clock import to_datetime

if TYPE_CHECKING:
    from .host import Host

#: The packages an in-place upgrade of a Database Engine instance installs, in order (the MSI logs' <Feature>).
UPGRADE_FEATURES = ("sql_common_core", "sql_engine_core_shared", "sql_engine_core_inst")
ARCHITECTURE = "Cpu64"


class SetupLog:
    """One run's log folder. Every write is stamped with the host's clock at the moment it happens."""

    def __init__(self, host: Host, log_root: str, started: float) -> None:
        self._host = host
        # How late the part of setup being run is (the runner runs a part at the Task Scheduler's next look after
        # it was due): its lines and files carry the time they would have been written.
        self.lag = 0.0
        self.current: str | None = None  # the action running (no Completed Action line yet)
        # NTFS keeps file times to 100 ns, and setup's writes are milliseconds apart: two writes of one model
        # instant still come one after the other (what makes "the newest MSI log" the package being installed).
        self._last_write = 0.0
        self.folder = f"{log_root}\\{to_datetime(started).strftime('%Y%m%d_%H%M%S')}"
        host.fs.mkdir(self.folder)
        self.detail = f"{self.folder}\\Detail.txt"
        host.fs.write(self.detail, b"")

    def _append(self, path: str, text: str) -> None:
        fs = self._host.fs
        old = fs.read(path) if fs.exists(path) else b""
        when = max(self.now(), self._last_write + 0.001)
        self._last_write = when
        fs.write(path, old + text.encode("utf-8"), mtime=when)

    def now(self) -> float:
        return self._host.clock.now() - self.lag

    def line(self, message: str, component: str = "Slp") -> None:
        stamp = to_datetime(self.now()).strftime("%Y-%m-%d %H:%M:%S")
        self._append(self.detail, f"(01) {stamp} {component}: {message}\r\n")

    def running(self, action: str) -> None:
        self.line("----------------------------------------------------------------------")
        self.line(f"Running Action: {action}")
        self.current = action

    def completed(self, action: str, ok: bool = True) -> None:
        self.line(f"Completed Action: {action}, returned {'True' if ok else 'False'}")
        self.current = None

    def feature_log_name(self, feature: str) -> str:
        return f"{feature}_{ARCHITECTURE}_1.log"

    def feature(self, feature: str, message: str) -> None:
        """A line of the MSI log of one package (MSI's verbose log: "MSI (s) (<pid>:<tid>) [HH:mm:ss:ms]: ...")."""
        stamp = to_datetime(self.now()).strftime("%H:%M:%S:000")
        self._append(f"{self.folder}\\{self.feature_log_name(feature)}", f"MSI (s) (A8:3C) [{stamp}]: {message}\r\n")

    def closed(self, exit_code: int) -> None:
        if self.current is not None:
            self.completed(self.current, ok=exit_code in (0, 3010))
        self.line(f"Setup closed with exit code: 0x{exit_code & 0xFFFFFFFF:08X}")
