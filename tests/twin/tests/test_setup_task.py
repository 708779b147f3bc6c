"""The twin's side of KB steps 1 and 5: sql_setup's detached setup task on the host's clock, the runner's state
file the watchdog follows, the command line as setup reads it, disk space, moves and ISO images."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._sql.setup import (
    command_line,
    quote_argument,
)
from twin.emulation.configmgr import WATCHDOG_TASK, run_watchdog, write_journal
from twin.emulation.sql_steps import SETUP_TASK, run_setup_task, setup_state, split_command_line
from twin.host import Unmodelled, WindowsError_, load_host, make_iso, media_setup_exe
from twin.host.sources import read_iso

MEDIA = r"C:\SQLMedia\SQL2019"
FOLDER = r"C:\ProgramData\configmgr.sql_upgrade"
ARGS = ["/Q", "/ACTION=Upgrade", "/INSTANCENAME=MSSQLSERVER", "/INSTANCEID=MSSQL13.MSSQLSERVER",
        "/IACCEPTSQLSERVERLICENSETERMS", "/PID=ABCDE-FGHIJ-KLMNO-PQRST-UVWXY", "/UPDATEENABLED=False"]


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])  # no timing: CI machines are busy
@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                        max_size=12), max_size=6))
def test_the_command_line_reads_back_as_quoted(args: list[str]) -> None:
    """The controller's quoting (C runtime rules) and the twin's parser (CommandLineToArgvW) agree on any text,
    quotes, backslashes and spaces included."""
    assert split_command_line(command_line(args)) == args


def test_known_quoting_cases() -> None:
    assert split_command_line('"C:\\a b\\\\" /Q') == ["C:\\a b\\", "/Q"]
    assert split_command_line('a\\\\\\"b') == ['a\\"b']
    assert quote_argument("x y") == '"x y"'


def start(host, seconds: int = 40, version: str = "15.0.2000.5") -> None:
    host.fs.mkdir(MEDIA)
    host.fs.write(MEDIA + r"\setup.exe", media_setup_exe(version, '-m"SqlSetup"', False, seconds))
    host.fs.mkdir(FOLDER)
    host.fs.write(FOLDER + r"\setup_run.json", json.dumps({"setup": MEDIA + r"\setup.exe",
                                                          "arguments": command_line(ARGS)}).encode())
    host.tasks.register(SETUP_TASK, 0, False, run_setup_task)
    host.tasks.get(SETUP_TASK).fires = float("inf")
    host.tasks.run_now(SETUP_TASK)


def test_setup_runs_on_the_hosts_clock_as_a_process_of_its_own() -> None:
    host = load_host()
    start(host)
    state = setup_state(host)
    pid = state["run_state"]["process_id"]
    assert state["task"]["status"] == "Running" and state["process_alive"] is True
    assert host.processes.get(pid).name == "setup" and state["run_state"]["exit_code"] is None
    assert not host.fs.exists(FOLDER + r"\setup_run.json")  # the product key left the disk before setup ran
    host.tick(10)
    host.tasks.run_due()
    assert setup_state(host)["process_alive"] is True  # the file copy takes half of SetupSeconds
    host.tick(15)
    host.tasks.run_due()
    state = setup_state(host)
    assert state["run_state"]["exit_code"] == 0 and state["process_alive"] is False
    assert state["task"]["status"] == "Ready" and host.processes.get(pid) is None
    assert host.sql.instance("MSSQLSERVER").version == "15.0.2000.5"
    assert host.registry.get(r"HKLM\SOFTWARE\Microsoft\Microsoft SQL Server\MSSQL13.MSSQLSERVER\MSSQLServer"
                             r"\CurrentVersion", "CurrentVersion") == "15.0.2000.5"
    assert "PID" not in host.fs.read(host.sql.runs[-1].log_folder + r"\ConfigurationFile.ini").decode()


def test_a_failed_rule_ends_setup_at_once() -> None:
    host = load_host()
    host.scm.set_start_mode("Winmgmt", "disabled")
    host.scm.stop("Winmgmt", force=True)
    start(host)
    state = setup_state(host)["run_state"]
    assert state["exit_code"] == -2068119551 and state["ended"] is not None


def test_a_reboot_ends_setup_and_its_task() -> None:
    host = load_host()
    start(host)
    pid = setup_state(host)["run_state"]["process_id"]
    host.scm.set_start_mode("Winmgmt", "auto")
    host.reboot()
    assert host.sql.active_setup is None and host.processes.get(pid) is None
    state = setup_state(host)
    assert state["task"]["status"] == "Ready" and state["run_state"]["ended"] is None  # no end was recorded


def journal(host, process_id: int, started: str = "2024-05-14T08:00:00Z") -> None:
    doc = {"schema": 1, "run_id": "r-1", "host": "CM01", "created": started, "updated": started,
           "setup": {"status": "running", "process_id": process_id, "started": started}}
    write_journal(host, json.dumps(doc))


def test_the_watchdog_waits_for_setup_while_only_the_runner_knows_its_process() -> None:
    host = load_host()
    start(host, seconds=40)
    pid = setup_state(host)["run_state"]["process_id"]
    journal(host, 0, "2024-05-14T08:00:00Z")  # the controller had not recorded the process id yet
    host.tasks.register(WATCHDOG_TASK, 0, True, run_watchdog)
    assert run_watchdog(host, "lease") is False  # the runner's state file names a live setup
    host.tick(25)
    host.tasks.run_due()
    assert host.processes.get(pid) is None
    assert run_watchdog(host, "lease") is True
    doc = json.loads(host.fs.read(FOLDER + r"\journal.json"))
    assert "waited for SQL Server setup" in doc["watchdog"]["result"]


def test_the_watchdog_waits_for_a_runner_that_has_not_started_setup_yet() -> None:
    host = load_host()
    host.fs.mkdir(FOLDER)
    now = host.clock.now()
    from twin.host.clock import to_datetime  # noqa: PLC0415
    journal(host, 0, to_datetime(now).strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert run_watchdog(host, "lease") is False
    host.tick(601)
    assert run_watchdog(host, "lease") is True  # ten minutes without a process id: the runner never started it


def test_disk_space_moves_and_iso_images() -> None:
    host = load_host()
    fs = host.fs
    fs.mkdir(r"C:\m\a")
    fs.write(r"C:\m\a\f.txt", b"x" * 10)
    free = fs.free_bytes("C:\\m")
    fs.set_free("C", 5)
    with pytest.raises(WindowsError_) as full:
        fs.write(r"C:\m\a\g.txt", b"y" * 6)
    assert full.value.code == 112
    fs.set_free("C", free)
    fs.mkdir(r"C:\n")
    fs.move(r"C:\m\a", r"C:\n\b")
    assert fs.read(r"C:\n\b\f.txt") == b"x" * 10 and not fs.exists(r"C:\m\a")
    with pytest.raises(WindowsError_):
        fs.move(r"C:\n\b", r"C:\n")
    assert fs.walk_files(r"C:\n") == ["b\\f.txt"]
    image = make_iso({"setup.exe": b"1", "x64/DefaultSetup.ini": b"2"})
    assert read_iso(image, "i") == {"setup.exe": b"1", "x64\\DefaultSetup.ini": b"2"}
    with pytest.raises(Unmodelled):
        read_iso(b"MZ", "real.iso")


DETAIL_FORM = r"^\(\d\d\) \d{4}-\d\d-\d\d \d\d:\d\d:\d\d (Slp|SQLEngine): .+$"


def test_setup_writes_its_log_folder_as_it_goes() -> None:
    """Microsoft Learn, "View and read SQL Server Setup log files": a folder per run, Detail.txt action by action,
    one MSI log per package while it installs; Summary.txt at the end."""
    import re

    from twin.emulation.sql_steps import setup_progress
    host = load_host()
    start(host, seconds=60)
    run = host.sql.runs[-1]
    assert run.log is not None
    folder = run.log.folder
    assert re.fullmatch(r".*\\150\\Setup Bootstrap\\Log\\\d{8}_\d{6}", folder)
    seen = []
    for _look in range(40):
        host.tick(1)
        host.tasks.run_due()
        found = setup_progress(host, "15.0.2000.5", setup_state(host)["run_state"])
        if found and found["log_name"] and found["log_name"] not in seen:
            seen.append(found["log_name"])
    assert seen == ["sql_common_core_Cpu64_1.log", "sql_engine_core_shared_Cpu64_1.log",
                    "sql_engine_core_inst_Cpu64_1.log"]
    text = host.fs.read(folder + r"\Detail.txt").decode()
    lines = text.strip().split("\r\n")
    assert all(re.match(DETAIL_FORM, line) for line in lines), [x for x in lines if not re.match(DETAIL_FORM, x)]
    assert lines[-1].endswith("Setup closed with exit code: 0x00000000")
    running = [line.split("Running Action: ")[1] for line in lines if "Running Action: " in line]
    completed = [line.split("Completed Action: ")[1].split(",")[0] for line in lines if "Completed Action: " in line]
    assert running == completed and "Install_sql_engine_core_inst_Cpu64_Action" in running
    assert not any("ABCDE-FGHIJ" in line for line in lines)  # setup masks the product key in its own log
    assert host.fs.exists(folder + r"\Summary_" + host.computer_name + "_" + folder.rsplit("\\", 1)[1] + ".txt")


def test_a_stalled_setup_writes_nothing_for_its_stall_then_goes_on() -> None:
    host = load_host()
    host.faults.update({"setup": {"stall_seconds": 100}})
    start(host, seconds=12)
    detail = host.sql.runs[-1].log.folder + r"\Detail.txt"
    sizes = []
    for _look in range(130):
        host.tick(1)
        host.tasks.run_due()
        sizes.append(len(host.fs.read(detail)))
    assert max(len([s for s in sizes if s == size]) for size in set(sizes)) >= 95  # one long quiet spell
    assert setup_state(host)["run_state"]["exit_code"] == 0


def test_the_log_tail_starts_at_a_whole_line_in_utf8_and_utf16() -> None:
    from twin.emulation.sql_steps import read_log_tail
    text = "".join(f"(01) line {i}\r\n" for i in range(1000))
    tail = read_log_tail(text.encode("utf-8"), 100)
    assert tail.startswith("(01) line ") and tail.endswith("line 999\r\n")
    wide = read_log_tail(b"\xff\xfe" + text.encode("utf-16-le"), 101)
    assert wide.startswith("(01) line ") and wide.endswith("line 999\r\n")
    assert read_log_tail(b"\xef\xbb\xbfshort\r\n") == "short\r\n"


def test_a_start_time_in_another_format_gives_no_progress_and_no_failure() -> None:
    from twin.emulation.sql_steps import setup_progress
    host = load_host()
    start(host, seconds=60)
    state = setup_state(host)["run_state"]
    assert setup_progress(host, "15.0.2000.5", state) is not None
    # A runner that wrote its time in the session's culture (a '.' time separator): Get-SetupProgress's
    # TryParseExact fails, and the poll goes on without progress.
    assert setup_progress(host, "15.0.2000.5", {**state, "started": "2026-12-08T01.15.00Z"}) is None
