"""wmi_disable over WinRM against a twin site server (real ansible-playbook, action plugin, pywinrm, twin)."""

from __future__ import annotations

import json
from typing import Any

from conftest import play, services

# Importing twin.emulation.configmgr registers the collection's executors with the twin.
from twin.emulation.configmgr import journal_path

HOST = "site01"
WMI = "Winmgmt"


def wmi(runner: Any, state: str, *extra: str, args: str = "") -> dict[str, Any]:
    task = f"      configmgr.sql_upgrade.wmi_disable:\n        state: {state}\n" + args
    return runner.playbook(play(task), *extra).result(HOST)


def running_dependents(host: Any) -> list[str]:
    return sorted(d for d in host.scm.get(WMI).dependency_of if host.scm.get(d).state == "running")


def test_disable_records_stops_and_disables_then_enable_restores(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    before = services(host)
    dependents = running_dependents(host)
    assert "CcmExec" in dependents  # the realistic site server has running WMI dependents
    res = wmi(runner, "disabled")
    assert not res.get("failed"), res.get("msg")
    assert res["changed"] is True
    assert host.scm.get(WMI).state == "stopped" and host.scm.get(WMI).start_mode == "disabled"
    assert all(host.scm.get(d).state == "stopped" for d in dependents)
    assert res["stopped"][-1] == WMI and set(res["stopped"][:-1]) >= set(dependents)
    doc = json.loads(host.fs.read(journal_path(host)))
    assert doc["wmi"]["status"] == "disabled"
    assert doc["wmi"]["start_mode"] == before[WMI][0]
    assert set(doc["wmi"]["dependents"]) >= set(dependents)
    # WinRM does not depend on winmgmt: the management channel is still up.
    assert host.scm.get("WinRM").state == "running"

    again = wmi(runner, "disabled")
    assert again["changed"] is False

    res = wmi(runner, "enabled")
    assert not res.get("failed"), res.get("msg")
    assert res["changed"] is True
    assert res["started"][0] == WMI
    assert services(host) == before
    assert json.loads(host.fs.read(journal_path(host)))["wmi"]["status"] == "enabled"
    assert wmi(runner, "enabled")["changed"] is False


def test_check_mode_changes_nothing(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    before = host.snapshot()["services"]
    # -vvv: CallbackBase._dump_results drops `diff` from results below verbosity 3.
    res = wmi(runner, "disabled", "--check", "--diff", "-vvv")
    assert res["changed"] is True
    assert res["diff"]["after"][WMI] == {"start_mode": "disabled", "state": "stopped"}
    assert host.snapshot()["services"] == before
    assert not host.fs.exists(journal_path(host))


# A WMI client over WinRM: win_stat of a folder runs Get-CimInstance Win32_Share (win_stat.ps1).
WMI_CLIENT = "      ansible.windows.win_stat:\n        path: C:\\Windows\n        get_size: false\n"


def test_stopped_wmi_comes_back_for_a_wmi_client_but_disabled_does_not(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    # Only stopped (as ansible.windows.win_service would leave it): the next WMI client starts it again.
    stop = runner.playbook(play(
        f"      ansible.windows.win_service:\n        name: {WMI}\n        state: stopped\n"
        "        force_dependent_services: true\n"
    )).result(HOST)
    assert stop["changed"] is True and host.scm.get(WMI).state == "stopped"
    client = runner.playbook(play(WMI_CLIENT))
    assert client.rc == 0, client.proc.stdout[-2000:]
    assert host.scm.get(WMI).state == "running"

    # Disabled by wmi_disable: the same WMI client fails, and winmgmt stays stopped.
    assert wmi(runner, "disabled")["changed"] is True
    client = runner.playbook(play(WMI_CLIENT))
    assert client.rc != 0
    assert "disabled" in client.result(HOST)["msg"].lower() or "0x80070422" in client.result(HOST)["msg"]
    assert host.scm.get(WMI).state == "stopped"
    host.tick(600)  # remote SMS Provider clients keep trying
    assert host.scm.get(WMI).state == "stopped"


def test_enable_without_a_journal_sets_automatic(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    host.scm.stop(WMI, force=True)
    host.scm.set_start_mode(WMI, "disabled")
    res = wmi(runner, "enabled")
    assert not res.get("failed"), res.get("msg")
    assert host.scm.get(WMI).start_mode == "auto" and host.scm.get(WMI).state == "running"


def test_unknown_state_fails_on_the_controller(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    commands = host.counters.winrm_commands
    res = wmi(runner, "paused")
    assert res["failed"] is True and "value of state must be one of: disabled, running_for_setup, enabled" in res["msg"]
    assert HOST in res["msg"]
    assert host.counters.winrm_commands == commands


def test_quiesce_then_wmi_then_restore_both_gives_back_the_table(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    before = services(host)
    text = play(
        "      configmgr.sql_upgrade.win_service_quiesce:\n        state: quiesced\n"
        "    - configmgr.sql_upgrade.wmi_disable:\n        state: disabled\n"
        "    - configmgr.sql_upgrade.wmi_disable:\n        state: enabled\n"
        "    - configmgr.sql_upgrade.win_service_quiesce:\n        state: restored\n"
    )
    run = runner.playbook(text)
    assert run.rc == 0, run.proc.stdout[-3000:]
    assert services(host) == before


def test_restoring_services_while_wmi_is_disabled_restores_the_rest_and_names_what_waits(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    before = services(host)
    first = runner.playbook(play(
        "      configmgr.sql_upgrade.win_service_quiesce:\n        state: quiesced\n"
        "    - configmgr.sql_upgrade.wmi_disable:\n        state: disabled\n"
    ))
    assert first.rc == 0, first.proc.stdout[-2000:]
    early = runner.playbook(play("      configmgr.sql_upgrade.win_service_quiesce:\n        state: restored\n"))
    res = early.result(HOST)
    assert res["failed"] is True
    assert "the restore is not finished: CcmExec: not started: it depends on Winmgmt" in res["msg"]
    assert "wmi_disable with state=enabled" in res["msg"] and "keeps every record" in res["msg"]
    # Everything but CcmExec is back already; Winmgmt and the dependents it stopped are wmi_disable's to restore.
    after = services(host)
    wmi_section = json.loads(host.fs.read(journal_path(host)))["wmi"]
    assert wmi_section["dependents"]
    changed = sorted(n for n in before if after[n] != before[n])
    assert changed == sorted(["CcmExec", "Winmgmt", *wmi_section["dependents"]])
    late = runner.playbook(play(
        "      configmgr.sql_upgrade.wmi_disable:\n        state: enabled\n"
        "    - configmgr.sql_upgrade.win_service_quiesce:\n        state: restored\n"
    ))
    assert late.rc == 0, late.proc.stdout[-2000:]
    assert services(host) == before


def test_a_winmgmt_demand_started_between_gather_and_apply_ends_stopped_and_disabled(make_fleet: Any) -> None:
    """Issue 26: winmgmt stopped (manual) at the gather, then started by a WMI client's request before the apply
    (Windows demand-starts it until it is disabled). The apply acts on the state it finds: disabled, then stopped -
    never disabled but running."""
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    # No remote WMI client until the apply (they demand-start winmgmt on every look), winmgmt stopped, manual.
    host.net.remote_clients = [c for c in host.net.remote_clients if c.target != "wmi"]
    for name in running_dependents(host):
        host.scm.stop(name, force=True)
    host.scm.set_start_mode(WMI, "manual")
    host.scm.stop(WMI, force=True)
    client = {"service": WMI, "do": "start", "at_module": "configmgr.sql_upgrade.wmi_disable:apply"}
    host.faults.update({"events": [client]})
    res = wmi(runner, "disabled")
    assert not res.get("failed"), res.get("msg")
    assert host.scm.get(WMI).start_mode == "disabled" and host.scm.get(WMI).state == "stopped"
    assert WMI in res["stopped"]
    back = wmi(runner, "enabled")
    assert not back.get("failed"), back.get("msg")
    assert host.scm.get(WMI).start_mode == "manual" and host.scm.get(WMI).state == "stopped"
