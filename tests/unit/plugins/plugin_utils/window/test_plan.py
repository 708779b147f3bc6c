"""Unit tests of the pure quiesce / restore / WMI planning (plugins/plugin_utils/_window/)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.errors import PlanError
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window import journal as jr
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.classify import (
    Decision,
    QuiesceOptions,
    classify,
    close_over_dependents,
    local_sessions,
)
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.facts import (
    ServiceFact,
    facts_from_gather,
)
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.patterns import (
    unmatched_patterns,
    validate_patterns,
)
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.quiesce import (
    plan_quiesce,
    plan_restore,
    window_drift,
)
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.run import (
    Caller,
    RunDecision,
    decide_run,
    process_run_id,
)
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.verify import broken_promises
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.wmi import (
    plan_wmi_disable,
    plan_wmi_enable,
    plan_wmi_for_setup,
)

WINDOWS = "Microsoft\u00ae Windows\u00ae Operating System"


def svc(
    name: str, mode: str = "auto", state: str = "running", deps: tuple = (), pid: int = 0, product: str = ""
) -> ServiceFact:
    return ServiceFact(
        name=name, start_mode=mode, state=state, dependencies=tuple(deps), process_id=pid, product_name=product
    )


def site_server() -> list[ServiceFact]:
    return [
        svc("RpcEptMapper", pid=10, product=WINDOWS),
        svc("DcomLaunch", pid=11, product=WINDOWS),
        svc("RpcSs", deps=("RpcEptMapper", "DcomLaunch"), pid=12, product=WINDOWS),
        svc("WinRM", deps=("RPCSS", "HTTP"), pid=13, product=WINDOWS),
        svc("Winmgmt", deps=("RPCSS",), pid=14, product=WINDOWS),
        svc("iphlpsvc", deps=("RpcSs", "winmgmt"), pid=15, product=WINDOWS),
        svc("WinDefend", pid=16, product=WINDOWS),
        svc("SMS", mode="manual", state="stopped", product=WINDOWS),
        svc("SMSProxy", mode="manual", state="stopped", product=WINDOWS),
        svc("MSSQLSERVER", pid=20, product="Microsoft SQL Server"),
        svc("SQLSERVERAGENT", deps=("MSSQLSERVER",), pid=21, product="Microsoft SQL Server"),
        svc("MSSQL$MICROSOFT##WID", pid=22, product="Microsoft SQL Server"),
        svc("SQLWriter", pid=23, product="Microsoft SQL Server"),
        svc("SMS_EXECUTIVE", deps=("SMS_SITE_COMPONENT_MANAGER",), pid=30, product="Microsoft Configuration Manager"),
        svc("SMS_SITE_COMPONENT_MANAGER", pid=31, product="Microsoft Configuration Manager"),
        svc("SMS_SITE_VSS_WRITER", pid=32, product="Microsoft Configuration Manager"),
        svc("SMS_SITE_BACKUP", mode="manual", state="stopped", product="Microsoft Configuration Manager"),
        svc("CcmExec", deps=("winmgmt", "RpcSs"), pid=33, product="Microsoft Configuration Manager"),
        svc("AcmeBackupAgent", pid=40, product="Acme Backup"),
        svc("ContosoMonitor", mode="delayed", pid=41, product="Contoso Monitoring"),
        svc("VendorTool", deps=("ContosoMonitor",), pid=42),
    ]


def decisions(facts: list[ServiceFact], **kw: Any) -> dict[str, Decision]:
    opts = QuiesceOptions(**kw)
    return {d.name: d for d in close_over_dependents(classify(facts, opts), facts)}


def test_site_server_classification_every_trap() -> None:
    got = decisions(site_server())
    stop = {n for n, d in got.items() if d.action == "stop"}
    assert stop == {
        "SMS_EXECUTIVE",
        "SMS_SITE_COMPONENT_MANAGER",
        "SMS_SITE_VSS_WRITER",
        "SMS_SITE_BACKUP",
        "CcmExec",
        "AcmeBackupAgent",
        "ContosoMonitor",
        "VendorTool",
    }
    assert got["CcmExec"].source == "configmgr"  # under C:\Windows\CCM but Configuration Manager
    assert got["WinDefend"].source == "windows_core"  # under ProgramData but Windows
    assert got["SMS"].action == "keep" and got["SMSProxy"].action == "keep"  # Storage Migration Service
    assert got["MSSQL$MICROSOFT##WID"].source == "windows_core"  # Windows Internal Database
    assert got["MSSQLSERVER"].source == "instance"
    assert got["SQLSERVERAGENT"].source == "sql_server"
    assert got["WinRM"].source == "management_channel"
    assert got["RpcSs"].source == "management_channel"
    assert got["DcomLaunch"].source == "management_channel"  # transitive dependency of WinRM
    assert got["AcmeBackupAgent"].source == "third_party" and "Acme Backup" in got["AcmeBackupAgent"].reason


def test_user_pattern_sms_underscore_does_not_catch_storage_migration() -> None:
    got = decisions(site_server(), stop=("SMS_*",))
    assert got["SMS"].action == "keep"
    assert got["SMSProxy"].action == "keep"
    assert got["SMS_EXECUTIVE"].source == "user_stop"


def test_patterns_are_case_insensitive() -> None:
    got = decisions(site_server(), keep=("acmebackup*",))
    assert got["AcmeBackupAgent"].action == "keep"
    assert got["AcmeBackupAgent"].source == "user_keep"


def test_stop_wins_over_builtin_keep_lists() -> None:
    got = decisions(site_server(), stop=("SQLWriter", "WinDefend"))
    assert got["SQLWriter"].action == "stop" and got["SQLWriter"].source == "user_stop"
    assert got["WinDefend"].action == "stop"


def test_stop_of_management_channel_is_an_error_naming_it() -> None:
    with pytest.raises(PlanError, match=r"'Rpc\*'.*RpcEptMapper.*management channel"):
        classify(site_server(), QuiesceOptions(stop=("Rpc*",)))


def test_stop_of_instance_is_an_error() -> None:
    with pytest.raises(PlanError, match="MSSQLSERVER.*instance being upgraded"):
        classify(site_server(), QuiesceOptions(stop=("MSSQL*",)))


def test_named_instance_is_kept_and_default_is_then_listed_sql() -> None:
    facts = site_server() + [svc("MSSQL$SITEDB", pid=50)]
    got = decisions(facts, instance="SITEDB")
    assert got["MSSQL$SITEDB"].source == "instance"
    assert got["MSSQLSERVER"].source == "sql_server"


def test_keep_and_stop_same_service_names_both_patterns() -> None:
    with pytest.raises(PlanError, match=r"AcmeBackupAgent.*'Acme\*'.*'\*Agent'"):
        classify(site_server(), QuiesceOptions(keep=("Acme*",), stop=("*Agent",)))


def test_keep_of_dependent_of_stopped_service_names_both() -> None:
    with pytest.raises(PlanError, match="VendorTool is kept.*depends on ContosoMonitor"):
        decisions(site_server(), keep=("VendorTool",))


def test_dependents_closure_stops_builtin_keep_that_depends_on_stopped() -> None:
    facts = site_server() + [svc("Spooler", deps=("AcmeBackupAgent",), pid=60, product=WINDOWS)]
    got = decisions(facts)
    assert got["Spooler"].action == "stop"
    assert got["Spooler"].source == "dependent"
    assert "AcmeBackupAgent" in got["Spooler"].reason


def test_stopped_dependent_is_not_pulled_in() -> None:
    facts = site_server() + [svc("Spooler", state="stopped", deps=("AcmeBackupAgent",), product=WINDOWS)]
    assert decisions(facts)["Spooler"].action == "keep"


def test_version_resource_evidence() -> None:
    facts = [
        svc("WinRM"),
        svc("NewWindowsSvc", product="Microsoft (R) Windows (R) Operating System"),
        svc("SqlThing", product="Microsoft SQL Server 2022"),
        svc("MsOther", product="Microsoft Office"),
    ]
    got = decisions(facts)
    assert got["NewWindowsSvc"].source == "version_resource" and got["NewWindowsSvc"].action == "keep"
    assert got["SqlThing"].action == "keep"
    assert got["MsOther"].action == "stop"


def test_session_holder_stops_even_if_windows() -> None:
    facts = site_server() + [svc("WsusService", pid=70, product=WINDOWS)]
    got = decisions(facts, sql_sessions=({"host_process_id": 70, "program_name": "WSUS"},))
    assert got["WsusService"].action == "stop"
    assert got["WsusService"].source == "sql_session"
    assert "WSUS" in got["WsusService"].reason


def test_session_holder_kept_by_user_is_contradiction() -> None:
    facts = site_server() + [svc("WsusService", pid=70, product=WINDOWS)]
    with pytest.raises(PlanError, match="keep pattern 'Wsus\\*' matches WsusService.*session"):
        classify(facts, QuiesceOptions(keep=("Wsus*",), sql_sessions=({"host_process_id": 70},)))


def test_session_in_management_channel_is_error() -> None:
    with pytest.raises(PlanError, match="WinRM holds a session"):
        classify(site_server(), QuiesceOptions(sql_sessions=({"host_process_id": 13},)))


@pytest.mark.parametrize("bad", ["", "   ", None, {"a": 1}, True])
def test_invalid_patterns(bad: Any) -> None:
    with pytest.raises(PlanError, match=r"option stop\[0\]"):
        validate_patterns("stop", [bad])


def test_patterns_follow_ansibles_list_type() -> None:
    # A comma-separated string is a list, numbers become strings (check_type_list, elements: str).
    assert validate_patterns("keep", "VMTools,zabbix*") == ["VMTools", "zabbix*"]
    assert validate_patterns("keep", 5) == ["5"]
    assert validate_patterns("keep", ["a", 7]) == ["a", "7"]
    with pytest.raises(PlanError, match=r"option keep\[0\] must be a string, got dict"):
        validate_patterns("keep", [{}])


def test_patterns_must_be_a_list() -> None:
    with pytest.raises(PlanError, match="option keep must be a list"):
        validate_patterns("keep", {"a": 1})


HOSTILE = [
    "Evil'; Stop-Computer -Force; '",
    'x"y',
    "$(Stop-Computer)",
    "`nStop-Computer",
    "a\nb",
    "S\u00e9rvice\u2603",
    "svc;rm",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_data(name: str) -> None:
    assert validate_patterns("stop", [name]) == [name]
    facts = [svc("WinRM"), svc(name, pid=5, product=WINDOWS)]
    got = decisions(facts, stop=(name,))
    assert got[name].action == "stop"
    plan = plan_quiesce(facts, QuiesceOptions(stop=(name,)))
    assert {"op": "stop", "name": name} in plan.ops
    assert plan.records[name] == {"start_mode": "auto", "state": "running"}


def test_order_dependents_before_dependencies() -> None:
    facts = site_server()
    plan = plan_quiesce(facts, QuiesceOptions())
    stops = [op["name"] for op in plan.ops if op["op"] == "stop"]
    assert stops.index("SMS_EXECUTIVE") < stops.index("SMS_SITE_COMPONENT_MANAGER")
    assert stops.index("VendorTool") < stops.index("ContosoMonitor")
    # set_mode disabled happens before any stop, so nothing restarts a stopped service
    kinds = [op["op"] for op in plan.ops]
    assert kinds == sorted(kinds, key=lambda k: 0 if k == "set_mode" else 1)
    # Stopped at gather but changed by the plan: it gets its stop too (it may start before the apply; the
    # executor's stop of a stopped service is a no-op), after its set_mode.
    assert "SMS_SITE_BACKUP" in stops
    assert {"op": "set_mode", "name": "SMS_SITE_BACKUP", "start_mode": "disabled"} in plan.ops
    assert plan.records["SMS_SITE_BACKUP"]["state"] == "stopped"
    assert plan.records["ContosoMonitor"] == {"start_mode": "delayed", "state": "running"}
    assert plan.diff_after["CcmExec"] == {"start_mode": "disabled", "state": "stopped"}


def test_cycle_is_an_error_naming_it() -> None:
    facts = [svc("WinRM"), svc("A", deps=("B",)), svc("B", deps=("C",)), svc("C", deps=("A",))]
    with pytest.raises(
        PlanError, match=r"dependency cycle between services: (A -> B -> C -> A|B -> C -> A -> B|C -> A -> B -> C)"
    ):
        plan_quiesce(facts, QuiesceOptions())


def test_disable_false_only_stops() -> None:
    plan = plan_quiesce(site_server(), QuiesceOptions(disable=False))
    assert all(op["op"] == "stop" for op in plan.ops)
    assert "SMS_SITE_BACKUP" not in plan.records


def test_second_run_has_nothing_to_do() -> None:
    facts = site_server()
    plan = plan_quiesce(facts, QuiesceOptions())
    after = [
        ServiceFact(f.name, "disabled", "stopped", f.dependencies, 0, product_name=f.product_name)
        if f.name in plan.records
        else f
        for f in facts
    ]
    again = plan_quiesce(after, QuiesceOptions())
    assert again.ops == [] and not again.changed


def test_restore_plan_exact_and_ordered() -> None:
    facts = site_server()
    plan = plan_quiesce(facts, QuiesceOptions())
    quiesced = [
        ServiceFact(f.name, "disabled", "stopped", f.dependencies, 0) if f.name in plan.records else f for f in facts
    ]
    restore = plan_restore(quiesced, plan.records)
    starts = [op["name"] for op in restore.ops if op["op"] == "start"]
    assert starts.index("SMS_SITE_COMPONENT_MANAGER") < starts.index("SMS_EXECUTIVE")
    assert starts.index("ContosoMonitor") < starts.index("VendorTool")
    assert "SMS_SITE_BACKUP" not in starts
    modes = {op["name"]: op["start_mode"] for op in restore.ops if op["op"] == "set_mode"}
    assert modes["ContosoMonitor"] == "delayed" and modes["SMS_SITE_BACKUP"] == "manual"
    kinds = [op["op"] for op in restore.ops]
    assert kinds.index("start") > max(i for i, k in enumerate(kinds) if k == "set_mode")


def test_restore_idempotent_and_skips_unknown_and_unnamed() -> None:
    facts = site_server()
    records = {
        "AcmeBackupAgent": {"start_mode": "auto", "state": "running"},
        "Gone": {"start_mode": "auto", "state": "running"},
    }
    restore = plan_restore(facts, records)
    assert restore.ops == []
    by = {e["name"]: e for e in restore.entries}
    assert by["Gone"]["action"] == "skip"
    assert by["AcmeBackupAgent"]["action"] == "none"
    assert "ContosoMonitor" not in by  # not named by the journal → left alone


def test_restore_starts_a_recorded_running_service_still_stopping() -> None:
    # A quiesce that timed out leaves SMS_EXECUTIVE in STOP_PENDING; it was running before, so the restore
    # must start it again (after the stop finishes), not count the pending stop as "running".
    facts = [svc("WinRM"), svc("SMS_EXECUTIVE", mode="disabled", state="stop_pending", pid=40)]
    restore = plan_restore(facts, {"SMS_EXECUTIVE": {"start_mode": "auto", "state": "running"}})
    assert restore.ops == [
        {"op": "set_mode", "name": "SMS_EXECUTIVE", "start_mode": "auto"},
        {"op": "start", "name": "SMS_EXECUTIVE"},
    ]


def test_restore_stops_what_was_stopped() -> None:
    facts = [svc("WinRM"), svc("X", deps=("Y",)), svc("Y")]
    restore = plan_restore(
        facts, {"X": {"start_mode": "manual", "state": "stopped"}, "Y": {"start_mode": "manual", "state": "stopped"}}
    )
    assert [op for op in restore.ops if op["op"] == "stop"] == [
        {"op": "stop", "name": "X"},
        {"op": "stop", "name": "Y"},
    ]


def test_wmi_disable_and_enable() -> None:
    facts = site_server()
    plan = plan_wmi_disable(facts, None)
    assert plan.record == {"start_mode": "auto", "state": "running", "dependents": ["CcmExec", "iphlpsvc"]}
    assert plan.ops[0] == {"op": "set_mode", "name": "Winmgmt", "start_mode": "disabled"}
    assert [op["name"] for op in plan.ops if op["op"] == "stop"][-1] == "Winmgmt"
    disabled = [
        ServiceFact(
            f.name,
            "disabled" if f.name == "Winmgmt" else f.start_mode,
            "stopped" if f.name in ("Winmgmt", "CcmExec", "iphlpsvc") else f.state,
            f.dependencies,
        )
        for f in facts
    ]
    again = plan_wmi_disable(disabled, {"status": "disabled", **plan.record})
    assert again.ops == [] and again.record is None
    enable = plan_wmi_enable(disabled, {"status": "disabled", **plan.record})
    assert enable.ops == [
        {"op": "set_mode", "name": "Winmgmt", "start_mode": "auto"},
        {"op": "start", "name": "Winmgmt"},
        {"op": "start", "name": "CcmExec"},
        {"op": "start", "name": "iphlpsvc"},
    ]
    assert plan_wmi_enable(facts, {"status": "enabled", **plan.record}).ops == []


def test_wmi_enable_without_record_is_automatic() -> None:
    facts = [svc("Winmgmt", mode="disabled", state="stopped")]
    assert plan_wmi_enable(facts, None).ops == [
        {"op": "set_mode", "name": "Winmgmt", "start_mode": "auto"},
        {"op": "start", "name": "Winmgmt"},
    ]


def test_wmi_missing_service_is_error() -> None:
    with pytest.raises(PlanError, match="no Winmgmt"):
        plan_wmi_disable([svc("WinRM")], None)


def test_facts_from_gather_refuses_bad_data() -> None:
    with pytest.raises(PlanError, match="unknown start mode"):
        facts_from_gather([{"name": "A", "start_mode": "sometimes", "state": "running"}])
    with pytest.raises(PlanError, match="reported twice"):
        facts_from_gather([{"name": "A", "start_mode": "auto", "state": "running"}] * 2)
    facts = facts_from_gather(
        [{"name": "A", "start_mode": "auto", "state": "running", "dependencies": ["B"], "process_id": 4}]
    )
    assert facts[0].dependencies == ("B",) and facts[0].process_id == 4


def test_only_local_sessions_count() -> None:
    sessions = [
        {"host_process_id": 70, "host_name": "CM01", "program_name": "WSUS Service"},
        {"host_process_id": 40, "host_name": "ADMIN-WS01", "program_name": "SSMS"},
        {"host_process_id": 41},
    ]
    local = local_sessions(sessions, "cm01")
    assert [s["host_process_id"] for s in local] == [70, 41]


def test_restore_holds_back_a_start_whose_dependency_stays_disabled_and_does_the_rest() -> None:
    facts = [
        svc("WinRM"),
        svc("Winmgmt", mode="disabled", state="stopped"),
        svc("CcmExec", mode="disabled", state="stopped", deps=("Winmgmt",)),
        svc("CcmHelper", mode="disabled", state="stopped", deps=("CcmExec",)),
        svc("Spooler", mode="disabled", state="stopped"),
    ]
    running = {"start_mode": "auto", "state": "running"}
    plan = plan_restore(facts, {"CcmExec": running, "CcmHelper": running, "Spooler": running})
    assert set(plan.blocked) == {"CcmExec", "CcmHelper"}
    assert "depends on Winmgmt" in plan.blocked["CcmExec"]
    assert "wmi_disable with state=enabled" in plan.blocked["CcmExec"]
    assert "depends on CcmExec, which cannot start yet" in plan.blocked["CcmHelper"]
    # Modes are put back for all; only Spooler starts.
    assert [op["name"] for op in plan.ops if op["op"] == "start"] == ["Spooler"]
    assert {op["name"] for op in plan.ops if op["op"] == "set_mode"} == {"CcmExec", "CcmHelper", "Spooler"}
    assert {e["name"]: e["action"] for e in plan.entries}["CcmExec"] == "blocked"
    assert plan.diff_after["CcmExec"]["state"] == "stopped"
    # Recorded together (the journal re-enables the dependency), the restore is fine.
    plan = plan_restore(
        facts,
        {"CcmExec": {"start_mode": "auto", "state": "running"}, "Winmgmt": {"start_mode": "auto", "state": "running"}},
    )
    assert [op["name"] for op in plan.ops if op["op"] == "start"] == ["Winmgmt", "CcmExec"]


@pytest.mark.parametrize(
    ("pattern", "needle"),
    [("SMS_[", "has a [ without its closing ]"), ("SMS_[!", "without its closing"), ("C:\\SMS", "contains / or \\"),
     ("SMS/EXEC", "contains / or \\")],
)
def test_patterns_that_can_never_match_are_refused(pattern, needle) -> None:
    with pytest.raises(PlanError, match=re.escape(needle)):
        validate_patterns("stop", [pattern])


@pytest.mark.parametrize("pattern", ["SMS_[A-Z]*", "SMS_[]]X", "SMS_[!]]X", "]SMS", "SMS_EXECUTIVE", "$(x);`n'\"é"])
def test_well_formed_and_hostile_patterns_are_accepted_as_data(pattern) -> None:
    assert validate_patterns("keep", [pattern]) == [pattern]


def test_unmatched_patterns_are_reported() -> None:
    facts = site_server()
    assert unmatched_patterns(["SMS_*", "SMS_EXECUTIV", "winrm"], facts) == ["SMS_EXECUTIV"]


def test_restore_of_a_service_recorded_running_while_disabled_starts_it_under_manual() -> None:
    # StartService refuses a Disabled service (1058): start under Manual, then put Disabled back.
    facts = [svc("WinRM"), svc("Odd", mode="disabled", state="stopped")]
    restore = plan_restore(facts, {"Odd": {"start_mode": "disabled", "state": "running"}})
    assert restore.ops == [
        {"op": "set_mode", "name": "Odd", "start_mode": "manual"},
        {"op": "start", "name": "Odd"},
        {"op": "set_mode", "name": "Odd", "start_mode": "disabled"},
    ]
    # Once it runs (and is Disabled again) the table matches the record: nothing to do.
    done = [svc("WinRM"), svc("Odd", mode="disabled", state="running")]
    assert plan_restore(done, {"Odd": {"start_mode": "disabled", "state": "running"}}).ops == []


def test_a_quiesce_records_the_services_wmi_disable_stopped_as_running() -> None:
    facts = [svc("WinRM", product=WINDOWS), svc("CcmExec", state="stopped", pid=0)]
    plan = plan_quiesce(facts, QuiesceOptions(), stopped_by_window=["ccmexec"])
    assert plan.records["CcmExec"] == {"start_mode": "auto", "state": "running"}
    assert plan_quiesce(facts, QuiesceOptions()).records["CcmExec"]["state"] == "stopped"


def test_verification_names_every_broken_promise() -> None:
    promised = {"SMS_EXECUTIVE": {"start_mode": "disabled", "state": "stopped"},
                "CcmExec": {"start_mode": "disabled", "state": "stopped"},
                "Gone": {"start_mode": "disabled", "state": "stopped"},
                "Winmgmt": {"start_mode": "disabled", "state": "stopped"}}
    after = [{"name": "sms_executive", "start_mode": "disabled", "state": "stopped"},
             {"name": "CcmExec", "start_mode": "disabled", "state": "running"},
             {"name": "Gone", "start_mode": "", "state": "missing"}]
    assert broken_promises(promised, after) == [
        "CcmExec is running and disabled (promised: stopped and disabled)",
        "Gone no longer exists",
        "Winmgmt was not read back",
    ]
    assert broken_promises(promised, None) == ["the executor returned no verification read"]
    assert broken_promises({}, None) == []


def run_journal(run_id: str = "r-holder", finished: bool = False) -> dict:
    doc = jr.merge_services(None, {"Spooler": {"start_mode": "auto", "state": "running"}}, host="CM01",
                            run_id=run_id, now="2026-11-29T01:00:00Z", owner={"controller": "ctl1", "user": "ops"})
    return jr.mark_services_restored(doc, "2026-11-29T02:00:00Z") if finished else doc


def test_one_run_per_host() -> None:
    me = Caller(None, None, "ctl2", "dba")
    # No journal, or a finished one: this task may start a run, under its process's id.
    assert decide_run(None, me, "r-mine") == RunDecision("r-mine", new=True)
    assert decide_run(run_journal(finished=True), me, "r-mine").new is True
    # An unfinished journal of another run: refused, naming it; check mode only warns.
    with pytest.raises(PlanError, match=r"held by run r-holder \(started 2026-11-29T01:00:00Z by ops from ctl1\)"):
        decide_run(run_journal(), me, "r-mine")
    assert "a real run would be refused" in str(decide_run(run_journal(), me, "r-mine", check_mode=True).warning)
    # The same run continues; a named run continues across playbook runs; takeover is explicit.
    assert decide_run(run_journal("r-mine"), me, "r-mine") == RunDecision("r-mine", new=False)
    assert decide_run(run_journal(), Caller("r-holder", None, "c", "u"), "r-mine").run_id == "r-holder"
    taken = decide_run(run_journal(), Caller(None, "r-holder", "c", "u"), "r-mine")
    assert taken.took_over == "r-holder" and taken.run_id == "r-holder" and "took this host over" in str(taken.warning)
    with pytest.raises(PlanError, match="takeover names r-other, which does not hold it"):
        decide_run(run_journal(), Caller(None, "r-other", "c", "u"), "r-mine")
    with pytest.raises(PlanError, match="option run_id 'bad id'"):
        decide_run(None, Caller("bad id", None, "c", "u"), "r-mine")


def test_the_process_run_id_is_stable_per_process_and_distinct_between_processes() -> None:
    import os
    assert process_run_id(os.getpid()) == process_run_id(os.getpid())
    assert process_run_id(os.getpid()) != process_run_id(os.getppid())
    assert jr.valid_run_id(process_run_id())


def test_services_that_cannot_be_changed_are_kept_unless_they_must_stop() -> None:
    agent = ServiceFact("SepMasterService", "auto", "running", process_id=77, can_change=False)
    nostop = ServiceFact("VMTools", "auto", "running", process_id=78, accepts_stop=False)
    unreadable = ServiceFact("zabbix Agent 2", "auto", "running", process_id=79, config_readable=False,
                             can_change=False)
    stopped_nostop = ServiceFact("Idle", "manual", "stopped", accepts_stop=False)
    facts = [svc("WinRM", product=WINDOWS), agent, nostop, unreadable, stopped_nostop]
    got = {d.name: d for d in classify(facts, QuiesceOptions())}
    for name in ("SepMasterService", "VMTools", "zabbix Agent 2"):
        assert got[name].action == "keep" and got[name].source == "unchangeable", got[name]
    assert "tamper-protected" in got["SepMasterService"].reason
    assert "1052" in got["VMTools"].reason and "cannot be read" in got["zabbix Agent 2"].reason
    assert got["Idle"].action == "stop"  # a stopped service needs no stop control: it is only disabled
    with pytest.raises(PlanError, match="SepMasterService holds a session on the instance being upgraded .*"
                                        "cannot be stopped"):
        classify(facts, QuiesceOptions(sql_sessions=({"host_process_id": 77},)))
    with pytest.raises(PlanError, match="service VMTools matches stop pattern 'VM\\*', but it does not accept"):
        classify(facts, QuiesceOptions(stop=("VM*",)))
    # A kept unchangeable service that depends on a stopping one: Windows would have to stop it first.
    dependent = ServiceFact("AgentHelper", "auto", "running", dependencies=("Spooler2",), can_change=False)
    with pytest.raises(PlanError, match="AgentHelper is kept .* but depends on Spooler2, which stops"):
        plan_quiesce([svc("WinRM", product=WINDOWS), svc("Spooler2"), dependent], QuiesceOptions())


def test_windows_binaries_are_recognised_on_a_localized_windows() -> None:
    def localized(name: str, binary: str, company: str = "Microsoft Corporation") -> ServiceFact:
        return ServiceFact(name, "manual", "running", process_id=5, product_name="Microsoft\u00ae Windows\u00ae "
                           "Betriebssystem", company_name=company, binary=binary)
    facts = [svc("WinRM", product=WINDOWS),
             localized("WaaSMedicSvc", "C:\\Windows\\System32\\WaaSMedicSvc.dll"),
             localized("CcmLike", "C:\\WINDOWS\\CCM\\Agent.exe"),
             localized("Elsewhere", "D:\\Tools\\agent.exe"),
             localized("Vendor", "C:\\Windows\\System32\\vendor.dll", company="Contoso Ltd")]
    got = {d.name: d for d in classify(facts, QuiesceOptions(system_root="C:\\Windows"))}
    assert got["WaaSMedicSvc"].action == "keep" and got["WaaSMedicSvc"].source == "version_resource"
    assert [n for n in ("CcmLike", "Elsewhere", "Vendor") if got[n].action != "stop"] == []
    # Without the host's %SystemRoot% the rule claims nothing.
    assert {d.name: d for d in classify(facts, QuiesceOptions())}["WaaSMedicSvc"].action == "stop"


def test_window_drift_is_empty_while_the_window_holds() -> None:
    facts = [svc("SMS_EXECUTIVE", "disabled", "stopped"), svc("Winmgmt", "disabled", "stopped")]
    records = {"SMS_EXECUTIVE": {"start_mode": "auto", "state": "running"}}
    assert window_drift(facts, records, True, {"status": "disabled"}) == []


def test_window_drift_names_a_restarted_a_reenabled_a_removed_service_and_wmi() -> None:
    facts = [svc("SMS_EXECUTIVE", "disabled", "running"), svc("CcmExec", "auto", "stopped"),
             svc("Winmgmt", "auto", "running"), svc("Stopping", "disabled", "stop_pending")]
    records = {name: {"start_mode": "auto", "state": "running"} for name in
               ("sms_executive", "CcmExec", "Gone", "Stopping")}
    drift = window_drift(facts, records, True, {"status": "disabled"})
    assert drift == [
        {"name": "CcmExec", "expected": "stopped and disabled", "actual": "stopped and auto"},
        {"name": "Gone", "expected": "stopped and disabled", "actual": "no longer on the host"},
        {"name": "SMS_EXECUTIVE", "expected": "stopped and disabled", "actual": "running and disabled"},
        {"name": "Stopping", "expected": "stopped and disabled", "actual": "stop_pending and disabled"},
        {"name": "Winmgmt", "expected": "stopped and disabled", "actual": "running and auto"},
    ]
    # Without disable only the state counts; a WMI record that is enabled again is not checked.
    assert [d["name"] for d in window_drift(facts, records, False, {"status": "enabled"})] == [
        "Gone", "SMS_EXECUTIVE", "Stopping"]


def test_a_run_whose_lease_ended_is_taken_over_without_being_asked() -> None:
    held = jr.merge_services(None, {"A": {"start_mode": "auto", "state": "running"}}, host="CM01", run_id="r-dead",
                             now="2026-11-29T01:00:00Z")
    me = Caller(None, None, "ctl", "ops")
    with pytest.raises(PlanError, match="held by run r-dead"):
        decide_run(held, me, "r-mine")
    taken = decide_run(held, me, "r-mine", lease_expired=True)
    assert taken.run_id == "r-dead" and taken.took_over == "r-dead" and "lease" in (taken.warning or "")


def test_wmi_for_setup_starts_winmgmt_under_manual_without_its_dependents() -> None:
    facts = [svc("Winmgmt", "disabled", "stopped"), svc("CcmExec", "disabled", "stopped", deps=("Winmgmt",))]
    record = {"status": "disabled", "start_mode": "auto", "state": "running", "dependents": ["CcmExec"]}
    plan = plan_wmi_for_setup(facts, record)
    assert plan.ops == [{"op": "set_mode", "name": "Winmgmt", "start_mode": "manual"},
                        {"op": "start", "name": "Winmgmt"}]
    assert plan.diff_after == {"Winmgmt": {"start_mode": "manual", "state": "running"}}
    assert plan_wmi_for_setup([svc("Winmgmt", "manual", "running")], {**record, "status": "setup"}).ops == []
    # No window: nothing to do when winmgmt runs; refused when it does not (this collection did not stop it).
    assert plan_wmi_for_setup([svc("Winmgmt")], None).ops == []
    with pytest.raises(PlanError, match="records no WMI window"):
        plan_wmi_for_setup([svc("Winmgmt", "disabled", "stopped")], None)
    # A later step 3 keeps the original prior state recorded before setup.
    assert plan_wmi_disable([svc("Winmgmt", "manual", "running")], {**record, "status": "setup"}).record is None


def test_window_drift_while_wmi_runs_for_setup() -> None:
    facts = [svc("Winmgmt", "manual", "running")]
    assert window_drift(facts, {}, True, {"status": "setup"}) == []
    assert window_drift([svc("Winmgmt", "auto", "running")], {}, True, {"status": "setup"}) == [
        {"name": "Winmgmt", "expected": "running and manual (for setup)", "actual": "running and auto"}]
