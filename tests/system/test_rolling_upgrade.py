"""Issue 16: the role site_sql_upgrade and playbooks/rolling_sql_upgrade.yml against a twin hierarchy.

Real ansible-playbook over WinRM (the module tests run each module over psrp too; these whole-fleet runs use the
winrm plugin only, to keep the suite's time). The twin records each setup run's order across hosts
(SetupRun.sequence), which the hierarchy order is checked against.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
import yaml
from conftest import BIN, Runner, _run, services

from twin.fleet import Fleet
from twin.hierarchy import Hierarchy
from twin.host import make_iso, media_setup_exe
from twin.host.powershell import PowerShellPolicy

REPO = Path(__file__).resolve().parents[2]
ROLLING = REPO / "playbooks" / "rolling_sql_upgrade.yml"
RESTORE = REPO / "playbooks" / "restore.yml"
TARGET = "15.0.2000.5"
KEY = "ABCDE-FGHIJ-KLMNO-PQRST-UVWXY"
SMALL = Hierarchy(primaries=1, secondaries=2, standalone=1, standalone_secondaries=0)  # CAS, P01, S01, S02, X01


def media(tmp: Path) -> Path:
    iso = tmp / "SQLServer2019-x64-ENU.iso"
    iso.write_bytes(make_iso({"setup.exe": media_setup_exe(TARGET, '-m"SqlSetup"', False, 2),
                              "x64\\DefaultSetup.ini": f'[OPTIONS]\r\nPID="{KEY}"\r\n'.encode()}))
    return iso


class Rollout:
    def __init__(self, shape: Hierarchy, fleet: Fleet, tmp: Path) -> None:
        self.shape = shape
        self.fleet = fleet
        self.runner = Runner(fleet, tmp, "winrm")
        iso = media(tmp)
        hosts = shape.host_vars()
        extra = {"all": {"hosts": hosts, "vars": {
            "site_sql_upgrade_target_version": TARGET,
            "site_sql_upgrade_media_src": str(iso),
            "site_sql_upgrade_media_checksum": hashlib.sha256(iso.read_bytes()).hexdigest(),
            "site_sql_upgrade_media_dest": "C:\\SQLMedia\\SQL2019",
            "site_sql_upgrade_poll_interval": 1,
            "site_sql_upgrade_gate_timeout": 5,
        }}}
        self.extra = tmp / "hierarchy.yml"
        self.extra.write_text(yaml.safe_dump(extra), encoding="utf-8")
        for host in fleet.hosts.values():
            host.fs.mkdir("C:\\SQLMedia")

    def run(self, *args: str, playbook: Path = ROLLING, env: dict[str, str] | None = None) -> Any:
        cmd = [str(BIN / "ansible-playbook"), "-i", str(self.runner.inventory), "-i", str(self.extra), str(playbook),
               "-e", "sql_upgrade_batch_size=2", *args]
        return _run(cmd, {**self.runner.env, **(env or {})}, self.runner.tmp)

    def version(self, name: str) -> str:
        return str(self.fleet.host(name).sql.instance("MSSQLSERVER").version)

    def order(self) -> list[str]:
        """Host names in the order their (last) setup ran."""
        runs = [(h.sql.runs[-1].sequence, name) for name, h in self.fleet.hosts.items() if h.sql.runs]
        return [name for _seq, name in sorted(runs)]


@pytest.fixture
def rollout(tmp_path: Path) -> Iterator[Any]:
    started: list[Fleet] = []

    def make(shape: Hierarchy = SMALL, more: dict[str, dict[str, Any]] | None = None) -> Rollout:
        fleet = Fleet(shape.size, scenario=shape.scenario(more)).start()
        started.append(fleet)
        return Rollout(shape, fleet, tmp_path)

    yield make
    for fleet in started:
        fleet.stop()


def after_reboot(before: dict[str, tuple[str, str]], after: dict[str, tuple[str, str]]) -> list[str]:
    """What KB step 8's reboot may not explain: a start mode that changed, or a service that starts by itself
    (automatic, delayed) that does not run. Manual services that ran before (started on demand) are stopped after
    the reboot until something asks for them, as on any Windows boot."""
    out = []
    for name, (mode, state) in before.items():
        now_mode, now_state = after.get(name, ("missing", "missing"))
        if now_mode != mode:
            out.append(f"{name}: start mode {mode} -> {now_mode}")
        elif mode in ("auto", "delayed") and state == "running" and now_state != "running":
            out.append(f"{name}: {mode} and running before, {now_state} after the reboot")
    return out


def window_state(host: Any) -> dict[str, Any]:
    snap = host.snapshot()
    return {"services": services(host), "winmgmt": snap["winmgmt"],
            "rules": [r for r in snap["network"]["firewall"]["rules"] if "configmgr.sql_upgrade" in str(r)]}


def test_a_hierarchy_upgrades_in_microsofts_order_and_every_host_comes_back(rollout: Any, tmp_path: Path) -> None:
    ro = rollout()
    before = {name: window_state(h) for name, h in ro.fleet.hosts.items()}
    reports = tmp_path / "report"
    run = ro.run(env={"ANSIBLE_CALLBACKS_ENABLED": "configmgr.sql_upgrade.upgrade_report",
                      "CONFIGMGR_SQL_UPGRADE_REPORT_DIR": str(reports)})
    assert run.rc == 0, run.proc.stdout[-4000:]
    doc = json.loads((reports / "report.json").read_text(encoding="utf-8"))
    assert [w["name"] for w in doc["waves"]] == ["the central administration site",
                                                 "the secondary sites, before their primaries", "the primary sites"]
    assert doc["totals"]["upgraded"] == 5 and doc["hosts"] == 5
    assert all(h["account"]["version_after"] == TARGET and h["timeline"] for w in doc["waves"] for h in w["hosts"])
    assert ET.parse(reports / "report.xml").getroot().tag == "testsuites"
    assert "<!DOCTYPE html>" in (reports / "report.html").read_text(encoding="utf-8")
    codes = ro.shape.by_code()
    assert all(ro.version(name) == TARGET for name in ro.fleet.hosts)
    order = ro.order()
    assert order[0] == codes["CAS"]
    assert order.index(codes["S01"]) < order.index(codes["P01"])
    assert order.index(codes["S02"]) < order.index(codes["P01"])
    assert set(order[-2:]) == {codes["P01"], codes["X01"]}  # the primaries last
    for name, host in ro.fleet.hosts.items():
        after = window_state(host)
        assert after["rules"] == [] and after["winmgmt"] == {"start_mode": "auto", "state": "running"}
        assert after_reboot(before[name]["services"], after["services"]) == [], name
        journal = host.fs.read(r"C:\ProgramData\configmgr.sql_upgrade\journal.json").decode()
        assert '"status": "restored"' in journal and '"status": "finished"' in journal
    # Re-run: every host is at the target, skipped whole, nothing changes.
    again = ro.run()
    assert again.rc == 0
    assert all(s["changed"] == 0 for name, s in again.stats.items() if name in ro.fleet.hosts), again.stats


def test_check_mode_prints_the_waves_and_changes_nothing(rollout: Any) -> None:
    ro = rollout()
    before = {name: window_state(h) for name, h in ro.fleet.hosts.items()}
    run = ro.run("--check")
    assert run.rc == 0, run.proc.stdout[-4000:]
    waves = run.data["plays"][0]["tasks"][1]["hosts"]["localhost"]["msg"]
    assert [w.split(":")[0] for w in waves] == ["central administration site", "secondary sites", "primary sites"]
    # Each host's plan: what stops and why, the firewall rules, and the command line with the key masked.
    plans = [r for p in run.data["plays"] for t in p["tasks"] for r in t["hosts"].values()
             if t["task"]["action"] == "configmgr.sql_upgrade.sql_setup" and not r.get("skipped")]
    assert len(plans) == len(ro.fleet.hosts)
    assert all(p["command_line"].startswith("C:\\SQLMedia\\SQL2019\\setup.exe /Q /ACTION=Upgrade") for p in plans)
    stops = {h for p in run.data["plays"] for t in p["tasks"] for h, r in t["hosts"].items()
             if t["task"]["action"] == "configmgr.sql_upgrade.win_service_quiesce" and "SMS_EXECUTIVE" in
             (r.get("stopped") or [])}
    assert stops == set(ro.fleet.hosts)
    assert all(window_state(h) == before[name] for name, h in ro.fleet.hosts.items())
    assert all(not h.sql.runs and not h.fs.exists(r"C:\ProgramData\configmgr.sql_upgrade\journal.json")
               for h in ro.fleet.hosts.values())


def test_a_failed_secondary_is_restored_and_holds_back_its_primary(rollout: Any) -> None:
    codes = SMALL.by_code()
    more = {codes["S01"]: {"faults": {"services": {"SMS_EXECUTIVE": {"protected": True}}}}}
    ro = rollout(more=more)
    before = {name: window_state(h) for name, h in ro.fleet.hosts.items()}
    run = ro.run("-e", "sql_upgrade_max_fail_percentage=100")
    assert run.rc == 2
    assert ro.version(codes["S01"]) != TARGET and ro.version(codes["P01"]) != TARGET  # held back
    assert ro.version(codes["S02"]) == TARGET and ro.version(codes["X01"]) == TARGET  # the rest went on
    held = [r for p in run.data["plays"] for t in p["tasks"] for h, r in t["hosts"].items()
            if h == codes["P01"] and "held back" in str(r.get("msg"))]
    assert held and codes["S01"] in held[0]["msg"]
    failed = window_state(ro.fleet.host(codes["S01"]))
    assert failed["rules"] == [] and failed["winmgmt"]["state"] == "running"
    assert failed["services"] == before[codes["S01"]]["services"]
    # Fixed, a re-run resumes: the upgraded hosts are skipped, the held-back ones upgrade.
    ro.fleet.host(codes["S01"]).faults.services.clear()
    again = ro.run()
    assert again.rc == 0, again.proc.stdout[-3000:]
    assert all(ro.version(name) == TARGET for name in ro.fleet.hosts)


def test_a_failed_central_site_stops_the_run(rollout: Any) -> None:
    codes = SMALL.by_code()
    ro = rollout(more={codes["CAS"]: {"faults": {"setup": {"exit_code": -2061893606}}}})
    run = ro.run()
    assert run.rc == 2
    assert [n for n in ro.fleet.hosts if ro.fleet.host(n).sql.runs] == [codes["CAS"]]
    assert window_state(ro.fleet.host(codes["CAS"]))["rules"] == []


def test_the_failure_threshold_stops_the_rollout(rollout: Any) -> None:
    shape = Hierarchy(primaries=1, secondaries=4, standalone=0)  # CAS, P01, S01..S04
    codes = shape.by_code()
    stuck = {"faults": {"services": {"SMS_EXECUTIVE": {"protected": True}}}}
    ro = rollout(shape, more={codes["S01"]: stuck, codes["S02"]: stuck})
    run = ro.run("-e", "sql_upgrade_max_fail_percentage=10")
    assert run.rc != 0
    # The first batch of secondaries (S01, S02) failed past the threshold: nothing after it ran.
    assert not ro.fleet.host(codes["S03"]).sql.runs and not ro.fleet.host(codes["P01"]).sql.runs


@pytest.mark.parametrize(("fault", "message"), [
    ({"registry": {r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending": {}}},
     "a restart is pending"),
    ({"registry": {r"HKLM\SOFTWARE\Microsoft\SMS\Setup": {"Full Version": "5.00.8790.1000"}}},
     "needs Configuration Manager 1910"),
    ({"registry": {r"HKLM\SOFTWARE\Microsoft\SMS\SQL Server": {"Database Name": "CM_Q01"}}},
     "the site database CM_Q01 is not on this instance"),
    ({"registry": {r"HKLM\SYSTEM\CurrentControlSet\Control\Session Manager": {
        "PendingFileRenameOperations": ["\\??\\C:\\Windows\\Temp\\x.dll", ""]}}},
     "pending file renames"),
])
def test_each_preflight_refusal_stops_the_host_before_any_change(rollout: Any, fault: dict[str, Any],
                                                                 message: str) -> None:
    shape = Hierarchy(primaries=0, secondaries=0, standalone=1, cas=False)
    ro = rollout(shape, more={"site01": fault})
    host = ro.fleet.host("site01")
    before = window_state(host)
    run = ro.run()
    assert run.rc == 2
    assert message in str(run.data), run.proc.stdout[-3000:]
    assert window_state(host) == before and not host.sql.runs
    assert not host.fs.exists(r"C:\ProgramData\configmgr.sql_upgrade\journal.json")
    assert not host.fs.exists("C:\\SQLMedia\\SQL2019")


def test_a_host_with_no_place_in_the_hierarchy_stops_everything_before_it_starts(rollout: Any, tmp_path: Path) -> None:
    ro = rollout()
    data = yaml.safe_load(ro.extra.read_text(encoding="utf-8"))
    data["all"]["hosts"]["site03"]["site_sql_upgrade_parent_site_code"] = ""
    ro.extra.write_text(yaml.safe_dump(data), encoding="utf-8")
    run = ro.run()
    assert run.rc == 2 and "needs site_sql_upgrade_parent_site_code" in str(run.data)
    assert all(h.counters.winrm_commands == 0 for h in ro.fleet.hosts.values())


def test_restore_playbook_puts_a_host_back(rollout: Any) -> None:
    shape = Hierarchy(primaries=0, secondaries=0, standalone=1, cas=False)
    ro = rollout(shape)
    host = ro.fleet.host("site01")
    before = window_state(host)
    opened = ro.runner.playbook("""
