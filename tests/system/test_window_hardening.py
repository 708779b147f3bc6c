"""Steps 2, 3 and 7 on a busy, hostile server: restores that never give up early, WMI back after an unfinished
run, a journal that names the management channel, a connection that drops with the output of a command lost.
Each test runs the real ansible-playbook over WinRM against a twin host with the fault injected."""

from __future__ import annotations

import copy
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from conftest import play, services

from twin.emulation.configmgr import journal_path
from twin.host import DEFAULT_SCENARIO
from twin.host.scenario import read_scenario

HOST = "site01"


def task(module: str, state: str, args: str = "") -> str:
    return play(f"      configmgr.sql_upgrade.{module}:\n        state: {state}\n{args}")


def run(runner: Any, module: str, state: str, args: str = "") -> dict[str, Any]:
    return runner.playbook(task(module, state, args)).result(HOST)


def test_a_restore_tries_every_record_lists_what_is_left_and_a_second_restore_finishes(make_fleet: Any) -> None:
    # SMS_EXECUTIVE takes 60 s to stop and is first in the restore's start order (no recorded dependency).
    runner = make_fleet(1, {"faults": {"services": {"SMS_EXECUTIVE": {"stop": "slow", "seconds": 60}}}})
    host = runner.fleet.host(HOST)
    before = services(host)
    # end_hung_services: false - the restore's side of a stop that times out is what this test is about.
    quiesced = run(runner, "win_service_quiesce", "quiesced", "        configmgr_stop_timeout: 30\n")
    assert quiesced["failed"] is True and quiesced["failed_op"]["name"] == "SMS_EXECUTIVE"
    assert host.scm.get("SMS_EXECUTIVE").state == "stop_pending"
    stopped_by_run = [n for n, (mode, _state) in services(host).items() if mode == "disabled" and before[n][0] != mode]
    assert len(stopped_by_run) > 5

    first = run(runner, "win_service_quiesce", "restored", "        timeout: 5\n")
    assert first["failed"] is True
    assert [f["name"] for f in first["failures"]] == ["SMS_EXECUTIVE"]
    assert first["msg"].startswith(f"{HOST}: 1 of ") and "still in the window" in first["msg"]
    assert "keeps every record" in first["msg"] and "state=restored" in first["msg"]
    # Every other service is back as it was; only SMS_EXECUTIVE is left.
    after = services(host)
    assert [n for n in before if after[n] != before[n]] == ["SMS_EXECUTIVE"]
    doc = json.loads(host.fs.read(journal_path(host)))
    assert doc["services"]["status"] == "quiesced" and "SMS_EXECUTIVE" in doc["services"]["records"]

    second = run(runner, "win_service_quiesce", "restored")  # timeout 120: the stop finishes, then it starts
    assert not second.get("failed"), second.get("msg")
    assert services(host) == before
    assert json.loads(host.fs.read(journal_path(host)))["services"]["status"] == "restored"


def test_wmi_comes_back_after_an_unfinished_run_and_the_services_restore_finishes(make_fleet: Any) -> None:
    # Step 3 before step 2: wmi_disable stops CcmExec (a running Winmgmt dependent), then the quiesce disables
    # it. WMI back first must not fail on the disabled CcmExec (1058); the service restore then starts it
    # (recorded as running before the window), giving back the pre-window table exactly.
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    before = services(host)
    assert run(runner, "wmi_disable", "disabled")["changed"] is True
    assert run(runner, "win_service_quiesce", "quiesced")["changed"] is True
    assert host.scm.get("CcmExec").start_mode == "disabled"

    wmi = run(runner, "wmi_disable", "enabled")
    assert not wmi.get("failed"), wmi.get("msg")
    assert host.scm.get("Winmgmt").state == "running" and host.scm.get("Winmgmt").start_mode == before["Winmgmt"][0]
    assert any("CcmExec" in w and "win_service_quiesce state=restored starts it" in w for w in wmi["warnings"])
    assert "CcmExec" not in wmi["started"]

    restored = run(runner, "win_service_quiesce", "restored")
    assert not restored.get("failed"), restored.get("msg")
    assert services(host) == before


