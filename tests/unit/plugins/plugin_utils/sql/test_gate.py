"""The gate before KB step 5 (_sql/gate.py) and its options (checks.validate, with the spec of _action/specs.py)."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.checks import validate
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.errors import PlanError
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._sql.gate import (
    blocking_sessions,
    check_instance,
    describe,
)


def validate_gate_args(args: dict[str, Any]) -> dict[str, Any]:
    return validate("sql_single_user_check", args)


SESSIONS = [
    {"session_id": 53, "program_name": "SMS_EXECUTIVE", "host_name": "CM01", "login_name": "CONTOSO\\CM01$",
     "host_process_id": 5136, "status": "sleeping"},
    {"session_id": 54, "program_name": "SMS_EXECUTIVE", "host_name": "CM01", "login_name": "CONTOSO\\CM01$",
     "host_process_id": 5136, "status": "sleeping"},
    {"session_id": 60, "program_name": "Zabbix ", "host_name": "CM01", "login_name": "NT SERVICE\\zabbix",
     "host_process_id": 5532, "status": "sleeping"},
]


def test_every_session_blocks_but_the_allowed_programs() -> None:
    assert [s["session_id"] for s in blocking_sessions(SESSIONS, [])] == [53, 54, 60]
    assert [s["session_id"] for s in blocking_sessions(SESSIONS, [" zabbix"])] == [53, 54]


def test_blocking_sessions_are_described_by_program_host_and_login() -> None:
    assert describe(SESSIONS[:2]) == "SMS_EXECUTIVE on CM01 as CONTOSO\\CM01$ (2 sessions: 53, 54)"
    assert describe([{"session_id": 7}]) == "(no program name) on ? as ? (1 session: 7)"


def test_an_instance_that_is_not_registered_is_refused_listing_the_others() -> None:
    check_instance("mssqlserver", ["MSSQLSERVER"])
    with pytest.raises(PlanError, match=r"instance 'SQL2022' is not on this host \(instances registered: MSSQLSERVER"):
        check_instance("SQL2022", ["MSSQLSERVER"])


def test_gate_options() -> None:
    assert validate_gate_args({}) == {"instance": "MSSQLSERVER", "login_user": None, "login_password": None,
                                      "allowed_programs": [], "wait_timeout": 0, "poll_interval": 5,
                                      "fail_when_blocked": True}
    assert validate_gate_args({"allowed_programs": "a, b", "wait_timeout": "60"})["allowed_programs"] == ["a", "b"]


@pytest.mark.parametrize(("args", "words"), [
    ({"instance": "MSSQLSERVER; DROP DATABASE x"}, "option instance must be a SQL Server instance name"),
    ({"login_password": "x"}, "missing parameter(s) required by 'login_password': login_user"),
    ({"poll_interval": 0}, "between 1 and 300"),
    ({"wait_timeout": 5.5}, "unable to convert to int"),
    ({"allowed_programs": [""]}, "list of program names"),
    ({"query": "SELECT 1"}, "unsupported option(s) query"),
])
def test_bad_gate_options_are_named(args: dict[str, Any], words: str) -> None:
    with pytest.raises(PlanError) as err:
        validate_gate_args(args)
    assert words in str(err.value)


def test_a_login_that_cannot_see_other_sessions_is_named_with_its_grant() -> None:
    from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._sql.gate import visibility_problem
    assert visibility_problem({"login": "CM01\\Administrator", "sysadmin": True, "view_server_state": False}) is None
    assert visibility_problem({"login": "x", "sysadmin": False, "view_server_state": True}) is None
    problem = visibility_problem({"login": "CONTOSO\\svc-ansible", "sysadmin": False, "view_server_state": False})
    assert problem is not None and "GRANT VIEW SERVER STATE TO [CONTOSO\\svc-ansible];" in problem
    assert visibility_problem(None) == "the connection did not say what its login may see"
