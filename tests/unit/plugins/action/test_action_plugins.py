"""The action plugins' check, apply and failure paths, driven by recorded executor outputs (test_data/*.json,
made by tests/tools/record_executor_outputs.py): no host, no twin, no WinRM. Each test replays the recorded
results in order and asserts what the plugin sends and what the user gets (held to the module's RETURN)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest

from ansible_collections.configmgr.sql_upgrade.plugins.action import win_service_quiesce, wmi_disable
from pscontract import check_result, contract_for

DATA = Path(__file__).parent / "test_data"
SCHEMA = json.loads((Path(__file__).resolve().parents[4] / "plugins" / "plugin_utils" / "_window"
                     / "journal.schema.json").read_text(encoding="utf-8"))
PLUGINS = {"win_service_quiesce": win_service_quiesce.ActionModule, "wmi_disable": wmi_disable.ActionModule}


def recorded(name: str) -> list[dict[str, Any]]:
    return json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))["calls"]


def replay(module: str, args: dict[str, Any], results: list[dict[str, Any]], check: bool = False,
           ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run the action plugin with its module calls answered, in order, by `results`; (result, sent args)."""
    sent: list[dict[str, Any]] = []
    answers = iter(results)
    plugin = object.__new__(PLUGINS[module])
    # The recordings were made as run r-recording (tests/tools/record_executor_outputs.py); a test of another
    # run says so with run_id: None.
    args = {"run_id": "r-recording", **args}
    plugin._task = SimpleNamespace(args={k: v for k, v in args.items() if v is not None}, check_mode=check,
                                   diff=True, async_val=0, action=module)
    plugin._connection = SimpleNamespace(_shell=SimpleNamespace(tmpdir="C:\\Windows\\TEMP\\ansible"))

    def execute_module(module_name: str, module_args: dict[str, Any], task_vars: dict[str, Any]) -> dict[str, Any]:
        assert module_name == f"configmgr.sql_upgrade.{module}"
        sent.append(module_args)
        answer = next(answers, None)
        assert answer is not None, f"unexpected module call {len(sent)}: {module_args.get('_phase')}"
        return json.loads(json.dumps(answer))

    plugin._execute_module = execute_module  # type: ignore[method-assign]
    result = plugin.run(task_vars={"inventory_hostname": "site01"})
    assert check_result(contract_for(f"configmgr.sql_upgrade.{module}").returns, result, module, True) == []
    return result, sent


def results_of(name: str) -> list[dict[str, Any]]:
    return [call["result"] for call in recorded(name)]


def test_check_mode_gathers_plans_and_sends_nothing_else() -> None:
    result, sent = replay("win_service_quiesce", {"processes": ["Microsoft.ConfigurationManagement"]},
                          results_of("quiesce_fresh"), check=True)
    assert [s["_phase"] for s in sent] == ["gather"]
    assert result["changed"] is True and not result.get("failed")
    decisions = {d["name"]: d for d in result["plan"]}
    assert decisions["SMS_EXECUTIVE"]["action"] == "stop" and decisions["SMS_EXECUTIVE"]["source"] == "configmgr"
    assert decisions["WinRM"]["action"] == "keep" and decisions["MSSQLSERVER"]["action"] == "keep"
    assert "SMS_EXECUTIVE" in result["stopped"] and "SMS_EXECUTIVE" in result["diff"]["after"]
    assert "Microsoft.ConfigurationManagement" in [p["name"] for p in result["ended_processes"]]