- hosts: all
  gather_facts: false
  tasks:
    - configmgr.sql_upgrade.win_service_quiesce:
    - configmgr.sql_upgrade.wmi_disable:
    - configmgr.sql_upgrade.net_isolate:
""", "-e", "ansible_psrp_run_id=none")
    assert opened.rc == 0
    assert window_state(host) != before
    # Another controller's operator, at 3 a.m.: the run that opened the window is dead; take it over.
    holder = json.loads(host.fs.read(r"C:\ProgramData\configmgr.sql_upgrade\journal.json"))["run_id"]
    run = ro.run("-e", "sql_upgrade_restore_host=site01", "-e", f"sql_upgrade_takeover={holder}", playbook=RESTORE)
    assert run.rc == 0, run.proc.stdout[-3000:]
    assert window_state(host) == before


def test_a_host_another_run_holds_is_refused_before_step_1(rollout: Any) -> None:
    shape = Hierarchy(primaries=0, secondaries=0, standalone=1, cas=False)
    ro = rollout(shape)
    host = ro.fleet.host("site01")
    held = ro.runner.playbook("""
- hosts: all
  gather_facts: false
  tasks:
    - configmgr.sql_upgrade.wmi_disable:
        run_id: chg-4711
""")
    assert held.rc == 0
    run = ro.run()
    assert run.rc == 2 and "run chg-4711" in str(run.data), run.proc.stdout[-3000:]
    assert not host.fs.exists("C:\\SQLMedia\\SQL2019") and not host.sql.runs
    assert host.scm.get("Winmgmt").start_mode == "disabled"  # the holder's window is left to the holder


# --- the role's tags (issue "Declared once"): each step file is imported, so `--tags step2` runs step 2's tasks and
# no other step's; the preflight, the rescue and the report run under any tag filter, so a host that fails under a
# tag filter is still put back.

ONE = Hierarchy(primaries=0, secondaries=0, standalone=1, cas=False)


def tasks_run(run: Any, host: str) -> list[str]:
    """The names of the tasks that ran on `host` (not skipped), in order, without the role's prefix."""
    return [task["task"]["name"].rsplit(" : ", 1)[-1] for play in run.data["plays"] for task in play["tasks"]
            if host in task["hosts"] and not task["hosts"][host].get("skipped")]


