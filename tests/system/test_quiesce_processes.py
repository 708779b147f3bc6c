"""win_service_quiesce ends processes over WinRM against a twin site server: the helpers a stopped service
leaves behind (CcmExec's PowerShell) and named ones (the Configuration Manager console), after the
services stopped, with reasons; check mode ends nothing; the journal records them; a process that will not
end fails by name and a restore still gives back the exact service table."""

from __future__ import annotations

import json
from typing import Any

import yaml
from conftest import play, services

from twin.emulation.configmgr import journal_path
from twin.host import DEFAULT_SCENARIO

HOST = "site01"
CONSOLE = "Microsoft.ConfigurationManagement"
NAMED = f"        processes:\n          - {CONSOLE}\n"


def run(runner: Any, state: str, args: str = "", *extra: str) -> dict[str, Any]:
    text = play(f"      configmgr.sql_upgrade.win_service_quiesce:\n        state: {state}\n{args}")
    return runner.playbook(text, *extra).result(HOST)


def quiesce(runner: Any, args: str = "", *extra: str) -> dict[str, Any]:
    return run(runner, "quiesced", args, *extra)


def restore(runner: Any) -> dict[str, Any]:
    return run(runner, "restored")


def alive(host: Any) -> dict[int, str]:
    return {p.process_id: p.name for p in host.processes.snapshot()}


def test_left_behind_and_named_processes_end_after_the_services_stopped(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    before = services(host)
    ccm_pid = host.scm.get("CcmExec").process_id
    res = quiesce(runner, NAMED)
    assert not res.get("failed"), res.get("msg")
    ended = {p["process_id"]: p for p in res["ended_processes"]}
    assert set(ended) == {7204, 6044}
    assert ended[7204]["reason"] == f"left behind by CcmExec (process id {ccm_pid}), which stops"
    assert ended[6044]["reason"] == f"named in processes ({CONSOLE})"
    now = alive(host)
    assert 7204 not in now and 6044 not in now and now[5120] == "explorer"  # the desktop is not touched
    assert 7312 not in now  # MonitoringHost ended with HealthService: nothing for the module to do
    # The journal is written before anything ends: it holds every planned process, MonitoringHost too
    # (HealthService stops, so its helper was due; it exited with the service and is not reported ended).
    doc = json.loads(host.fs.read(journal_path(host)))
    assert {p["process_id"] for p in doc["processes"]} == {7204, 6044, 7312}
    # Idempotent: nothing is left to stop or end.
    again = quiesce(runner, NAMED)
    assert again["changed"] is False and again["ended_processes"] == []
    # Restore brings the services back (CcmExec spawns a new helper); the console is not restarted.
    back = restore(runner)
    assert not back.get("failed"), back.get("msg")
    assert services(host) == before
    pid = host.scm.get("CcmExec").process_id
    assert [p.parent_process_id for p in host.processes.by_name("powershell")] == [pid]
    assert host.processes.by_name(CONSOLE) == []


def test_check_mode_lists_the_processes_and_ends_nothing(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    before = alive(host)
    res = quiesce(runner, NAMED, "--check")
    assert not res.get("failed"), res.get("msg")
    # The plan cannot know MonitoringHost will exit with HealthService: check mode lists it as due.
    assert {p["process_id"] for p in res["ended_processes"]} == {7204, 6044, 7312}
    assert alive(host) == before and not host.fs.exists(journal_path(host))


def test_a_process_that_will_not_end_fails_by_name_and_restore_still_works(make_fleet: Any) -> None:
    scenario = yaml.safe_load(DEFAULT_SCENARIO.read_text(encoding="utf-8"))
    processes = scenario["processes"]
    next(p for p in processes if p["name"] == CONSOLE)["end"] = "denied"
    runner = make_fleet(1, {"processes": processes})
    host = runner.fleet.host(HOST)
    before = services(host)
    res = quiesce(runner, NAMED)
    assert res["failed"] is True
    assert f"process {CONSOLE} (id 6044)" in res["msg"] and "Access is denied" in res["msg"]
    assert HOST in res["msg"] and res["failed_op"]["process_id"] == 6044
    assert host.scm.get("SMS_EXECUTIVE").state == "stopped"  # services stopped first
    doc = json.loads(host.fs.read(journal_path(host)))
    assert 6044 in {p["process_id"] for p in doc["processes"]}
    back = restore(runner)
    assert not back.get("failed"), back.get("msg")
    assert services(host) == before


def test_a_helper_that_is_already_exiting_counts_as_gone_not_as_a_failure(make_fleet: Any) -> None:
    # CcmExec's powershell.exe is on its way out when the quiesce ends it: TerminateProcess answers
    # ERROR_ACCESS_DENIED for an exiting process, and it is gone a moment later.
    scenario = yaml.safe_load(DEFAULT_SCENARIO.read_text(encoding="utf-8"))
    processes = scenario["processes"]
    next(p for p in processes if p["name"] == "powershell")["end"] = "exiting"
    runner = make_fleet(1, {"processes": processes})
    host = runner.fleet.host(HOST)
    res = quiesce(runner)
    assert not res.get("failed"), res.get("msg")
    assert host.processes.get(7204) is None
    assert 7204 not in [p["process_id"] for p in res["ended_processes"]]  # it ended by itself
