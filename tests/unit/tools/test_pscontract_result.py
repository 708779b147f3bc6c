"""twin = spec: results against RETURN."""

from pscontract import check_module_result, check_result, contract_for

RETURN = {
    "name": {"returned": "always", "type": "str"},
    "exists": {"returned": "success", "type": "bool"},
    "count": {"returned": "when state is counted", "type": "int"},
    "services": {"returned": "success", "type": "list", "elements": "dict", "contains": {
        "name": {"returned": "success", "type": "str"},
        "pid": {"returned": "success", "type": "int"},
    }},
    "info": {"returned": "success", "type": "complex", "contains": {"mode": {"returned": "always", "type": "str"}}},
}
GOOD = {"changed": False, "name": "x", "exists": True, "services": [{"name": "a", "pid": 4}], "info": {"mode": "m"}}


def test_conforming_result():
    assert check_result(RETURN, GOOD, "m") == []
    assert check_result(RETURN, {**GOOD, "count": 3, "warnings": ["w"], "invocation": {}}, "m") == []


def test_always_key_missing():
    result = {k: v for k, v in GOOD.items() if k != "name"}
    assert check_result(RETURN, result, "m") == ["m: RETURN name is 'returned: always' but missing from the result"]


def test_success_key_missing_only_on_success():
    result = {k: v for k, v in GOOD.items() if k != "exists"}
    assert check_result(RETURN, result, "m") == ["m: RETURN exists is 'returned: success' but missing from the result"]
    assert check_result(RETURN, {"name": "x", "failed": True, "msg": "boom"}, "m") == []


def test_undocumented_key_and_wrong_types():
    problems = check_result(RETURN, {**GOOD, "extra": 1, "exists": "yes", "count": True}, "m")
    assert problems == [
        "m: result key 'extra' is not documented in RETURN",
        "m: RETURN exists is documented as bool but the result has str 'yes'",
        "m: RETURN count is documented as int but the result has bool True",
    ]


def test_nested_contains():
    result = {**GOOD, "services": [{"name": "a", "pid": "4", "path": "p"}], "info": {}}
    assert check_result(RETURN, result, "m") == [
        "m: result key services[0].path is not documented in RETURN",
        "m: RETURN services[0].pid is documented as int but the result has str '4'",
        "m: RETURN info.mode is 'returned: always' but missing from the result",
    ]


def test_diff_only_when_supported():
    result = {**GOOD, "diff": {"before": "", "after": ""}}
    assert check_result(RETURN, result, "m") == ["m: result key 'diff' is not documented in RETURN"]
    assert check_result(RETURN, result, "m", supports_diff=True) == []


def test_real_return_docs():
    assert check_module_result("ansible.windows.win_ping", {"changed": False, "ping": "pong"}) == []
    assert check_module_result("ansible.windows.win_ping", {"changed": False}) == [
        "win_ping: RETURN ping is 'returned: success' but missing from the result"]
    service = contract_for("ansible.windows.win_service")
    assert service.supports_diff is True  # it writes $module.Diff
    assert contract_for("ansible.windows.win_ping").supports_diff is False
    assert service.check_result({"changed": True, "exists": True, "name": "Spooler", "state": 7}) == [
        "win_service: RETURN state is documented as str but the result has int 7"]


def test_foreign_module_keys_its_code_returns_are_tolerated():
    info = contract_for("ansible.windows.win_service_info")
    # ansible.windows win_service_info.ps1 returns these, its RETURN omits them (upstream documentation gap).
    assert {"win32_exit_code", "failure_actions_on_non_crash_failure"} <= info.tolerated_keys
    service = {"name": "WinRM", "win32_exit_code": 0, "failure_actions_on_non_crash_failure": False}
    assert info.check_result({"changed": False, "exists": True, "services": [service]}) == []
    assert info.check_result({"changed": False, "exists": True, "services": [{**service, "made_up": 1}]}) == [
        "win_service_info: result key services[0].made_up is not documented in RETURN"]


def test_own_modules_tolerate_nothing():
    from pscontract import REPO, load_module_contract
    for ps1 in sorted((REPO / "plugins" / "modules").glob("*.ps1")):
        assert load_module_contract(ps1).tolerated_keys == frozenset()