def failures(run: Any) -> list[str]:
    return [f"{host}: {result.get('msg')}" for play in run.data["plays"] for task in play["tasks"]
            for host, result in task["hosts"].items() if result.get("failed")]


def test_tags_select_one_step_and_the_next_run_puts_it_back(rollout: Any) -> None:
    ro = rollout(ONE)
    host = ro.fleet.host("site01")
    before = window_state(host)

    run = ro.run("--tags", "step2", "-e", "sql_upgrade_run_id=chg-4711")

    assert run.rc == 0, failures(run)
    ran = tasks_run(run, "site01")
    # Step 2's tasks ran (an include would have run only itself); no other step's did.
    assert any(name.startswith("Step 2 - stop every service") for name in ran), ran
    assert not [n for n in ran if n.split(" - ")[0] in ("Step 1", "Step 3", "Step 4", "Step 5", "Step 7", "Step 8")]
    assert any(n.startswith("Preflight - ") for n in ran) and any(n.startswith("Report - ") for n in ran)
    assert host.scm.get("SMS_EXECUTIVE").state == "stopped" and host.scm.get("SMS_EXECUTIVE").start_mode == "disabled"
    assert host.scm.get("Winmgmt").state == "running" and not host.fs.exists("C:\\SQLMedia\\SQL2019")
    assert not host.sql.runs

    # The window belongs to the run that opened it: the next playbook run goes on with it by the same run id.
    back = ro.run("--tags", "step7", "-e", "sql_upgrade_run_id=chg-4711")

    assert back.rc == 0, failures(back)
    assert any(n.startswith("Step 7 - the services back") for n in tasks_run(back, "site01"))
    assert window_state(host) == before


