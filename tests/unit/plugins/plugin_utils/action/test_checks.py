"""Controller-side option validation (_action/checks.py: ansible-core's ArgumentSpecValidator with the spec of
_action/specs.py, then the domain checks), and the summary of operations (_window/ops.py)."""

from __future__ import annotations

import pytest

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.checks import validate
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.errors import PlanError
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.ops import summarize


def validate_quiesce_args(args: dict) -> dict:
    return validate("win_service_quiesce", args)


def validate_wmi_args(args: dict) -> dict:
    return validate("wmi_disable", args)


def test_defaults() -> None:
    opts = validate_quiesce_args({})
    assert opts == {
        "state": "quiesced",
        "keep": [],
        "stop": [],
        "disable": True,
        "processes": [],
        "instance": "MSSQLSERVER",
        "sql_sessions": [],
        "timeout": 120,
        "missing_journal_ok": False,
        "end_hung_services": True,
        "configmgr_stop_timeout": 1800,
        "end_hung_configmgr": False,
        "lease_minutes": 60,
        "run_id": None,
        "takeover": None,
    }
    assert validate_wmi_args({}) == {"state": "disabled", "timeout": 120, "settle_seconds": 5, "run_id": None,
                                     "takeover": None}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"state": "paused"}, "value of state must be one of: quiesced, restored, verified, got: paused"),
        ({"stop": [""]}, r"option stop\[0\] is an empty pattern"),
        ({"keep": "  "}, r"option keep\[0\] is an empty pattern"),
        ({"bogus": 1}, "unsupported option.*bogus. Supported parameters include: configmgr_stop_timeout, disable"),
        ({"_plan": []}, "option _plan is internal"),
        ({"timeout": "soon"}, "argument 'timeout' is of type str and we were unable to convert to int"),
        ({"timeout": 5.5}, r"argument 'timeout' is of type float .*\"5\.5\" cannot be converted to an int"),
        ({"timeout": "7.25"}, "cannot be converted to an int"),
        ({"timeout": True}, "option timeout must be an integer, got True"),
        ({"timeout": 0}, "between 1 and 86400"),
        ({"disable": "maybe"}, "argument 'disable' .* unable to convert to bool"),
        ({"sql_sessions": "x"}, "Elements value for option 'sql_sessions' .* unable to convert to dict"),
        ({"processes": ["*"]}, r"option processes\[0\] must be a process name without wildcards"),
        ({"processes": ["C:\\x.exe"]}, r"processes\[0\]"),
        ({"instance": ""}, "option instance"),
        ({"sql_sessions": [{"program_name": "x"}]}, r"sql_sessions\[0\] needs host_process_id"),
    ],
)
def test_bad_quiesce_args(args: dict, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        validate_quiesce_args(args)


def test_bad_wmi_args() -> None:
    with pytest.raises(PlanError, match="value of state must be one of: disabled, running_for_setup, enabled"):
        validate_wmi_args({"state": "off"})
    with pytest.raises(PlanError, match="unsupported option"):
        validate_wmi_args({"keep": ["x"]})


def test_hostile_patterns_pass_through_intact() -> None:
    hostile = ["a'; Stop-Computer; '", "$(whoami)", "`n", "x\ny", "\u00fc\u2603"]
    assert validate_quiesce_args({"stop": hostile, "disable": "yes"})["stop"] == hostile


def test_summarize() -> None:
    ops = [
        {"op": "set_mode", "name": "A", "start_mode": "disabled"},
        {"op": "stop", "name": "A"},
        {"op": "set_mode", "name": "B", "start_mode": "auto"},
        {"op": "start", "name": "B"},
        {"op": "end_process", "name": "console", "process_id": 9, "reason": "named", "result": "ended"},
        {"op": "end_process", "name": "helper", "process_id": 12, "reason": "left behind", "result": "gone"},
    ]
    assert summarize(ops) == {
        "stopped": ["A"],
        "disabled": ["A"],
        "started": ["B"],
        "restored": ["A", "B"],
        "ended_processes": [{"name": "console", "process_id": 9, "reason": "named"}],
    }


def test_options_follow_ansibles_type_conversions() -> None:
    opts = validate_quiesce_args({"keep": "VMTools,zabbix*", "timeout": 30.0, "processes": "a,b"})
    assert opts["keep"] == ["VMTools", "zabbix*"] and opts["timeout"] == 30 and opts["processes"] == ["a", "b"]
    assert validate_wmi_args({"timeout": "45"})["timeout"] == 45


@pytest.mark.parametrize("name", ["MSSQLSERVER", "SQL2022", "_x", "Cm$1", "ÜBER", "A234567890123456"])
def test_instance_names_sql_server_accepts(name: str) -> None:
    assert validate_quiesce_args({"instance": name})["instance"] == name


@pytest.mark.parametrize("name", ["MSSQLSERVER; DROP DATABASE x", "1SQL", "A2345678901234567", "SQL-2022", "SQL 22",
                                  "", "SQL\\X", "a'b", "x\n"])
def test_instance_names_sql_server_refuses_are_refused(name: str) -> None:
    with pytest.raises(PlanError, match="option instance must be a SQL Server instance name"):
        validate_quiesce_args({"instance": name})
