"""The shared action run: what reaches the user when the plan cannot be written down in the journal."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from ansible_collections.configmgr.sql_upgrade.plugins.action.win_service_quiesce import ActionModule

WINDOWS = "Microsoft\u00ae Windows\u00ae Operating System"


def gathered(services: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "changed": False,
        "journal_path": "C:\\ProgramData\\configmgr.sql_upgrade\\journal.json",
        "services": services,
        "journal_text": None,
        "host_time": "2026-11-25T01:00:00Z",
        "host_name": "CM01",
        "processes": [],
    }


def service(name: str, product: str = "", pid: int = 100) -> dict[str, Any]:
    return {"name": name, "display_name": name, "start_mode": "auto", "state": "running", "dependencies": [],
            "process_id": pid, "path": "C:\\x.exe", "product_name": product, "company_name": ""}


def action(calls: list[dict[str, Any]], answer: dict[str, Any]) -> ActionModule:
    plugin = object.__new__(ActionModule)
    plugin._task = SimpleNamespace(args={"state": "quiesced"}, check_mode=False, diff=False, async_val=0,
                                   action="win_service_quiesce")
    plugin._connection = SimpleNamespace(_shell=SimpleNamespace(tmpdir="C:\\Windows\\TEMP\\ansible"))

    def execute_module(module_name: str, module_args: dict[str, Any], task_vars: dict[str, Any]) -> dict[str, Any]:
        calls.append(module_args)
        return answer

    plugin._execute_module = execute_module  # type: ignore[method-assign]
    return plugin


def test_a_plan_the_journal_refuses_to_record_fails_cleanly_and_changes_nothing():
    # A third-party service whose name is longer than the journal accepts: it would be stopped, but its prior
    # state could not be recorded, so nothing may be changed.
    long_name = "Agent" + "x" * 300
    calls: list[dict[str, Any]] = []
    plugin = action(calls, gathered([service("WinRM", WINDOWS, 10), service("MSSQLSERVER", "Microsoft SQL Server", 11),
                                     service(long_name, pid=20)]))
    outcome = plugin.run(task_vars={"inventory_hostname": "cm01"})
    assert outcome["msg"].startswith("cm01: ")
    assert outcome["failed"] is True and outcome["changed"] is False
    assert "cannot be recorded in the journal" in outcome["msg"] and "nothing was changed" in outcome["msg"]
    assert [c["_phase"] for c in calls] == ["gather"]  # no apply call was made