def test_a_host_that_fails_under_a_tag_filter_is_put_back_and_the_report_names_the_step(rollout: Any) -> None:
    # Winmgmt refuses to be changed (a protected service): step 3 fails after step 2 stopped the SMS services.
    ro = rollout(ONE, {"site01": {"faults": {"services": {"Winmgmt": {"protected": True}}}}})
    host = ro.fleet.host("site01")
    before = window_state(host)

    run = ro.run("--tags", "step2,step3")

    assert run.rc == 2
    ran = tasks_run(run, "site01")
    assert any(n.startswith("Step 2 - stop every service") for n in ran)
    assert any(n.startswith("Restore - the services back") for n in ran), ran
    report = [task["hosts"]["site01"] for play in run.data["plays"] for task in play["tasks"]
              if "site01" in task["hosts"] and task["task"]["name"].endswith(" : Report - the failure, where, what was "
                                                                             "put back and what is left")][0]
    assert 'failed at Step 3 ("Step 3 - stop and disable' in report["msg"] and "put back" in report["msg"]
    assert window_state(host) == before


def test_a_gate_that_cannot_see_refuses_the_host_before_its_window(rollout: Any) -> None:
    """Issue 26: a login without VIEW SERVER STATE would make the gate call a busy instance ready. The role's first
    read of the sessions (before step 2) refuses the host, naming the grant, and nothing of the window is open."""
    ro = rollout(ONE)
    name = next(iter(ro.fleet.hosts))
    host = ro.fleet.host(name)
    host.sql.instance("MSSQLSERVER").logins = {"BUILTIN\\Administrators": {"sysadmin": False}}
    before = window_state(host)
    run = ro.run()
    assert run.rc != 0
    assert window_state(host) == before and not host.sql.runs
    grant = f"GRANT VIEW SERVER STATE TO [{host.computer_name}\\Administrator];"
    assert grant in json.dumps(run.data, ensure_ascii=False).replace("\\\\", "\\"), run.proc.stdout[-3000:]


def test_a_host_whose_watchdog_could_not_run_is_refused_before_step_1(rollout: Any) -> None:
    """Issue 26: the role's preflight runs the readiness probe; a Group Policy execution policy that blocks the
    watchdog's script refuses the host before anything changes (no media staged, no window)."""
    ro = rollout(ONE)
    name = next(iter(ro.fleet.hosts))
    host = ro.fleet.host(name)
    host.powershell = PowerShellPolicy(machine_policy="AllSigned")
    before = window_state(host)
    run = ro.run()
    assert run.rc != 0
    assert window_state(host) == before and not host.sql.runs
    assert not host.fs.exists("C:\\SQLMedia\\SQL2019")
    assert "Turn on Script Execution" in json.dumps(run.data), run.proc.stdout[-3000:]