def test_apply_sends_the_plan_and_a_valid_journal_first_and_reports_what_the_executor_applied() -> None:
    calls = recorded("quiesce_fresh")
    result, sent = replay("win_service_quiesce", {"processes": ["Microsoft.ConfigurationManagement"]},
                          [c["result"] for c in calls])
    assert [s["_phase"] for s in sent] == ["gather", "apply"]
    apply = sent[1]
    assert apply["_plan"] == calls[1]["module_args"]["_plan"]  # the same gather plans the same operations
    journal = json.loads(apply["_journal_before"])
    jsonschema.validate(journal, SCHEMA)
    # The window's lease starts with its first change: the watchdog is registered before the first stop.
    assert apply["_plan"][0] == {"op": "register_watchdog", "name": "\\configmgr.sql_upgrade\\watchdog", "minutes": 60}
    assert journal["lease_minutes"] == 60
    assert journal["services"]["status"] == "quiesced"
    assert journal["services"]["records"]["SMS_EXECUTIVE"] == {"start_mode": "auto", "state": "running"}
    assert apply["_journal_after"] is None
    applied = calls[1]["result"]["applied"]
    # Only what the executor really stopped is reported; a stop that found the service stopped is not.
    assert result["stopped"] == [op["name"] for op in applied if op["op"] == "stop" and op["result"] == "stopped"]
    assert {op["result"] for op in applied if op["op"] == "stop"} == {"stopped", "already_stopped"}
    assert "smstsmgr" not in result["stopped"] and "SMS_EXECUTIVE" in result["stopped"]
    assert result["changed"] is True and result["run_id"] == journal["run_id"]
    # Stop order: dependents before what they depend on; every set_mode disabled comes before the first stop.
    kinds = [op["op"] for op in apply["_plan"]]
    assert kinds.index("stop") > max(i for i, k in enumerate(kinds) if k == "set_mode")


def test_a_second_quiesce_changes_nothing_and_makes_no_apply_call() -> None:
    result, sent = replay("win_service_quiesce", {}, results_of("quiesce_again"))
    assert [s["_phase"] for s in sent] == ["gather"]
    assert result["changed"] is False and result["stopped"] == [] and result["disabled"] == []


def test_a_failed_operation_fails_the_task_naming_host_service_and_undo() -> None:
    result, sent = replay("win_service_quiesce", {"timeout": 5, "configmgr_stop_timeout": 30,
                                                  "end_hung_services": False}, results_of("quiesce_stuck"))
    assert [s["_phase"] for s in sent] == ["gather", "apply"]
    assert result["failed"] is True
    assert result["msg"].startswith("site01: stop of service SMS_EXECUTIVE failed")
    assert "state=restored" in result["msg"]
    assert result["failed_op"]["op"] == "stop" and result["failed_op"]["name"] == "SMS_EXECUTIVE"
    assert "SMS_EXECUTIVE" not in result["stopped"]  # only what the executor finished is reported as done


def test_a_hung_stop_ends_the_services_own_process_and_says_so() -> None:
    result, sent = replay("win_service_quiesce", {"timeout": 5, "configmgr_stop_timeout": 30,
                                                  "end_hung_configmgr": True}, results_of("quiesce_hung_ended"))
    assert [s["_phase"] for s in sent] == ["gather", "apply"] and sent[1]["end_hung_configmgr"] is True
    # Configuration Manager's service stops with its own timeout and end_hung, the others with the task's.
    stops = {op["name"]: op for op in sent[1]["_plan"] if op["op"] == "stop"}
    assert stops["SMS_EXECUTIVE"]["timeout"] == 30 and stops["SMS_EXECUTIVE"]["end_hung"] is True
    assert "timeout" not in stops["VMTools"]
    assert not result.get("failed"), result.get("msg")
    assert "SMS_EXECUTIVE" in result["stopped"]
    [warning] = [w for w in result["warnings"] if "hung in STOP_PENDING" in w]
    assert warning.startswith("site01: SMS_EXECUTIVE did not stop within 30 seconds") and "process (id " in warning


def test_restore_starts_what_was_running_and_marks_the_journal_restored_after() -> None:
    result, sent = replay("win_service_quiesce", {"state": "restored"}, results_of("restore"))
    apply = sent[1]
    assert apply["_journal_before"] is None
    after = json.loads(apply["_journal_after"])
    jsonschema.validate(after, SCHEMA)
    assert after["services"]["status"] == "restored"
    assert "SMS_EXECUTIVE" in result["started"] and "SMS_EXECUTIVE" in result["restored"]
    assert {e["action"] for e in result["plan"]} <= {"restore", "none", "skip"}


