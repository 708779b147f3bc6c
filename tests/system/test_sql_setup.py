"""KB 256202 step 5: sql_setup over real ansible-playbook against twin hosts, inside the collection's window.

What a real server would do is the twin's (tests/twin/host/sql.py): today's setup stops at its WMI rule when
Winmgmt does not run; setup of the KB's era loses the single-user race to any client left; 3010 asks for a restart.
Setup runs as the host's own task on the host's clock (one second per WinRM request), so the controller's polls
see it running, then ended.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from conftest import play, services

from twin.host import media_setup_exe
from twin.winrm.server import Latency

HOST = "site01"
MEDIA = r"C:\SQLMedia\SQL2019"
KEY = "ABCDE-FGHIJ-KLMNO-PQRST-UVWXY"
RUN = """
- hosts: all
  gather_facts: false
  module_defaults:
    group/configmgr.sql_upgrade.service_window:
      run_id: r-upgrade
  tasks:
"""
SESSIONS_AND_STEP_2 = """    - name: Sessions before step 2
      configmgr.sql_upgrade.sql_single_user_check:
        fail_when_blocked: false
      register: sessions
    - name: KB step 2
      configmgr.sql_upgrade.win_service_quiesce:
        state: quiesced
        sql_sessions: "{{ sessions.sessions }}"
"""
STEPS_3_4 = """    - name: KB step 3
      configmgr.sql_upgrade.wmi_disable:
        state: disabled
    - name: KB step 4
      configmgr.sql_upgrade.net_isolate:
        state: isolated
"""
FOR_SETUP = """    - name: WMI running for setup
      configmgr.sql_upgrade.wmi_disable:
        state: running_for_setup
"""
BACK = RUN + """    - name: KB step 6
      configmgr.sql_upgrade.net_isolate:
        state: restored
    - name: KB step 7
      configmgr.sql_upgrade.wmi_disable:
        state: enabled
    - name: Services back
      configmgr.sql_upgrade.win_service_quiesce:
        state: restored
"""


def setup_task(**options: Any) -> str:
    options = {"media_path": MEDIA, "product_key": KEY, "poll_interval": 1, **options}
    lines = [f"        {k}: {v}" for k, v in options.items() if v is not None]
    return "    - name: KB step 5\n      configmgr.sql_upgrade.sql_setup:\n" + "\n".join(lines) + "\n"


def stage(host: Any, version: str = "15.0.2000.5", switch: str = '-m"SqlSetup"', reboot: bool = False,
          seconds: int = 2, key_in_media: bool = False) -> None:
    host.fs.mkdir(MEDIA + r"\x64")
    host.fs.write(MEDIA + r"\setup.exe", media_setup_exe(version, switch, reboot, seconds))
    ini = '[OPTIONS]\r\nPID="' + KEY + '"\r\n' if key_in_media else "[OPTIONS]\r\n"
    host.fs.write(MEDIA + r"\x64\DefaultSetup.ini", ini.encode("ascii"))


def version(host: Any) -> str:
    return str(host.sql.instance("MSSQLSERVER").version)


@pytest.mark.both_connections
def test_the_collections_procedure_upgrades_and_verifies(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    stage(host)
    before = services(host)
    run = runner.playbook(RUN + SESSIONS_AND_STEP_2 + STEPS_3_4 + FOR_SETUP + """    - name: The gate
      configmgr.sql_upgrade.sql_single_user_check:
""" + setup_task() + "      register: upgrade\n" + setup_task())
    res = run.result(HOST, -2)
    assert not res.get("failed"), res.get("msg")
    assert res["changed"] is True and res["outcome"] == "success" and res["exit_code"] == 0
    assert res["version_before"] == "13.0.6300.2" and res["version_after"] == "15.0.2000.5"
    assert res["summary"]["final_result"] == "Passed"
    assert res["verification"]["problems"] == [] and res["verification"]["version"] == "15.0.2000.5"
    assert res["polls"] >= 1 and res["reboot_required"] is False
    assert KEY not in str(run.data) and "/PID=********" in res["command_line"]
    again = run.result(HOST, -1)
    assert again["changed"] is False and "already at or above" in again["msg"]
    assert version(host) == "15.0.2000.5"
    assert host.sql.instance("MSSQLSERVER").edition != "Enterprise Evaluation Edition"
    # The journal recorded setup from start to end; the runner's files and the task are gone.
    journal = host.fs.read(r"C:\ProgramData\configmgr.sql_upgrade\journal.json").decode()
    assert '"status": "finished"' in journal
    assert host.tasks.get(r"\configmgr.sql_upgrade\sql_setup") is None
    assert not host.fs.exists(r"C:\ProgramData\configmgr.sql_upgrade\setup_run.json")
    assert runner.playbook(BACK).rc == 0
    after = services(host)
    assert {n for n in before if before[n] != after[n]} == set()


def test_todays_setup_with_wmi_disabled_fails_on_its_wmi_rule(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    stage(host)
    refused = runner.playbook(RUN + SESSIONS_AND_STEP_2 + STEPS_3_4 + setup_task())
    res = refused.result(HOST)
    assert res["failed"] is True and "wmi_disable state=running_for_setup" in res["msg"]
    assert "nothing was changed" in res["msg"] and not host.sql.runs
    forced = runner.playbook(RUN + setup_task(wmi_during_setup="stopped")).result(HOST)
    assert forced["failed"] is True
    assert forced["summary"]["failed_rules"] == ["WmiServiceStateCheck"]
    assert forced["exit_code"] == -2068119551 and forced["exit_code_hex"] == "0x84BB0001"
    assert any("WmiServiceStateCheck" in w for w in forced.get("warnings", []))
    assert version(host) == "13.0.6300.2"
    assert runner.playbook(BACK).rc == 0


def test_setup_forced_past_a_gate_with_sms_running_loses_the_race(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    stage(host, switch="-m")  # the KB's era's switch: any client may take the one connection
    gate = runner.playbook(play("""      configmgr.sql_upgrade.sql_single_user_check:
