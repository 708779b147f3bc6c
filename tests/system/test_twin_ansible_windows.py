"""The twin through the real tools: ansible / ansible-playbook → winrm plugin → pywinrm → twin front end.

Each test asserts on Ansible's result and on the host model's state after the run.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from twin.winrm.payload import decode_bootstrap_input, module_fqcn

WMI = "Winmgmt"


def _running(host, name):
    return host.scm.get(name).state == "running"


@pytest.mark.both_connections
def test_win_ping_reaches_every_host_and_counts_traffic(fleet):
    before = {n: fleet.fleet.host(n).counters.winrm_commands for n in fleet.fleet.hosts}
    run = fleet.ansible("all", "ansible.windows.win_ping")
    assert run.rc == 0, run.proc.stdout
    for name, host in fleet.fleet.hosts.items():
        assert run.result(name)["ping"] == "pong"
        assert host.counters.winrm_commands == before[name] + 1
        assert host.counters.bytes_in > 10_000  # the exec wrapper and Ansible.Basic travel on every call
        assert host.counters.bytes_out > 0


def test_win_service_info_returns_the_host_models_service(fleet):
    run = fleet.ansible("site01", "ansible.windows.win_service_info", "name=WinRM")
    res = run.result("site01")
    assert res["exists"] is True
    (svc,) = res["services"]
    assert svc == fleet.fleet.host("site01").scm.info("WinRM")
    assert svc["state"] == "started"


def test_stop_with_dependents_needs_force_then_start_brings_dependencies(fleet):
    host = fleet.fleet.host("site02")
    dependents = [d for d in host.scm.get(WMI).dependency_of if _running(host, d)]
    assert dependents, "the site server has running WMI dependents"
    refused = fleet.ansible("site02", "ansible.windows.win_service", f"name={WMI} state=stopped")
    res = refused.result("site02")
    assert res["failed"] is True
    assert "because it has dependent services" in res["msg"]
    assert _running(host, WMI)

    forced = fleet.ansible("site02", "ansible.windows.win_service",
                           f"name={WMI} state=stopped force_dependent_services=true")
    res = forced.result("site02")
    assert res["changed"] is True and res["state"] == "stopped"
    assert host.scm.get(WMI).state == "stopped"
    assert all(host.scm.get(d).state == "stopped" for d in dependents)

    dependent = dependents[0]
    started = fleet.ansible("site02", "ansible.windows.win_service", f"name={dependent} state=started")
    assert started.result("site02")["state"] == "running"
    assert _running(host, dependent) and _running(host, WMI)  # the SCM started its dependency first


def test_check_mode_reports_change_and_changes_nothing(fleet):
    host = fleet.fleet.host("site03")
    name = next(n for n in host.scm.names() if _running(host, n) and not host.scm.get(n).dependency_of
                and "stop" in host.scm.get(n).running_controls)
    run = fleet.ansible("site03", "ansible.windows.win_service", f"name={name} state=stopped", "--check", "--diff")
    res = run.result("site03")
    assert res["changed"] is True
    assert res["diff"]["before"]["state"] == "started" and res["diff"]["after"]["state"] == "stopped"
    assert _running(host, name)


def test_recovery_action_restarts_a_killed_service(fleet):
    host = fleet.fleet.host("site04")
    name = next(n for n in host.scm.names() if _running(host, n) and host.scm.get(n).start_mode != "disabled"
                and any(a["type"] == "restart" for a in host.scm.get(n).failure_actions[:1])
                and len(host.scm.by_pid(host.scm.get(n).process_id)) == 1)
    old_pid = host.scm.get(name).process_id
    host.scm.kill_process(old_pid)
    assert host.scm.get(name).state == "stopped"
    delay = host.scm.get(name).failure_actions[0]["delay_ms"] / 1000.0
    assert delay > 2, "the recovery delay must outlast the one model second a WinRM command takes"
    res = fleet.ansible("site04", "ansible.windows.win_service_info", f"name={name}").result("site04")
    assert res["services"][0]["state"] == "stopped"  # the SCM waits out the recovery delay
    # Time passes on the host while the controller is away (each WinRM command also ticks one second).
    host.tick(delay)
    res = fleet.ansible("site04", "ansible.windows.win_service_info", f"name={name}").result("site04")
    assert res["services"][0]["state"] == "started", f"{name} was not restarted after {delay} s"
    assert res["services"][0]["process_id"] not in (0, old_pid)
    assert res["services"][0]["process_id"] == host.scm.get(name).process_id


def test_setup_demand_starts_wmi_unless_disabled(make_fleet):
    runner = make_fleet(1)
    host = runner.fleet.host("site01")
    host.scm.stop(WMI, force=True)
    assert host.scm.get(WMI).state == "stopped"
    facts = runner.ansible("site01", "ansible.windows.setup").result("site01")
    assert facts["ansible_facts"]["ansible_os_family"] == "Windows"
    assert _running(host, WMI)  # a WMI client started it

    host.scm.stop(WMI, force=True)
    host.scm.set_start_mode(WMI, "disabled")
    failed = runner.ansible("site01", "ansible.windows.setup").result("site01")
    assert failed["failed"] is True
    assert "disabled" in failed["msg"] and "0x80070422" in failed["msg"]
    assert host.scm.get(WMI).state == "stopped"


@pytest.mark.both_connections
def test_win_reboot_changes_boot_time_and_starts_services(make_fleet):
    runner = make_fleet(1)
    host = runner.fleet.host("site01")
    auto = [n for n in host.scm.names() if host.scm.get(n).start_mode == "auto" and _running(host, n)]
    victim = next(n for n in auto if not host.scm.get(n).dependency_of and "stop" in host.scm.get(n).running_controls)
    host.scm.stop(victim)
    boot_before = host.boot_time_filetime
    run = runner.playbook(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - ansible.windows.win_reboot: {reboot_timeout: 60}\n"
    )
    res = run.result("site01")
    assert res.get("rebooted") is True, res
    assert host.boot_time_filetime != boot_before
    assert _running(host, victim)  # automatic services start at boot


def test_win_reboot_inside_the_wmi_free_window_fails_before_rebooting(make_fleet):
    # win_reboot reads the boot time with Get-CimInstance Win32_OperatingSystem before it reboots: with
    # winmgmt disabled (KB steps 3-7) that fails, so WMI must come back before step 8's reboot.
    runner = make_fleet(1)
    host = runner.fleet.host("site01")
    host.scm.stop(WMI, force=True)
    host.scm.set_start_mode(WMI, "disabled")
    boot_before = host.boot_time_filetime
    run = runner.playbook(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - ansible.windows.win_reboot: {reboot_timeout: 60}\n"
    )
    res = run.result("site01")
    assert res.get("failed") is True and not res.get("rebooted"), res
    assert "failed to get host boot time info" in res["msg"], res["msg"]
    assert res["stderr"].startswith("Get-CimInstance") and "0x80070422" in res["stderr"], res["stderr"]
    assert host.boot_time_filetime == boot_before and host.is_up
    assert host.scm.get(WMI).state == "stopped"


def test_unknown_module_fails_naming_it(fleet):
    res = fleet.ansible("site01", "ansible.windows.win_updates", "state=searched").result("site01")
    assert res["failed"] is True
    assert "ansible.windows.win_updates is not modelled" in res["msg"]


@pytest.mark.both_connections
def test_unknown_option_fails_like_ansible_basic(fleet):
    res = fleet.ansible("site01", "ansible.windows.win_ping", "data=x bogus=1").result("site01")
    assert res["failed"] is True
    assert "Unsupported parameters" in res["msg"] and "bogus" in res["msg"]


def test_unknown_raw_command_fails_naming_it(fleet):
    res = fleet.ansible("site01", "raw", "Get-Date").result("site01")
    assert res.get("failed") is True and res["rc"] != 0
    assert "Get-Date" in res["stderr"] and "not modelled" in res["stderr"]


def test_dropped_connection_makes_host_unreachable(make_fleet):
    runner = make_fleet(2, {"hosts": {"site02": {"faults": {"connection": {"drop_after_commands": 1}}}}})
    run = runner.playbook(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - ansible.windows.win_ping:\n    - ansible.windows.win_ping:\n"
    )
    assert run.stats["site01"]["ok"] == 2 and run.stats["site01"]["unreachable"] == 0
    assert run.stats["site02"]["ok"] == 1 and run.stats["site02"]["unreachable"] == 1
    assert runner.fleet.host("site02").counters.winrm_commands == 1


def test_stuck_service_fails_win_service_naming_it(make_fleet):
    runner = make_fleet(1, {"faults": {"services": {"SMS_EXECUTIVE": {"stop": "stuck"}}}})
    host = runner.fleet.host("site01")
    res = runner.ansible("site01", "ansible.windows.win_service",
                         "name=SMS_EXECUTIVE state=stopped force_dependent_services=true").result("site01")
    assert res["failed"] is True
    assert "SMS_EXECUTIVE" in res["msg"]
    assert host.scm.get("SMS_EXECUTIVE").state == "stop_pending"


@pytest.mark.both_connections
def test_wrong_password_is_rejected(make_fleet):
    runner = make_fleet(1)
    res = runner.ansible("site01", "ansible.windows.win_ping", "", "-e", "ansible_password=wrong").result("site01")
    assert res["unreachable"] is True
    # Each plugin words the server's 401 its own way (pywinrm / pypsrp).
    said = {"winrm": "credentials were rejected", "psrp": "failed to authenticate with the server"}
    assert said[runner.connection] in res["msg"]


@pytest.mark.both_connections
def test_fetch_reads_the_hosts_file_in_chunks(fleet, tmp_path):
    host = fleet.fleet.host("site03")
    data = bytes(range(256)) * 1200 + b"end"  # > one 64 KiB fetch chunk
    host.fs.mkdir("C:\\Data")
    host.fs.write("C:\\Data\\report.bin", data)
    args = json.dumps({"src": "C:\\Data\\report.bin", "dest": f"{tmp_path}/", "flat": True})
    res = fleet.ansible("site03", "ansible.builtin.fetch", args).result("site03")
    assert res["changed"] is True, res
    assert (tmp_path / "report.bin").read_bytes() == data
    assert res["remote_checksum"] == hashlib.sha1(data).hexdigest()


def test_win_file_and_win_stat_change_and_read_the_hosts_file_system(fleet):
    host = fleet.fleet.host("site03")
    run = fleet.playbook(
        "- hosts: site03\n  gather_facts: false\n  tasks:\n"
        "    - ansible.windows.win_file: {path: 'C:\\SqlUpgrade\\logs', state: directory}\n"
        "    - ansible.windows.win_stat: {path: 'C:\\SqlUpgrade\\logs'}\n"
        "    - ansible.windows.win_file: {path: 'C:\\SqlUpgrade\\logs', state: directory}\n"
    )
    assert run.result("site03", 0)["changed"] is True
    assert run.result("site03", 1)["stat"]["isdir"] is True
    assert run.result("site03", 2)["changed"] is False
    assert host.fs.is_dir("C:\\SqlUpgrade\\logs")


@pytest.mark.both_connections
def test_without_pipelining_the_module_is_put_then_fed_by_type(make_fleet):
    runner = make_fleet(1)
    runner.env["ANSIBLE_KEEP_REMOTE_FILES"] = "1"  # Ansible then put_files the module and runs `type F | PowerShell`
    host = runner.fleet.host("site01")
    res = runner.ansible("site01", "ansible.windows.win_ping", "data=kept").result("site01")
    assert res["ping"] == "kept"
    temp = "C:\\Users\\Administrator\\AppData\\Local\\Temp"
    (tmpdir,) = [d for d in host.fs.listdir(temp) if d.startswith("ansible-tmp-")]
    kept = host.fs.read(f"{temp}\\{tmpdir}\\AnsiballZ_win_ping.ps1")
    action = decode_bootstrap_input(kept).actions[-1]  # the file is the bootstrap wrapper's input
    assert module_fqcn(action.params["Script"]) == "ansible.windows.win_ping"
    assert action.params["Variables"][0]["Value"]["data"] == "kept"


def test_unreachable_fault_and_blocked_winrm_make_hosts_unreachable(make_fleet):
    runner = make_fleet(3, {"hosts": {"site02": {"faults": {"unreachable": True}}}})
    runner.fleet.host("site03").scm.stop("WinRM", force=True)  # nothing listens on 5985
    run = runner.ansible("all", "ansible.windows.win_ping")
    assert run.result("site01")["ping"] == "pong"
    assert run.result("site02")["unreachable"] is True
    assert run.result("site03")["unreachable"] is True
    assert runner.fleet.host("site02").counters.winrm_commands == 0


def test_a_task_environment_is_refused_not_ignored(fleet):
    run = fleet.playbook(
        "- hosts: site01\n  gather_facts: false\n  tasks:\n"
        "    - ansible.windows.win_ping:\n      environment: {SQLSETUP_TRACE: '1'}\n"
    )
    res = run.result("site01")
    assert res.get("failed") is True or res.get("unreachable") is True, res
    assert "task environment (SQLSETUP_TRACE)" in res["msg"] and "not modelled" in res["msg"], res["msg"]


@pytest.mark.both_connections
def test_async_inside_the_wmi_free_window_fails_over_psrp_and_is_unmodelled_over_winrm(make_fleet):
    runner = make_fleet(1)
    host = runner.fleet.host("site01")
    host.scm.set_start_mode("Winmgmt", "disabled")
    host.scm.stop("Winmgmt", force=True)
    run = runner.playbook("- hosts: site01\n  gather_facts: false\n  tasks:\n"
                          "    - ansible.windows.win_ping:\n      async: 30\n      poll: 2\n")
    res = run.result("site01")
    assert res.get("failed") is True, res
    if runner.connection == "psrp":
        # The plug-in's job object allows no breakaway: async_wrapper.ps1 starts its process through WMI.
        assert "Win32_Process Create" in res["msg"], res["msg"]
    else:
        assert "async is not modelled by the twin" in res["msg"], res["msg"]