def test_wmi_disable_stops_dependents_then_winmgmt_and_checks_it_stays_stopped() -> None:
    result, sent = replay("wmi_disable", {"state": "disabled"}, results_of("wmi_disable"))
    plan = sent[1]["_plan"]
    assert plan[0] == {"op": "set_mode", "name": "Winmgmt", "start_mode": "disabled"}
    assert [op["op"] for op in plan][-2:] == ["stop", "expect_stopped"] and plan[-2]["name"] == "Winmgmt"
    assert result["wmi"]["status"] == "disabled" and result["disabled"] == ["Winmgmt"]
    jsonschema.validate(json.loads(sent[1]["_journal_before"]), SCHEMA)


def test_wmi_enable_puts_back_the_recorded_mode_and_dependents() -> None:
    result, sent = replay("wmi_disable", {"state": "enabled"}, results_of("wmi_enable"))
    plan = sent[1]["_plan"]
    assert plan[:2] == [{"op": "set_mode", "name": "Winmgmt", "start_mode": "auto"},
                        {"op": "start", "name": "Winmgmt"}]
    assert result["wmi"]["status"] == "enabled" and "Winmgmt" in result["started"]


@pytest.mark.parametrize("text", ['{"schema": 1', '{"schema": 2, "run_id": "r", "host": "h", "created": "", '
                                  '"updated": ""}', '[]'])
def test_a_corrupt_journal_is_refused_before_any_change(text: str) -> None:
    gather = results_of("quiesce_again")[0]
    gather["journal_text"] = text
    result, sent = replay("win_service_quiesce", {"state": "restored"}, [gather])
    assert [s["_phase"] for s in sent] == ["gather"]
    assert result["failed"] is True and result["changed"] is False
    assert "corrupt or was tampered with" in result["msg"] and "nothing was changed" in result["msg"]


def test_a_failed_gather_is_reported_with_the_host_name() -> None:
    result = replay("wmi_disable", {}, [{"failed": True, "msg": "Access is denied", "changed": False}])[0]
    assert result == {"failed": True, "changed": False, "msg": "site01: gathering services failed: Access is denied"}


@pytest.mark.parametrize(("module", "args", "words"), [
    ("win_service_quiesce", {"keep": ["SMS\\x"]}, "contains / or \\"),
    ("win_service_quiesce", {"_plan": []}, "internal to the action plugin"),
    ("wmi_disable", {"settle_seconds": -1}, "between 0 and 3600"),
])
def test_bad_input_makes_no_module_call(module: str, args: dict[str, Any], words: str) -> None:
    result, sent = replay(module, args, [])
    assert sent == [] and result["failed"] is True and words in result["msg"]
    assert result["msg"].startswith("site01: ") and "nothing was sent to the host" in result["msg"]


def test_a_task_of_another_run_is_refused_naming_the_holder_and_takeover_continues_it() -> None:
    gather = results_of("quiesce_again")[0]
    holder = json.loads(gather["journal_text"])
    result, sent = replay("win_service_quiesce", {"state": "restored", "run_id": "r-other"}, [gather])
    assert [s["_phase"] for s in sent] == ["gather"]
    assert result["failed"] is True and result["changed"] is False
    assert f"held by run {holder['run_id']} (started {holder['created']} by " in result["msg"]
    assert f"takeover: {holder['run_id']}" in result["msg"] and "nothing was changed" in result["msg"]
    # Check mode refuses nothing: it warns that a real run would be refused.
    checked, _sent = replay("win_service_quiesce", {"state": "restored", "run_id": "r-other"}, [gather], check=True)
    assert not checked.get("failed") and any("a real run would be refused" in w for w in checked["warnings"])
    # Taking over: the journal is continued under its own run id, owned by this controller now.
    calls = recorded("restore")
    taken, sent = replay("win_service_quiesce", {"state": "restored", "run_id": "r-other",
                                                 "takeover": holder["run_id"]}, [c["result"] for c in calls])
    assert not taken.get("failed"), taken.get("msg")
    assert any("took this host over from run" in w for w in taken["warnings"])
    after = json.loads(sent[1]["_journal_after"])
    assert after["run_id"] == holder["run_id"] and after["services"]["status"] == "restored"
    assert sent[1]["_journal_expected"] == hashlib.sha256(calls[0]["result"]["journal_text"].encode()).hexdigest()