""")).result(HOST)
    assert gate["failed"] is True and "SMS_EXECUTIVE" in gate["msg"], gate["msg"]
    res = runner.playbook(RUN + setup_task()).result(HOST)
    assert res["failed"] is True
    assert res["exit_code_hex"] == "0x851A001A" and "18461" in res["msg"]
    assert version(host) == "13.0.6300.2"


def test_a_missing_product_key_is_refused(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    stage(host)
    res = runner.playbook(RUN + setup_task(product_key=None)).result(HOST)
    assert res["failed"] is True and "Evaluation" in res["msg"] and "nothing was changed" in res["msg"]
    assert not host.sql.runs and not host.fs.exists(r"C:\ProgramData\configmgr.sql_upgrade\journal.json")


def test_3010_asks_for_a_reboot(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    stage(host, reboot=True, key_in_media=True)
    res = runner.playbook(RUN + setup_task(product_key=None)).result(HOST)
    assert not res.get("failed"), res.get("msg")
    assert res["exit_code"] == 3010 and res["outcome"] == "reboot_required" and res["reboot_required"] is True
    assert res["product_key_source"] == "media"
    assert any("3010" in w for w in res.get("warnings", []))


def test_a_dropped_connection_during_setup_does_not_stop_it(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    stage(host, seconds=20)
    # The third command after the gather's two (start, first poll): a poll whose answer is lost.
    host.faults.lose_output_of_command = host.counters.winrm_commands + 5
    res = runner.playbook(RUN + setup_task()).result(HOST)
    assert not res.get("failed"), res.get("msg")
    assert res["reconnects"] == 1 and res["outcome"] == "success"
    assert version(host) == "15.0.2000.5"


def test_check_mode_prints_the_command_line_and_changes_nothing(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    stage(host)
    res = runner.playbook(RUN + setup_task(), "--check").result(HOST)
    assert res["changed"] is True and not res.get("failed"), res.get("msg")
    assert res["command_line"].startswith(MEDIA + r"\setup.exe /Q /ACTION=Upgrade /INSTANCENAME=MSSQLSERVER")
    assert "/UpdateEnabled=False" in res["command_line"].replace("UPDATEENABLED", "UpdateEnabled")
    assert not host.sql.runs and version(host) == "13.0.6300.2"


def test_setup_after_a_finished_window_starts_a_journal_of_its_own(make_fleet: Any) -> None:
    """A window opened and closed by one run (its journal finished); setup alone, by another run, later."""
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    stage(host)
    assert runner.playbook(RUN + SESSIONS_AND_STEP_2 + BACK.split("tasks:\n", 1)[1]).rc == 0
    res = runner.playbook(RUN.replace("r-upgrade", "r-later") + setup_task()).result(HOST)
    assert not res.get("failed"), res.get("msg")
    assert res["run_id"] == "r-later" and version(host) == "15.0.2000.5"
    journal = json.loads(host.fs.read(r"C:\ProgramData\configmgr.sql_upgrade\journal.json"))
    # The journal names the run that ran setup (a run refused while setup ran was told who holds the host), and
    # holds nothing of the earlier window.
    assert journal["run_id"] == "r-later" and "services" not in journal and journal["setup"]["status"] == "finished"


def test_a_connection_lost_as_setup_starts_is_picked_up_by_the_next_run(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    stage(host, seconds=20)
    # The gather, then the start, whose answer is lost: setup runs, the controller does not know it.
    host.faults.lose_output_of_command = host.counters.winrm_commands + 2
    lost = runner.playbook(RUN + setup_task()).result(HOST)
    assert lost["failed"] is True and "never starts a second one" in lost["msg"], lost["msg"]
    # Setup runs (one run, in its file copy) as the task of its own, while the controller heard nothing.
    assert len(host.sql.runs) == 1 and host.sql.active_setup is not None
    assert host.tasks.get(r"\configmgr.sql_upgrade\sql_setup").running
    again = runner.playbook(RUN + setup_task()).result(HOST)
    assert not again.get("failed"), again.get("msg")
    assert again["resumed"] is True and again["outcome"] == "success"
    assert len(host.sql.runs) == 1 and version(host) == "15.0.2000.5"
    assert any("waits for it instead of starting another" in w for w in again.get("warnings", []))


def minutes_per_poll(runner: Any, seconds: float = 10.0) -> None:
    """Each WinRM command costs `seconds` of the host's clock (the twin's latency model on its own clock): a setup
    of minutes in a few polls, without the test waiting for them."""
    for listener in runner.fleet.listeners.values():
        listener.endpoint.latency = Latency(per_command=seconds, clock="twin")


PROGRESS = re.compile(r"^site01: sql_setup: (?P<since>\S+) since setup started(?P<rest>.*)$", re.MULTILINE)


def test_each_poll_prints_where_setup_is_from_its_own_logs(make_fleet: Any) -> None:
    """The operator's view of a long setup: one line per poll, naming the host, the time since setup started, the
    action and package setup's Detail.txt and MSI logs show, and the last line; then setup's own duration."""
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    stage(host, seconds=120)
    minutes_per_poll(runner, 10)
    run = runner.playbook(RUN + setup_task())
    res = run.result(HOST)
    assert not res.get("failed"), res.get("msg")
    lines = list(PROGRESS.finditer(run.proc.stdout))
    assert len(lines) == res["polls"] >= 5, run.proc.stdout[-3000:]
    # The phase moves from poll to poll: setup's packages one after the other, each read from its MSI log's name.
    packages = re.findall(r"package (\w+)", run.proc.stdout)
    assert {"sql_common_core", "sql_engine_core_shared", "sql_engine_core_inst"} <= set(packages)
    assert packages.index("sql_common_core") < packages.index("sql_engine_core_inst")
    # The package named is the one whose action runs (the newest MSI log), never the one before it.
    assert all(f"package {m.group(1)}" in line.group(0) for line in lines
               if (m := re.search(r"running Install_(\w+)_Cpu64_Action", line.group(0))))
    assert any("running Install_sql_engine_core_shared_Cpu64_Action" in m.group("rest") for m in lines)
    assert all("\n" not in m.group(0) and len(m.group(0)) <= 240 for m in lines)
    assert 'last: "' in run.proc.stdout
    assert "site01: sql_setup: setup started as process" in run.proc.stdout
    ended = re.search(r"site01: sql_setup: setup ended after (\S+) with exit code 0", run.proc.stdout)
    assert ended is not None and res["setup_seconds"] >= 60
    assert res["progress"]["feature"] == "sql_engine_core_inst" and res["progress"]["log_folder"].startswith(
        r"C:\Program Files\Microsoft SQL Server\150\Setup Bootstrap\Log" + "\\")
    assert res["stalls"] == []


def test_a_setup_whose_logs_stop_moving_is_called_out_and_left_running(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    stage(host, seconds=60)
    host.faults.update({"setup": {"stall_seconds": 90}})
    minutes_per_poll(runner, 15)
    run = runner.playbook(RUN + setup_task(stall_warning=40))
    res = run.result(HOST)
    assert not res.get("failed"), res.get("msg")
    assert res["outcome"] == "success" and version(host) == "15.0.2000.5"  # warned, never killed
    assert res["stalls"] and all("setup may hang" in s for s in res["stalls"])
    assert "package sql_engine_core_inst" in res["stalls"][0] and "Detail.txt" in res["stalls"][0]
    # Printed as it happened (Ansible holds a task's own warnings until the task ends), and kept with the result.
    assert run.proc.stderr.count("[WARNING]: site01: sql_setup: setup may hang") == len(res["stalls"])
    assert sum("setup may hang" in w for w in res["warnings"]) == len(res["stalls"])
    assert "logs quiet for" in run.proc.stdout


def test_a_stall_warning_of_zero_never_warns(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    stage(host, seconds=12)
    host.faults.update({"setup": {"stall_seconds": 60}})
    minutes_per_poll(runner, 20)
    res = runner.playbook(RUN + setup_task(stall_warning=0)).result(HOST)
    assert not res.get("failed"), res.get("msg")
    assert res["stalls"] == []