def test_a_restore_never_stops_winrm_whatever_the_journal_says(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    assert run(runner, "win_service_quiesce", "quiesced")["changed"] is True
    doc = json.loads(host.fs.read(journal_path(host)))
    # A well-formed but forged (or stale) journal: WinRM and the instance recorded as disabled and stopped.
    doc["services"]["records"]["WinRM"] = {"start_mode": "disabled", "state": "stopped"}
    doc["services"]["records"]["MSSQLSERVER"] = {"start_mode": "disabled", "state": "stopped"}
    host.fs.write(journal_path(host), json.dumps(doc).encode())

    res = run(runner, "win_service_quiesce", "restored")
    assert not res.get("failed"), res.get("msg")
    assert host.scm.get("WinRM").state == "running" and host.scm.get("WinRM").start_mode == "auto"
    assert host.scm.get("MSSQLSERVER").state == "running"
    skipped = {e["name"]: e for e in res["plan"] if e["action"] == "skip"}
    assert "management channel" in skipped["WinRM"]["reason"]
    assert "instance being upgraded" in skipped["MSSQLSERVER"]["reason"]
    assert any(w.startswith(f"{HOST}: WinRM: ") for w in res["warnings"])
    # The controller can still reach the host.
    assert runner.ansible(HOST, "ansible.windows.win_ping").result(HOST).get("ping") == "pong"


@pytest.mark.both_connections
def test_a_quiesce_whose_output_is_lost_says_the_host_may_be_changed_and_a_rerun_finishes(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    before = services(host)
    # Command 1 of the task is the gather, 2 the apply: the apply runs, its answer never arrives.
    host.faults.lose_output_of_command = host.counters.winrm_commands + 2
    proc = runner.playbook(task("win_service_quiesce", "quiesced"))
    res = proc.result(HOST)
    assert res.get("unreachable") or res.get("failed")
    assert "connection dropped while configmgr.sql_upgrade.win_service_quiesce applied its plan" in res["msg"]
    assert "partly changed" in res["msg"] and "state=restored" in res["msg"]
    assert host.scm.get("SMS_EXECUTIVE").state == "stopped"  # it did run
    again = run(runner, "win_service_quiesce", "quiesced")
    assert not again.get("failed") and again["changed"] is False
    restored = run(runner, "win_service_quiesce", "restored")
    assert not restored.get("failed"), restored.get("msg")
    assert services(host) == before


def test_a_service_started_between_gather_and_apply_is_stopped_too_and_verified(make_fleet: Any) -> None:
    # SMS_SITE_BACKUP is stopped (manual) when the quiesce reads the host; something starts it before the
    # apply (command 2 of the task). The plan decided "stop" for it: the apply acts on the state it finds.
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    assert host.scm.get("SMS_SITE_BACKUP").state == "stopped"
    host.faults.update({"events": [{"service": "SMS_SITE_BACKUP", "do": "start",
                                    "at_command": host.counters.winrm_commands + 2}]})
    res = run(runner, "win_service_quiesce", "quiesced")
    assert not res.get("failed"), res.get("msg")
    assert host.faults.events == []  # it fired
    backup = host.scm.get("SMS_SITE_BACKUP")
    assert (backup.start_mode, backup.state) == ("disabled", "stopped")
    assert "SMS_SITE_BACKUP" in res["stopped"]  # the executor really stopped it
    assert "smstsmgr" not in res["stopped"]  # stopped at gather and still stopped: not reported as stopped
    doc = json.loads(host.fs.read(journal_path(host)))
    assert doc["services"]["records"]["SMS_SITE_BACKUP"] == {"start_mode": "manual", "state": "stopped"}
    # A second run finds everything as decided: nothing to apply, nothing changed.
    again = run(runner, "win_service_quiesce", "quiesced")
    assert again["changed"] is False and again["stopped"] == []


def test_wmi_disable_fails_naming_winmgmt_when_something_brings_it_back_during_the_apply(make_fleet: Any) -> None:
    # settle_seconds: 0 skips the settle check; the verification read after the last operation still catches
    # Winmgmt re-enabled and started by something else (a GPO refresh, another tool) before the task ended.
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    check = runner.playbook(task("wmi_disable", "disabled", "        settle_seconds: 0\n"), "--check").result(HOST)
    last = len(check["disabled"]) + len(check["stopped"])  # set_mode Winmgmt, then every stop
    host.faults.update({"events": [
        {"service": "Winmgmt", "do": "set_mode", "start_mode": "manual", "after_op": last},
        {"service": "Winmgmt", "do": "start", "after_op": last},
    ]})
    res = run(runner, "wmi_disable", "disabled", "        settle_seconds: 0\n")
    assert res["failed"] is True and res["changed"] is True
    assert "a fresh read does not show what it promised" in res["msg"]
    assert "Winmgmt is running and manual (promised: stopped and disabled)" in res["msg"]
    # The journal holds the prior state: step 7 puts WMI back.
    back = run(runner, "wmi_disable", "enabled")
    assert not back.get("failed"), back.get("msg")
    assert host.scm.get("Winmgmt").state == "running" and host.scm.get("Winmgmt").start_mode == "auto"


def test_two_controllers_at_once_one_is_refused_and_nothing_is_lost(make_fleet: Any) -> None:
    # Two operators quiesce the same host at the same time, each with a service of their own to stop. Each
    # ansible-playbook run is its own run (no run_id): exactly one may hold the host; the other is refused
    # before any change, whether it reads the host before the first writes its journal (the executor's
    # compare-and-swap refuses it) or after (the journal names the run that holds the host).
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    before = services(host)
    plays = {name: play(f"      configmgr.sql_upgrade.win_service_quiesce:\n        state: quiesced\n"
                        f"        stop: [{name}]\n", run_id=None) for name in ("Spooler", "W32Time")}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(runner.playbook, text) for name, text in plays.items()}
        results = {name: future.result().result(HOST) for name, future in futures.items()}
    winners = [name for name, res in results.items() if not res.get("failed")]
    assert len(winners) == 1, {n: r.get("msg") for n, r in results.items()}
    winner = winners[0]
    loser = "W32Time" if winner == "Spooler" else "Spooler"
    refusal = results[loser]["msg"]
    assert "held by run" in refusal or "changed since this task read it" in refusal, refusal
    assert "nothing was changed" in refusal
    doc = json.loads(host.fs.read(journal_path(host)))
    assert doc["run_id"] == results[winner]["run_id"]
    assert winner in doc["services"]["records"] and loser not in doc["services"]["records"]
    assert services(host)[winner] == ("disabled", "stopped")
    assert services(host)[loser] == before[loser]
    # Another run may restore only by taking the host over, explicitly.
    refused = runner.playbook(task_without_run("restored")).result(HOST)
    assert refused["failed"] is True and f"takeover: {doc['run_id']}" in refused["msg"]
    back = runner.playbook(task_without_run("restored", f"        takeover: {doc['run_id']}\n")).result(HOST)
    assert not back.get("failed"), back.get("msg")
    assert services(host) == before


def task_without_run(state: str, args: str = "") -> str:
    return play(f"      configmgr.sql_upgrade.win_service_quiesce:\n        state: {state}\n{args}", run_id=None)


def test_a_full_disk_fails_the_journal_write_before_any_change(make_fleet: Any) -> None:
    runner = make_fleet(1, {"faults": {"disk": {"full": True}}})
    host = runner.fleet.host(HOST)
    before = services(host)
    res = run(runner, "win_service_quiesce", "quiesced")
    assert res["failed"] is True
    assert "failed to write the journal" in res["msg"] and "before changing anything" in res["msg"]
    assert "not enough space on the disk" in res["msg"] and res["msg"].startswith(f"{HOST}: ")
    assert res["changed"] is False and "run_id" not in res  # nothing changed, no run was started
    assert services(host) == before and not host.fs.exists(journal_path(host))


def test_a_full_disk_after_a_restore_ran_says_so_and_a_second_restore_records_it(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    before = services(host)
    assert run(runner, "win_service_quiesce", "quiesced")["changed"] is True
    host.faults.disk_full = True
    res = run(runner, "win_service_quiesce", "restored")
    assert res["failed"] is True
    assert "every planned operation ran, but the journal" in res["msg"] and "Run the task again" in res["msg"]
    assert services(host) == before  # the services are back; only the journal's status is behind
    assert json.loads(host.fs.read(journal_path(host)))["services"]["status"] == "quiesced"
    host.faults.disk_full = False
    again = run(runner, "win_service_quiesce", "restored")
    assert not again.get("failed"), again.get("msg")
    assert json.loads(host.fs.read(journal_path(host)))["services"]["status"] == "restored"


def test_a_tamper_protected_agent_is_kept_with_a_warning_and_the_rest_stops(make_fleet: Any) -> None:
    # SepMasterService (Symantec Endpoint Protection) refuses the rights to stop or reconfigure it, as
    # ansible.windows issue 118 shows; VMTools does not accept a stop control; zabbix's configuration cannot be
    # read. None of them holds a session: each is kept, named in a warning, and the quiesce goes on.
    runner = make_fleet(1, {"faults": {"services": {"SepMasterService": {"protected": True},
                                                    "zabbix Agent 2": {"config_unreadable": True}}}})
    host = runner.fleet.host(HOST)
    host.scm.get("VMTools").running_controls = ["shutdown"]
    res = run(runner, "win_service_quiesce", "quiesced")
    assert not res.get("failed"), res.get("msg")
    plan = {d["name"]: d for d in res["plan"]}
    for name, words in [("SepMasterService", "refuses the rights to stop and reconfigure it"),
                        ("VMTools", "does not accept a stop control"),
                        ("zabbix Agent 2", "configuration cannot be read")]:
        assert plan[name]["action"] == "keep" and plan[name]["source"] == "unchangeable", plan[name]
        assert words in plan[name]["reason"]
        warned = [w for w in res["warnings"] if w.startswith(f"{HOST}: {name} is not stopped: ")]
        assert any(words in w for w in warned), res["warnings"]
        assert host.scm.get(name).state == "running"
    assert host.scm.get("VeeamEndpointBackupSvc").state == "stopped"  # the other third-party services stop
    assert host.scm.get("SMS_EXECUTIVE").state == "stopped"


def test_a_protected_agent_holding_a_session_fails_the_plan_before_any_change(make_fleet: Any) -> None:
    runner = make_fleet(1, {"faults": {"services": {"SepMasterService": {"protected": True}}}})
    host = runner.fleet.host(HOST)
    before = services(host)
    pid = host.scm.get("SepMasterService").process_id
    res = run(runner, "win_service_quiesce", "quiesced",
              f"        sql_sessions: [{{host_process_id: {pid}, program_name: SEP}}]\n")
    assert res["failed"] is True
    assert "SepMasterService holds a session on the instance being upgraded" in res["msg"]
    assert "cannot be stopped" in res["msg"] and "nothing was changed" in res["msg"]
    assert services(host) == before and not host.fs.exists(journal_path(host))


def localized_host() -> dict[str, Any]:
    """The default host as a French Windows would report it, plus WaaSMedicSvc (Windows Update Medic Service),
    a Windows service the collection's documented list does not name: only its version resource can keep it."""
    data = read_scenario(DEFAULT_SCENARIO)
    medic = copy.deepcopy(next(s for s in data["services"] if s["name"] == "Spooler"))
    medic.update(name="WaaSMedicSvc", display_name="Windows Update Medic Service", start_mode="manual",
                 path="C:\\Windows\\system32\\svchost.exe -k wusvcs -p", process_id=9311, dependencies=["RpcSs"])
    data["services"].append(medic)
    rpcss = next(s for s in data["services"] if s["name"] == "RpcSs")
    rpcss["dependency_of"] = [*rpcss["dependency_of"], "WaaSMedicSvc"]  # win_service_info lists both directions
    data["model"]["services"]["WaaSMedicSvc"] = {"role": "windows", "company_name": "Microsoft Corporation",
                                                 "service_dll": "C:\\Windows\\System32\\WaaSMedicSvc.dll"}
    for facts in data["model"]["services"].values():
        if facts.get("role") == "windows":
            facts["product_name"] = "Syst\u00e8me d\u2019exploitation Microsoft\u00ae Windows\u00ae"
    return {"services": data["services"], "model": data["model"]}


def test_on_a_localized_windows_no_windows_service_is_stopped(make_fleet: Any) -> None:
    # FileVersionInfo gives the translated ProductName; CompanyName is not translated.
    runner = make_fleet(1, localized_host())
    host = runner.fleet.host(HOST)
    assert host.scm.get("WaaSMedicSvc").state == "running"
    windows = [s.name for s in host.scm.all() if s.role == "windows"]
    res = run(runner, "win_service_quiesce", "quiesced")
    assert not res.get("failed"), res.get("msg")
    plan = {d["name"]: d for d in res["plan"]}
    assert [n for n in windows if plan[n]["action"] == "stop"] == []
    assert plan["WaaSMedicSvc"]["source"] == "version_resource"
    assert "Microsoft Corporation, under %SystemRoot%" in plan["WaaSMedicSvc"]["reason"]
    assert host.scm.get("WaaSMedicSvc").state == "running"
    assert plan["CcmExec"]["action"] == "stop"  # Microsoft, under C:\\Windows\\CCM: Configuration Manager


def test_a_service_that_stopped_by_itself_before_the_apply_is_done_not_an_error(make_fleet: Any) -> None:
    # SMS_EXECUTIVE runs at gather and stops by itself just before the apply (ControlService would answer
    # ERROR_SERVICE_NOT_ACTIVE, 1062): the executor acts on the state it finds.
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    host.faults.update({"events": [{"service": "SMS_EXECUTIVE", "do": "stop",
                                    "at_command": host.counters.winrm_commands + 2}]})
    res = run(runner, "win_service_quiesce", "quiesced")
    assert not res.get("failed"), res.get("msg")
    assert (host.scm.get("SMS_EXECUTIVE").start_mode, host.scm.get("SMS_EXECUTIVE").state) == ("disabled", "stopped")
    assert "SMS_EXECUTIVE" not in res["stopped"] and "SMS_EXECUTIVE" in res["disabled"]
    doc = json.loads(host.fs.read(journal_path(host)))
    assert doc["services"]["records"]["SMS_EXECUTIVE"] == {"start_mode": "auto", "state": "running"}


def test_a_dependent_that_starts_again_after_its_stop_fails_the_stop_naming_it_and_nothing_cascades(
        make_fleet: Any) -> None:
    # With disable: false nothing holds smstsmgr down: it starts again right after its own stop, before
    # CcmExec (which it depends on) is stopped. ControlService does not stop it with CcmExec (1051): the stop
    # of CcmExec fails naming it, and smstsmgr is left running, not stopped unrecorded.
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    host.scm.start("smstsmgr")  # a task sequence is running: smstsmgr runs, and it depends on CcmExec
    before = services(host)
    host.faults.update({"events": [{"service": "smstsmgr", "do": "start", "after_op_for": "smstsmgr"}]})
    res = run(runner, "win_service_quiesce", "quiesced", "        disable: false\n")
    assert res["failed"] is True
    assert "stop of service CcmExec failed" in res["msg"] and "running dependents (smstsmgr)" in res["msg"]
    assert "never cascades" in res["msg"]
    assert host.scm.get("smstsmgr").state == "running" and host.scm.get("CcmExec").state == "running"
    host.scm.stop("smstsmgr", force=True)
    back = run(runner, "win_service_quiesce", "restored")
    assert not back.get("failed"), back.get("msg")
    assert services(host) == before


def test_a_start_that_fails_is_reported_with_its_exit_code_and_the_restore_goes_on(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    before = services(host)
    assert run(runner, "win_service_quiesce", "quiesced")["changed"] is True
    # At restore time SMS_NOTIFICATION_SERVER's process dies while starting (ERROR_PROCESS_ABORTED, 1067).
    host.faults.update({"services": {"SMS_NOTIFICATION_SERVER": {"start_exit_code": 1067}}})
    started = host.clock.now()
    res = run(runner, "win_service_quiesce", "restored")
    assert res["failed"] is True
    failure = next(f for f in res["failures"] if f["name"] == "SMS_NOTIFICATION_SERVER")
    assert "stopped while starting: Win32 exit code The process terminated unexpectedly. (1067)" in failure["msg"]
    assert host.clock.now() - started < 60  # reported at once, not after the 120 s timeout
    after = services(host)
    assert [n for n in before if after[n] != before[n]] == ["SMS_NOTIFICATION_SERVER"]


USERS = "S-1-5-32-545"  # BUILTIN\Users


def test_a_journal_a_user_can_write_is_refused_before_any_change(make_fleet: Any) -> None:
    # A non-admin pre-creates journal.json in the journal folder with a DACL of their own (File.Replace would
    # keep it): the module refuses to read or write that journal.
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    assert run(runner, "win_service_quiesce", "quiesced")["changed"] is True
    assert run(runner, "win_service_quiesce", "restored")["changed"] is True
    before = services(host)
    path = journal_path(host)
    assert host.fs.security(path) == {"owner": "S-1-5-32-544", "writers": ["S-1-5-18", "S-1-5-32-544"]}
    host.fs.set_security(path, USERS, [USERS])
    res = run(runner, "win_service_quiesce", "quiesced")
    assert res["failed"] is True and res["changed"] is False
    assert "cannot be trusted" in res["msg"] and f"owned by {USERS}" in res["msg"]
    assert "nothing was changed" in res["msg"]
    assert services(host) == before
    # A planted temp file with a writable DACL is refused too.
    host.fs.set_security(path, "S-1-5-32-544", ["S-1-5-18", "S-1-5-32-544"])
    host.fs.write(path + ".tmp", b"{}")
    host.fs.set_security(path + ".tmp", "S-1-5-32-544", ["S-1-5-18", USERS])
    res = run(runner, "win_service_quiesce", "quiesced")
    assert res["failed"] is True and f"grants {USERS} write access" in res["msg"]
    assert services(host) == before


def test_a_service_still_starting_is_waited_out_then_stopped(make_fleet: Any) -> None:
    # Something starts SMS_SITE_BACKUP just before the apply and it takes 10 s to report running: a stop
    # control would be refused meanwhile (1061). The executor waits the start out, then stops it.
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    host.faults.update({"events": [{"service": "SMS_SITE_BACKUP", "do": "start_slow", "seconds": 10,
                                    "at_command": host.counters.winrm_commands + 2}]})
    res = run(runner, "win_service_quiesce", "quiesced")
    assert not res.get("failed"), res.get("msg")
    backup = host.scm.get("SMS_SITE_BACKUP")
    assert (backup.start_mode, backup.state) == ("disabled", "stopped")
    assert "SMS_SITE_BACKUP" in res["stopped"]


def test_a_restore_whose_output_is_lost_is_finished_by_a_second_restore(make_fleet: Any) -> None:
    runner = make_fleet(1, {"faults": {"services": {"SMS_EXECUTIVE": {"stop": "slow", "seconds": 60}}}})
    host = runner.fleet.host(HOST)
    before = services(host)
    assert run(runner, "win_service_quiesce", "quiesced",
               "        configmgr_stop_timeout: 30\n")["failed"] is True
    host.faults.lose_output_of_command = host.counters.winrm_commands + 2
    lost = run(runner, "win_service_quiesce", "restored", "        timeout: 5\n")
    assert lost["failed"] is True and "connection dropped while" in lost["msg"] and "partly changed" in lost["msg"]
    second = run(runner, "win_service_quiesce", "restored")
    assert not second.get("failed"), second.get("msg")
    assert services(host) == before