def test_an_unknown_instance_fails_listing_the_instances_found() -> None:
    result, sent = replay("win_service_quiesce", {"instance": "SQL2022"}, results_of("quiesce_fresh")[:1], check=True)
    assert [s["_phase"] for s in sent] == ["gather"] and result["failed"] is True
    assert "option instance 'SQL2022' names no SQL Server instance on this host" in result["msg"]
    assert "instances found from their services: MSSQLSERVER)" in result["msg"]  # not MICROSOFT##WID


def test_a_stop_pattern_that_catches_a_windows_service_and_an_unmatched_process_warn() -> None:
    result, _sent = replay("win_service_quiesce", {"stop": ["SMS*"], "processes": ["NoSuchConsole"]},
                           results_of("quiesce_fresh")[:1], check=True)
    assert not result.get("failed"), result.get("msg")
    warned = "\n".join(result["warnings"])
    assert "SMS is a Windows service" in warned and "SMSProxy is a Windows service" in warned
    assert "SMS_EXECUTIVE is a Windows service" not in warned
    assert "processes entry 'NoSuchConsole' matches no running process on this host" in warned


def test_warnings_name_their_host_once() -> None:
    result, _sent = replay("win_service_quiesce", {"keep": ["NoSuchAgent", "NoSuchAgent"]},
                           results_of("quiesce_fresh")[:1], check=True)
    unmatched = [w for w in result["warnings"] if "NoSuchAgent" in w]
    assert unmatched == ["site01: keep/stop pattern 'NoSuchAgent' matches no service on this host (a typo?); "
                         "it changed nothing"]
    assert all(w.startswith("site01: ") for w in result["warnings"])


def test_ended_processes_are_in_the_diff_apart_from_the_services() -> None:
    result, _sent = replay("win_service_quiesce", {"processes": ["Microsoft.ConfigurationManagement"]},
                           results_of("quiesce_fresh"), check=True)
    console = next(p for p in result["ended_processes"] if p["name"] == "Microsoft.ConfigurationManagement")
    key = f"Microsoft.ConfigurationManagement (process id {console['process_id']})"
    assert result["diff"]["before"]["processes/ended"][key] == "running"
    assert result["diff"]["after"]["processes/ended"][key].startswith("ended, not restored (named in processes")
    assert result["diff"]["after"]["SMS_EXECUTIVE"] == {"start_mode": "disabled", "state": "stopped"}


@pytest.mark.parametrize("state", ["restored", "verified"])
def test_check_mode_without_a_journal_says_so_instead_of_failing(state: str) -> None:
    # What a --check run of quiesce then restore (or verify) meets: the quiesce in check mode wrote nothing.
    result, sent = replay("win_service_quiesce", {"state": state}, results_of("quiesce_fresh")[:1], check=True)
    assert [s["_phase"] for s in sent] == ["gather"]
    assert not result.get("failed") and result["changed"] is False
    assert result["msg"].startswith("check mode: there is no open service window in the journal at ")
    # A real run without a journal still fails: there is nothing recorded.
    real, _sent = replay("win_service_quiesce", {"state": state}, results_of("quiesce_fresh")[:1])
    assert real["failed"] is True and "no service journal at" in real["msg"]


def test_verified_passes_on_the_window_and_names_each_service_that_drifted() -> None:
    gather = results_of("quiesce_again")[0]
    result, sent = replay("win_service_quiesce", {"state": "verified", "run_id": "r-someone-else"}, [gather])
    assert [s["_phase"] for s in sent] == ["gather"]  # read only, and open to any run
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False and result["drift"] == [] and "SMS_EXECUTIVE" in result["checked"]
    # CcmExec was started again by something after the quiesce.
    drifted = json.loads(json.dumps(gather))
    ccm = next(s for s in drifted["services"] if s["name"] == "CcmExec")
    ccm.update(state="running", start_mode="auto")
    failed, _sent = replay("win_service_quiesce", {"state": "verified"}, [drifted])
    assert failed["failed"] is True and failed["changed"] is False
    assert failed["drift"] == [{"name": "CcmExec", "expected": "stopped and disabled", "actual": "running and auto"}]
    assert "CcmExec is running and auto (the window needs it stopped and disabled)" in failed["msg"]
