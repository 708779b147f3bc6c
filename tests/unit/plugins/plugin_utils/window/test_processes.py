"""plan_processes: left-behind children (Toolhelp parent id + creation time), named processes, shared
svchost children, protected names, a kept service's own process, pending journal records; journal section."""

from __future__ import annotations

import pytest

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.errors import PlanError
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window import journal as jr
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.facts import (
    ProcessFact,
    ServiceFact,
    processes_from_gather,
)
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.journal import JournalError
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.processes import plan_processes

SERVICES = [
    ServiceFact("CcmExec", "auto", "running", process_id=100),
    ServiceFact("Spooler", "auto", "running", process_id=200),
    ServiceFact("SvcA", "auto", "running", process_id=300),
    ServiceFact("SvcB", "auto", "running", process_id=300),  # shared svchost
]
PROCS = [
    ProcessFact("CcmExec", 100, 8, created=1000),
    ProcessFact("spoolsv", 200, 8, created=1000),
    ProcessFact("svchost", 300, 8, created=1000),
    ProcessFact("powershell", 400, 100, created=2000),  # CcmExec's child
    ProcessFact("oldkid", 404, 100, created=500),  # parent id reused: created before CcmExec's process
    ProcessFact("splwow64", 408, 200, created=2000),  # child of a kept service
    ProcessFact("helper", 412, 300, created=2000),  # child of a shared process
    ProcessFact("Microsoft.ConfigurationManagement", 416, 5120, created=3000),
    ProcessFact("unread", 420, 100, created=0),  # creation time unreadable: no claim
]


def names(ops: list) -> list[tuple[str, int]]:
    return [(op["name"], op["process_id"]) for op in ops]


def test_left_behind_children_of_stopping_services_only_with_a_true_parent() -> None:
    ops = plan_processes(SERVICES, PROCS, ["CcmExec"])
    assert names(ops) == [("powershell", 400)]
    assert ops[0]["reason"] == "left behind by CcmExec (process id 100), which stops"
    assert ops[0]["created"] == 2000 and ops[0]["op"] == "end_process"


def test_a_shared_process_child_only_when_every_service_in_it_stops() -> None:
    assert names(plan_processes(SERVICES, PROCS, ["SvcA"])) == []
    ops = plan_processes(SERVICES, PROCS, ["SvcA", "SvcB"])
    assert names(ops) == [("helper", 412)] and "SvcA, SvcB" in ops[0]["reason"]


def test_named_processes_case_insensitive_with_or_without_exe() -> None:
    ops = plan_processes(SERVICES, PROCS, [], ["microsoft.configurationmanagement.exe"])
    assert names(ops) == [("Microsoft.ConfigurationManagement", 416)]
    assert ops[0]["reason"] == "named in processes (Microsoft.ConfigurationManagement)"
    assert plan_processes(SERVICES, PROCS, [], ["NotRunning"]) == []


def test_a_named_service_process_ends_with_its_service_or_is_an_error_when_kept() -> None:
    assert plan_processes(SERVICES, PROCS, ["CcmExec"], ["CcmExec"]) == [
        op for op in plan_processes(SERVICES, PROCS, ["CcmExec"]) if op["name"] != "CcmExec"
    ]
    with pytest.raises(PlanError, match="process of the service Spooler, which is kept"):
        plan_processes(SERVICES, PROCS, [], ["spoolsv"])


@pytest.mark.parametrize("name", ["svchost", "LSASS", "wsmprovhost.exe", "powershell"])
def test_protected_names_are_refused(name: str) -> None:
    with pytest.raises(PlanError, match="must not be ended"):
        plan_processes(SERVICES, PROCS, [], [name])


def test_pending_records_end_the_same_process_only() -> None:
    pending = [
        {"name": "oldkid", "process_id": 404, "created": 500, "reason": "left behind by X (process id 9), which stops"},
        {"name": "oldkid", "process_id": 408, "created": 2000, "reason": "id reused by another image"},
        {"name": "unread", "process_id": 420, "created": 7, "reason": "other creation time"},
    ]
    ops = plan_processes(SERVICES, PROCS, [], [], pending)
    assert names(ops) == [("oldkid", 404)] and ops[0]["reason"].endswith("(recorded by an earlier run)")


def test_processes_from_gather_refuses_malformed_entries() -> None:
    facts = processes_from_gather([{"name": "a", "process_id": 8, "parent_process_id": 4, "created": 9}])
    assert facts == [ProcessFact("a", 8, 4, 9)]
    with pytest.raises(PlanError, match="malformed"):
        processes_from_gather([{"name": "a", "process_id": "8"}])


def test_journal_records_ended_processes_once_and_validates_them() -> None:
    doc = jr.merge_services(None, {}, host="h", run_id="r-1", now="t1")
    ops = plan_processes(SERVICES, PROCS, ["CcmExec"], ["Microsoft.ConfigurationManagement"])
    doc = jr.add_processes(doc, ops, "t2")
    doc = jr.add_processes(doc, ops, "t3")
    assert [(p["name"], p["process_id"]) for p in jr.process_records(doc)] == names(ops)
    assert jr.parse(jr.dumps(doc)) == jr.with_undo(doc)
    doc["processes"][0]["process_id"] = -1
    with pytest.raises(JournalError, match="process_id must be a non-negative integer"):
        jr.validate(doc)
