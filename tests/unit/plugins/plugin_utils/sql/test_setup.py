"""KB step 5's decisions (_sql/setup.py): versions, the WMI rule, setup's command line, the product key,
exit codes, Summary.txt (layouts of published Summary.txt files, data/), and the upgraded instance's checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.errors import PlanError
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._sql import setup as su

DATA = Path(__file__).parent / "data"
KEY = "ABCDE-FGHIJ-KLMNO-PQRST-UVWXY"


@pytest.mark.parametrize(("left", "right", "expected"), [
    ("13.0.6300.2", "15.0.2000.5", -1),
    ("15.0.2000.5", "15.0.2000.5", 0),
    ("15.0", "15.0.0.0", 0),
    ("15.0.4003.23", "15.0.2000.5", 1),
    ("10.50.1600.1", "10.0.6000.29", 1),  # 2008 R2 after 2008: numbers, not text
    ("9.0.5000.0", "10.0.1600.22", -1),
])
def test_versions_compare_by_number(left: str, right: str, expected: int) -> None:
    assert su.compare_versions(left, right) == expected


@pytest.mark.parametrize("bad", ["15", "15.x.1.2", "", "15.0.0.0.0", None, 15, "15.0.2000.5 RTM"])
def test_versions_that_are_not_versions_are_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        su.parse_version(bad)


def test_products_and_bootstrap_folders() -> None:
    assert su.product_name("15.0.2000.5") == "SQL Server 2019"
    assert su.bootstrap_folder("16.0.1000.6") == "160"
    assert su.bootstrap_folder("10.50.1600.1") == "100"
    with pytest.raises(PlanError, match="major version 30"):
        su.bootstrap_folder("30.0.1.1")


@pytest.mark.parametrize(("setting", "version", "running", "warns"), [
    ("auto", "15.0.2000.5", True, False),
    ("auto", "9.0.1399.6", True, False),   # SQL Server 2005: the first setup with the rule
    ("auto", "8.0.194.0", False, False),   # SQL Server 2000: the KB as written
    ("running", "8.0.194.0", True, False),
    ("stopped", "15.0.2000.5", False, True),
    ("stopped", "8.0.194.0", False, False),
])
def test_wmi_during_setup(setting: str, version: str, running: bool, warns: bool) -> None:
    decision = su.decide_wmi(setting, version)
    assert decision.running is running
    assert (decision.warning is not None) is warns
    if warns:
        assert "WmiServiceStateCheck" in str(decision.warning)


def test_wmi_during_setup_refuses_other_values() -> None:
    with pytest.raises(PlanError, match="wmi_during_setup"):
        su.decide_wmi("sometimes", "15.0.2000.5")


@pytest.mark.parametrize(("arg", "quoted"), [
    ("/Q", "/Q"),
    ("/UPDATESOURCE=C:\\SQL Media\\CU", '"/UPDATESOURCE=C:\\SQL Media\\CU"'),
    ("C:\\path with space\\", '"C:\\path with space\\\\"'),  # a trailing backslash before the closing quote doubles
    ('say "hi"', '"say \\"hi\\""'),
    ("a\\\\\"b", '"a\\\\\\\\\\"b"'),  # two backslashes then a quote: four, then an escaped quote
    ("", '""'),
    ("C:\\no\\space\\", "C:\\no\\space\\"),  # no quotes needed: backslashes stay as they are
])
def test_arguments_are_quoted_for_the_c_runtime(arg: str, quoted: str) -> None:
    assert su.quote_argument(arg) == quoted


def test_the_upgrade_command_line() -> None:
    args = su.setup_arguments("MSSQLSERVER", "MSSQL13.MSSQLSERVER", KEY, {})
    assert args == ["/Q", "/ACTION=Upgrade", "/INSTANCENAME=MSSQLSERVER", "/INSTANCEID=MSSQL13.MSSQLSERVER",
                    "/IACCEPTSQLSERVERLICENSETERMS", f"/PID={KEY}", "/UPDATEENABLED=False"]
    shown = su.command_line(su.masked(args))
    assert KEY not in shown and "/PID=********" in shown
    # A staged update source replaces UpdateEnabled=False (setup then reads the updates from that folder).
    staged = su.setup_arguments("SCCM", "MSSQL15.SCCM", None, {"UPDATESOURCE": "C:\\SQLMedia\\CU"})
    assert "/UPDATEENABLED=False" not in staged and "/UPDATESOURCE=C:\\SQLMedia\\CU" in staged
    assert not any(a.startswith("/PID") for a in staged)


@pytest.mark.parametrize(("extra", "message"), [
    ({"ACTION": "Install"}, "set by this module"),
    ({"/pid": KEY}, "set by this module"),
    ({"CONFIGURATIONFILE": "x.ini"}, "set by this module"),
    ({"SQLSYSADMINACCOUNTS": "x"}, "not an upgrade parameter"),
    ({"UpdateSource": 'C:\\x" /ACTION=Uninstall'}, "without quotes"),
    ({"UpdateSource": "a\nb"}, "without quotes or control"),
    ({"Update Source": "x"}, "not a setup parameter name"),
    ({"UpdateEnabled": "False", "UPDATEENABLED": "True"}, "given twice"),
    (["UpdateEnabled=False"], "dictionary"),
    ({"ISSVCPASSWORD": ["x"]}, "must be a string"),
])
def test_extra_args_are_checked_as_data(extra: object, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        su.validate_extra_args(extra)


def test_extra_args_values() -> None:
    assert su.validate_extra_args({"/UpdateEnabled": False, "IndicateProgress": True, "FTUpgradeOption": "Import"}) == \
        {"UPDATEENABLED": "False", "INDICATEPROGRESS": "True", "FTUPGRADEOPTION": "Import"}
    assert su.masked(["/ISSVCPASSWORD=s3cret", "/Q"]) == ["/ISSVCPASSWORD=********", "/Q"]


def test_the_product_key() -> None:
    assert su.choose_product_key(KEY, False, False) == su.Edition(KEY, "option")
    assert su.choose_product_key(None, True, False) == su.Edition(None, "media")
    assert su.choose_product_key(None, False, True) == su.Edition(None, "evaluation")
    with pytest.raises(PlanError, match="Evaluation edition") as refused:
        su.choose_product_key(None, False, False)
    assert "evaluation=true" in str(refused.value)
    with pytest.raises(PlanError, match="five groups") as bad:
        su.choose_product_key("not-a-key", True, False)
    assert "not-a-key" not in str(bad.value)


@pytest.mark.parametrize(("code", "outcome", "text", "facility", "error"), [
    (0, "success", "0x00000000", None, None),
    (3010, "reboot_required", "0x00000BC2", None, None),
    (-2068119551, "failed", "0x84BB0001", 1211, 1),
    (-2061893606, "failed", "0x851A001A", 1306, 26),
    (-2067919934, "failed", "0x84BE0BC2", 1214, 3010),
    (1, "failed", "0x00000001", 0, 1),
])
def test_exit_codes(code: int, outcome: str, text: str, facility: int | None, error: int | None) -> None:
    read = su.interpret_exit_code(code)
    assert (read.outcome, read.hex, read.facility, read.error) == (outcome, text, facility, error)


def test_summary_of_a_passed_upgrade() -> None:
    summary = su.parse_summary((DATA / "summary_upgrade_passed.txt").read_text(encoding="utf-8"))
    assert summary["final_result"] == "Passed" and summary["exit_code"] == 0
    assert summary["requested_action"] == "Upgrade" and summary["start_time"] == "2024-05-14 22:03:11"
    assert summary["failed_rules"] == [] and summary["failed_features"] == []
    assert [f["feature"] for f in summary["features"]] == [
        "Database Engine Services", "SQL Server Replication", "Full-Text and Semantic Extractions for Search"]
    assert summary["rules_report_file"].endswith("SystemConfigurationCheck_Report.htm")
    assert "exit_message" not in summary  # absent lines are absent keys


def test_summary_of_the_single_user_race() -> None:
    summary = su.parse_summary((DATA / "summary_recovery_handle.txt").read_text(encoding="utf-8"))
    assert summary["exit_code"] == -2061893606
    assert summary["failed_features"] == ["Database Engine Services", "SQL Server Replication"]
    engine = summary["features"][0]
    assert engine["error_code"] == "0x851A001A" and engine["reason"].startswith("An error occurred")
    assert engine["error_description"].startswith("Wait on the Database Engine recovery handle failed")
    text = su.setup_failure_text(su.interpret_exit_code(summary["exit_code"]), summary)
    assert "0x851A001A" in text and "Database Engine Services" in text


def test_summary_of_a_failed_rule() -> None:
    summary = su.parse_summary((DATA / "summary_rule_failed.txt").read_text(encoding="utf-8"))
    assert summary["failed_rules"] == ["WmiServiceStateCheck"]  # by id; the exit message's title is not a second rule
    assert summary["exit_facility_code"] == 1211 and summary["exit_error_code"] == 1
    assert summary["exit_message"].startswith('Rule "WMI service state check" failed')
    assert "WmiServiceStateCheck" in su.setup_failure_text(su.interpret_exit_code(-2068119551), summary)


@pytest.mark.parametrize("text", [None, "", "garbage\n\x00\n",
                                  "Overall summary:\n  Exit code (Decimal):  not a number\n"])
def test_summary_that_says_little_is_read_without_error(text: str | None) -> None:
    summary = su.parse_summary(text)
    assert summary["failed_rules"] == [] and "exit_code" not in summary


DBS = [{"name": "CM_P01", "state": "ONLINE", "user_access": "MULTI_USER"},
       {"name": "master", "state": "ONLINE", "user_access": "MULTI_USER"}]


def read(version: str = "15.0.2000.5", databases: list[dict[str, str]] | None = None, state: str = "running",
         connected: bool = True) -> dict[str, object]:
    return {"instance": {"service": "MSSQLSERVER", "service_state": state, "version": version},
            "connected": connected, "connect_error": None if connected else "error 2", "databases": databases or DBS,
            "agent_state": "running"}


def test_verification_of_an_upgraded_instance() -> None:
    assert su.verification_problems(read(), "15.0.2000.5", True, "SQLSERVERAGENT") == []
    problems = su.verification_problems(
        read("13.0.6300.2", [{"name": "CM_P01", "state": "ONLINE", "user_access": "SINGLE_USER"},
                             {"name": "SUSDB", "state": "RECOVERY_PENDING", "user_access": "MULTI_USER"}]),
        "15.0.2000.5", True, "SQLSERVERAGENT")
    assert problems == ["the instance reports version 13.0.6300.2, below the target 15.0.2000.5",
                        "database CM_P01 is SINGLE_USER (not MULTI_USER)", "database SUSDB is RECOVERY_PENDING"]
    stopped = su.verification_problems({**read(state="stopped", connected=False), "agent_state": "stopped"},
                                       "15.0.2000.5", True, "SQLSERVERAGENT")
    assert any("MSSQLSERVER is stopped" in p for p in stopped)
    assert any("does not answer" in p for p in stopped)
    assert any("SQLSERVERAGENT ran before setup" in p for p in stopped)
