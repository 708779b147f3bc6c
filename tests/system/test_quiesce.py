"""win_service_quiesce over WinRM against a twin site server: the real ansible-playbook, the real action
plugin, pywinrm, the twin front end and the emulation of the executor (tests/twin/emulation/configmgr.py).

Each test gets its own one-host fleet, so the exact prior service table can be compared after a restore.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from conftest import play, services

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.catalog import CONFIGMGR, SQL_SERVER
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.patterns import first_match
from twin import emulation

# Importing twin.emulation.configmgr registers the collection's executors with the twin.
from twin.emulation.configmgr import journal_path

HOST = "site01"


def quiesce(runner: Any, args: str = "", *extra: str) -> dict[str, Any]:
    text = play("      configmgr.sql_upgrade.win_service_quiesce:\n        state: quiesced\n" + args)
    return runner.playbook(text, *extra).result(HOST)


def restore(runner: Any, args: str = "") -> dict[str, Any]:
    text = play("      configmgr.sql_upgrade.win_service_quiesce:\n        state: restored\n" + args)
    return runner.playbook(text).result(HOST)


def role_of(host: Any, name: str) -> str:
    return host.scm.get(name).role


@pytest.mark.both_connections
def test_quiesce_stops_every_sms_service_and_keeps_windows_and_sql(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    before = services(host)
    commands = host.counters.winrm_commands
    res = quiesce(runner)
    assert not res.get("failed"), res.get("msg")
    assert res["changed"] is True
    after = services(host)
    # Every Configuration Manager service ends stopped and disabled.
    sms = [n for n in before if first_match(n, CONFIGMGR)]
    assert "SMS_EXECUTIVE" in sms and "CcmExec" in sms
    for name in sms:
        assert after[name] == ("disabled", "stopped"), name
    # Every Windows core and SQL Server service is untouched (the instance above all).
    plan = {p["name"]: p for p in res["plan"]}
    for name in before:
        if role_of(host, name) in ("windows", "sql") and plan[name]["action"] == "keep":
            assert after[name] == before[name], name
    assert plan["MSSQLSERVER"]["source"] == "instance"
    assert plan["WinRM"]["source"] == "management_channel"
    assert plan["SMS"]["action"] == "keep"  # Storage Migration Service, not Configuration Manager
    assert plan["CcmExec"]["action"] == "stop"
    for name in before:
        if first_match(name, SQL_SERVER):
            assert after[name] == before[name], name
    # The connection stayed up: WinRM runs, and this very result came back over it.
    assert after["WinRM"] == before["WinRM"]
    # Two module calls (gather + apply): one WinRM command each.
    assert host.counters.winrm_commands - commands == 2
    # The journal holds the prior state of everything changed.
    doc = json.loads(host.fs.read(journal_path(host)))
    assert doc["services"]["records"]["SMS_EXECUTIVE"] == {"start_mode": before["SMS_EXECUTIVE"][0], "state": "running"}
    assert set(doc["services"]["records"]) == set(res["disabled"]) | set(res["stopped"])
    assert res["journal_path"] == journal_path(host)


def test_restore_gives_back_the_exact_prior_table_and_is_idempotent(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    before = services(host)
    assert quiesce(runner)["changed"] is True
    host.tick(300)  # time passes: SMS_SITE_COMPONENT_MANAGER would restart components, but they are disabled
    assert services(host)["SMS_EXECUTIVE"] == ("disabled", "stopped")
    res = restore(runner)
    assert not res.get("failed"), res.get("msg")
    assert res["changed"] is True
    after = services(host)
    assert after == before
    again = restore(runner)
    assert again["changed"] is False
    assert all(p["action"] == "none" for p in again["plan"])


def test_second_quiesce_is_unchanged(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    assert quiesce(runner)["changed"] is True
    journal = host.fs.read(journal_path(host))
    again = quiesce(runner)
    assert again["changed"] is False
    assert again["stopped"] == [] and again["disabled"] == []
    assert host.fs.read(journal_path(host)) == journal


def test_check_mode_returns_the_plan_and_changes_nothing(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    before = host.snapshot()["services"]
    # -vvv: CallbackBase._dump_results drops `diff` from results below verbosity 3.
    res = quiesce(runner, "", "--check", "--diff", "-vvv")
    assert res["changed"] is True
    assert "SMS_EXECUTIVE" in res["stopped"]
    assert res["diff"]["after"]["SMS_EXECUTIVE"] == {"start_mode": "disabled", "state": "stopped"}
    assert host.snapshot()["services"] == before
    assert not host.fs.exists(journal_path(host))


def test_a_hung_service_has_its_own_process_ended_and_the_restore_starts_it(make_fleet: Any) -> None:
    runner = make_fleet(1, {"faults": {"services": {"SMS_EXECUTIVE": {"stop": "stuck"}}}})
    host = runner.fleet.host(HOST)
    before = services(host)
    pid = host.scm.get("SMS_EXECUTIVE").process_id
    # A Configuration Manager service is ended only when asked (end_hung_configmgr), with its own timeout.
    res = quiesce(runner, "        configmgr_stop_timeout: 30\n        end_hung_configmgr: true\n")
    assert not res.get("failed"), res.get("msg")
    assert "SMS_EXECUTIVE" in res["stopped"] and host.scm.get("SMS_EXECUTIVE").state == "stopped"
    assert any(w.startswith(f"{HOST}: SMS_EXECUTIVE did not stop within 30 seconds") and f"(id {pid})" in w
               for w in res["warnings"])
    res = restore(runner)
    assert not res.get("failed"), res.get("msg")
    assert services(host) == before


def test_stuck_service_fails_by_name_and_restore_gives_back_the_table(make_fleet: Any) -> None:
    runner = make_fleet(1, {"faults": {"services": {"SMS_EXECUTIVE": {"stop": "stuck"}}}})
    host = runner.fleet.host(HOST)
    before = services(host)
    # The default for a Configuration Manager service: never ended, the stop fails after its own timeout.
    res = quiesce(runner, "        configmgr_stop_timeout: 60\n")
    assert res["failed"] is True
    assert "SMS_EXECUTIVE did not stop within 60 seconds" in res["msg"] and HOST in res["msg"]
    assert "state=restored" in res["msg"] and host.scm.get("SMS_EXECUTIVE").state == "stop_pending"
    assert res["failed_op"]["name"] == "SMS_EXECUTIVE"
    doc = json.loads(host.fs.read(journal_path(host)))
    assert doc["services"]["records"]["SMS_EXECUTIVE"]["state"] == "running"
    # The operator ends the hung process (taskkill /F): the service stops unexpectedly; being disabled,
    # its recovery action cannot restart it.
    svc = host.scm.get("SMS_EXECUTIVE")
    assert svc.state == "stop_pending"
    host.scm.kill_process(svc.process_id)
    host.tick(120)
    assert host.scm.get("SMS_EXECUTIVE").state == "stopped"
    res = restore(runner)
    assert not res.get("failed"), res.get("msg")
    assert services(host) == before


def test_bad_input_fails_on_the_controller_without_touching_the_host(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    before = host.snapshot()["services"]
    commands = host.counters.winrm_commands
    for args, needle in [
        ("        stop: ['']\n", "option stop[0] is an empty pattern"),
        ("        bogus: 1\n", "unsupported option(s) bogus"),
        ("        keep: ['SMS_EXECUTIVE']\n        stop: ['SMS_*']\n", "matches both keep pattern"),
    ]:
        res = quiesce(runner, args)
        assert res["failed"] is True and needle in res["msg"] and HOST in res["msg"], res["msg"]
    # The contradiction needs the gathered table (one read-only call); the other two never reach the host.
    assert host.counters.winrm_commands - commands == 1
    assert host.snapshot()["services"] == before


def test_missing_journal_is_an_error_unless_allowed(make_fleet: Any) -> None:
    runner = make_fleet(1)
    res = restore(runner)
    assert res["failed"] is True and "no service journal" in res["msg"] and "missing_journal_ok" in res["msg"]
    ok = restore(runner, "        missing_journal_ok: true\n")
    assert not ok.get("failed") and ok["changed"] is False


def test_corrupt_journal_is_refused_and_nothing_changes(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    assert quiesce(runner)["changed"] is True
    doc = json.loads(host.fs.read(journal_path(host)))
    doc["services"]["records"]["SMS_EXECUTIVE"]["start_mode"] = "auto; Stop-Computer"
    host.fs.write(journal_path(host), json.dumps(doc).encode())
    before = host.snapshot()["services"]
    res = restore(runner)
    assert res["failed"] is True and "corrupt or was tampered with" in res["msg"] and "start_mode" in res["msg"]
    assert host.snapshot()["services"] == before


def test_hostile_names_reach_the_host_as_data(make_fleet: Any, monkeypatch: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    received: list[dict[str, Any]] = []
    fqcn = "configmgr.sql_upgrade.win_service_quiesce"
    original = emulation.REGISTRY[fqcn]

    def recording(ctx: Any) -> dict[str, Any]:
        received.append(dict(ctx.params))
        return original.handler(ctx)

    monkeypatch.setitem(emulation.REGISTRY, fqcn, dataclasses.replace(original, handler=recording))
    hostile = ["x'; Stop-Computer -Force; '", "$(Stop-Computer)", "`whoami`", "a\nb", "caf\u00e9\u2603", 'q"q', "a;b"]
    args = "        keep:\n" + "".join(f"          - {json.dumps(h)}\n" for h in hostile)
    res = quiesce(runner, args, "--check")
    assert not res.get("failed"), res.get("msg")
    # The executor received the names exactly, as JSON data (one gather call in check mode).
    assert [r["keep"] for r in received] == [hostile]
    assert received[0]["_phase"] == "gather"
    assert host.is_up and services(host)["WinRM"][1] == "running"


def test_services_holding_a_session_on_the_instance_stop_too(make_fleet: Any) -> None:
    """WSUS is Windows, but it is a SQL client of the instance being upgraded (SUSDB): the live sessions
    (the gate's query, here read from the model) stop it with that reason; remote sessions are ignored."""
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    before = services(host)
    sessions = [
        {k: s[k] for k in ("host_process_id", "host_name", "program_name")}
        for s in host.sql.instances["MSSQLSERVER"].sessions()
    ]
    wsus = next(s for s in sessions if s["program_name"] == "WSUS Service")
    assert host.scm.get("WsusService").process_id == wsus["host_process_id"]
    args = "        sql_sessions: " + json.dumps(sessions) + "\n"
    res = quiesce(runner, args)
    assert not res.get("failed"), res.get("msg")
    plan = {p["name"]: p for p in res["plan"]}
    assert plan["WsusService"]["action"] == "stop" and plan["WsusService"]["source"] == "sql_session"
    assert "WSUS Service" in plan["WsusService"]["reason"]
    assert host.scm.get("WsusService").state == "stopped"
    # No local service is left holding a session; only remote clients (the firewall's job, step 4) remain.
    remaining = host.sql.instances["MSSQLSERVER"].sessions()
    assert all(s["host_name"] != host.computer_name or s["host_process_id"] == host.wmiprvse_pid for s in remaining)
    assert restore(runner)["changed"] is True
    assert services(host) == before


def test_a_pattern_that_matches_no_service_is_a_warning(make_fleet: Any) -> None:
    runner = make_fleet(1)
    res = quiesce(runner, "        stop: ['SMS_EXECUTIV', 'SMS_*']\n", "--check")
    assert not res.get("failed"), res.get("msg")
    assert any("'SMS_EXECUTIV' matches no service" in w for w in res.get("warnings", [])), res.get("warnings")
    assert not any("'SMS_*'" in w for w in res.get("warnings", []))
