"""Today's SQL Server setup needs WMI; KB 256202's step 3 stops and disables it. The collection keeps the KB's
purpose (no WMI-borne client of the instance during the upgrade) and makes setup work: steps 2 to 4, then
wmi_disable state=running_for_setup (Winmgmt started under Manual, its dependents left stopped), then the gate.
Real ansible-playbook against twin hosts; setup itself runs through the twin's host API (the setup module is
not built yet), with the KB-era single-user switch, so any client left would win the race."""

from __future__ import annotations

from typing import Any

from conftest import play, services

from twin.host import media_setup_exe

HOST = "site01"
MEDIA = r"C:\SQLMedia\SQL2019"
PARAMS = {"ACTION": "Upgrade", "INSTANCENAME": "MSSQLSERVER", "Q": True, "IACCEPTSQLSERVERLICENSETERMS": True,
          "UpdateEnabled": "False", "PID": "XXXXX-XXXXX"}
WINDOW = """
- hosts: all
  gather_facts: false
  module_defaults:
    group/configmgr.sql_upgrade.service_window:
      run_id: r-upgrade
  tasks:
    - name: Sessions before step 2
      configmgr.sql_upgrade.sql_single_user_check:
        fail_when_blocked: false
      register: sessions
    - name: KB step 2
      configmgr.sql_upgrade.win_service_quiesce:
        state: quiesced
        sql_sessions: "{{ sessions.sessions }}"
    - name: KB step 3
      configmgr.sql_upgrade.wmi_disable:
        state: disabled
    - name: KB step 4
      configmgr.sql_upgrade.net_isolate:
        state: isolated
"""
FOR_SETUP = """
- hosts: all
  gather_facts: false
  module_defaults:
    group/configmgr.sql_upgrade.service_window:
      run_id: r-upgrade
  tasks:
    - name: WMI running for setup
      configmgr.sql_upgrade.wmi_disable:
        state: running_for_setup
    - name: Again (idempotent)
      configmgr.sql_upgrade.wmi_disable:
        state: running_for_setup
    - name: The window holds, WMI running for setup included
      configmgr.sql_upgrade.win_service_quiesce:
        state: verified
    - name: The gate
      configmgr.sql_upgrade.sql_single_user_check:
"""
BACK = """
- hosts: all
  gather_facts: false
  module_defaults:
    group/configmgr.sql_upgrade.service_window:
      run_id: r-upgrade
  tasks:
    - name: KB step 6
      configmgr.sql_upgrade.net_isolate:
        state: restored
    - name: KB step 7
      configmgr.sql_upgrade.wmi_disable:
        state: enabled
    - name: Services back
      configmgr.sql_upgrade.win_service_quiesce:
        state: restored
"""


def stage(host: Any) -> None:
    host.fs.mkdir(MEDIA)
    host.fs.write(MEDIA + r"\setup.exe", media_setup_exe("15.0.2000.5", "-m"))


def test_the_kb_as_written_stops_setup_at_its_wmi_rule(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    stage(host)
    assert runner.playbook(WINDOW).rc == 0
    assert host.sql.run_setup(MEDIA, PARAMS) == -2068119551  # WmiServiceStateCheck failed
    assert host.sql.runs[-1].failed_rules == ["WmiServiceStateCheck"]
    assert host.sql.instance("MSSQLSERVER").version == "13.0.6300.2"
    assert runner.playbook(BACK).rc == 0


def test_wmi_running_for_setup_keeps_the_sms_provider_unloaded_and_the_upgrade_succeeds(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    stage(host)
    before = services(host)
    assert runner.playbook(WINDOW).rc == 0
    run = runner.playbook(FOR_SETUP)
    first, again, verified, gate = (run.result(HOST, i) for i in range(4))
    assert not first.get("failed"), first.get("msg")
    assert first["changed"] is True and first["started"] == ["Winmgmt"] and first["restored"] == []
    assert first["wmi"]["status"] == "setup" and first["wmi"]["start_mode"] == "auto"
    assert again["changed"] is False
    assert host.scm.get("Winmgmt").state == "running" and host.scm.get("Winmgmt").start_mode == "manual"
    assert host.scm.get("CcmExec").state == "stopped"  # its dependents stay as the window left them
    assert not verified.get("failed"), verified.get("msg")
    assert not gate.get("failed"), gate.get("msg")
    assert gate["ready"] is True and gate["sessions"] == []  # nothing loads the SMS Provider

    assert host.sql.run_setup(MEDIA, PARAMS) == 0  # even with the KB-era switch: nobody is left to race it
    assert host.sql.instance("MSSQLSERVER").version == "15.0.2000.5"

    assert runner.playbook(BACK).rc == 0
    after = services(host)
    assert after["Winmgmt"] == before["Winmgmt"] == ("auto", "running")
    assert {n for n in before if before[n] != after[n]} == set()


def test_verified_names_wmi_set_back_to_automatic_during_setup(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    assert runner.playbook(WINDOW).rc == 0
    assert runner.playbook(FOR_SETUP).rc == 0
    host.scm.set_start_mode("Winmgmt", "auto")  # something set it back to automatic
    res = runner.playbook(play("""      configmgr.sql_upgrade.win_service_quiesce:
        state: verified
""")).result(HOST)
    assert res["failed"] is True
    assert {"name": "Winmgmt", "expected": "running and manual (for setup)", "actual": "running and auto"} \
        in res["drift"]
    assert runner.playbook(BACK).rc == 0
