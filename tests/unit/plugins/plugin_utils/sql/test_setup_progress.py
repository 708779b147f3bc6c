"""Setup's progress read from its own logs (plugins/plugin_utils/_sql/progress.py): the phase, the package, the last
line, and a possible hang called out on the host's clock."""

from __future__ import annotations

import pytest

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._sql import progress as pg

TAIL = (
    "(01) 2026-12-08 01:15:00 Slp: ----------------------------------------------------------------------\r\n"
    "(01) 2026-12-08 01:15:00 Slp: Running Action: Install_sql_engine_core_inst_Cpu64_Action\r\n"
    '(01) 2026-12-08 01:15:01 Slp: Target package: "C:\\SQLMedia\\x64\\setup\\sql_engine_core_inst.msi"\r\n'
    "(01) 2026-12-08 01:16:40 Slp: MSI returned 0 for sql_engine_core_inst_Cpu64_1.log\r\n"
    "(01) 2026-12-08 01:16:40 Slp: Completed Action: Install_sql_engine_core_inst_Cpu64_Action, returned True\r\n"
)


def progress(tail: str = TAIL, length: int = 900, log: str | None = "sql_engine_core_inst_Cpu64_1.log",
             written: str = "2026-12-08T01:16:40Z") -> dict[str, object]:
    return {"folder": r"C:\Log\20261208_011500", "detail_length": length, "detail_written": written,
            "detail_tail": tail, "log_name": log, "log_length": 10, "log_written": written}


def test_the_phase_is_the_last_action_and_whether_it_completed() -> None:
    assert pg.read_detail(TAIL) == ("Install_sql_engine_core_inst_Cpu64_Action", True,
                                    "Slp: Completed Action: Install_sql_engine_core_inst_Cpu64_Action, returned True")
    running = TAIL + "(01) 2026-12-08 01:16:41 Slp: Running Action: SqlEngineConfigAction_upgrade_configrc_Cpu64\r\n"
    assert pg.read_detail(running)[:2] == ("SqlEngineConfigAction_upgrade_configrc_Cpu64", False)


def test_a_tail_that_starts_after_the_running_line_still_names_the_completed_action() -> None:
    tail = "(01) 2026-12-08 01:16:40 Slp: Completed Action: RunGlobalRules, returned False\r\n"
    assert pg.read_detail(tail)[:2] == ("RunGlobalRules", True)


def test_lines_not_in_setups_form_count_for_the_last_line_only_and_are_one_line() -> None:
    tail = TAIL + "    at Microsoft.SqlServer.Chainer.Setup.Run()\x1b[0m\tmore\r\n"
    phase, done, last = pg.read_detail(tail)
    assert phase == "Install_sql_engine_core_inst_Cpu64_Action" and done is True
    assert last == "at Microsoft.SqlServer.Chainer.Setup.Run() [0m more"
    assert pg.read_detail("(01) 2026-12-08 01:15:00 Slp: " + "x" * 500)[2].endswith("...")
    assert pg.read_detail("") == (None, False, None)


@pytest.mark.parametrize(("name", "feature"), [
    ("sql_engine_core_inst_Cpu64_1.log", "sql_engine_core_inst"),
    ("SqlSupport_KB_Cpu64_1.log", "SqlSupport_KB"),
    ("sql_common_core_Cpu64_1_ComponentUpdate.log", "sql_common_core"),
    ("Detail.txt", None), ("setup.log", None), (None, None),
])
def test_the_package_comes_from_the_msi_logs_name(name: str | None, feature: str | None) -> None:
    assert pg.feature_of(name) == feature


def test_no_folder_yet_is_said_so() -> None:
    watch = pg.SetupWatch(60)
    line, warning = watch.observe(pg.snapshot(None), 1000.0, 990.0)
    assert line == "10s since setup started; setup has not written its log folder yet" and warning is None


def test_a_quiet_spell_is_called_out_once_per_stall_warning_and_forgotten_when_setup_writes() -> None:
    start = pg.parse_utc("2026-12-08T01:15:00Z")
    written = pg.parse_utc("2026-12-08T01:16:40Z")
    assert start is not None and written is not None
    watch = pg.SetupWatch(300)
    snap = pg.snapshot(progress())
    line, warning = watch.observe(snap, written + 30, start)
    assert line.startswith("2m10s since setup started; after Install_sql_engine_core_inst_Cpu64_Action; package "
                           "sql_engine_core_inst; last: ") and warning is None
    assert watch.observe(snap, written + 299, start)[1] is None
    line, warning = watch.observe(snap, written + 301, start)
    assert "logs quiet for 5m01s" in line
    assert warning is not None and warning.startswith("setup may hang: no write to its logs for 5m01s")
    assert r"C:\Log\20261208_011500\Detail.txt" in warning
    assert watch.observe(snap, written + 400, start)[1] is None  # once per spell ...
    assert watch.observe(snap, written + 601, start)[1] is not None  # ... and again at each further stall_warning
    assert len(watch.stalls) == 2
    moved = pg.snapshot(progress(length=1200, written="2026-12-08T01:26:50Z"))
    assert watch.observe(moved, written + 620, start)[1] is None
    assert watch.last["phase"] == "Install_sql_engine_core_inst_Cpu64_Action"


def test_a_stall_warning_of_zero_never_warns() -> None:
    watch = pg.SetupWatch(0)
    snap = pg.snapshot(progress())
    assert watch.observe(snap, 10**10, 0.0)[1] is None


def test_setups_own_duration_from_summary_else_the_runner() -> None:
    summary = {"start_time": "2026-12-08 01:15:00", "end_time": "2026-12-08 01:56:12"}
    assert pg.setup_seconds(summary, None) == 2472
    runner = {"started": "2026-12-08T01:15:02Z", "ended": "2026-12-08T01:16:02Z"}
    assert pg.setup_seconds({}, runner) == 60
    assert pg.setup_seconds({"start_time": "garbage"}, {"started": None}) is None
