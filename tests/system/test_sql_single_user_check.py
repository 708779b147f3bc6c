"""sql_single_user_check, the gate before KB 256202 step 5, through the real ansible-playbook over WinRM against
twin hosts: with the SMS services running it names their sessions and fails; it passes once step 2 stopped them
and step 4 cut the remote clients off; it waits for a session to go; it reads (without failing) the sessions
win_service_quiesce takes as sql_sessions; it refuses an instance that is not on the host."""

from __future__ import annotations

from typing import Any

from conftest import play, services

HOST = "site01"
GATE = """      configmgr.sql_upgrade.sql_single_user_check:
"""


def test_with_sms_running_the_gate_fails_naming_the_sessions_by_program_host_and_login(make_fleet: Any) -> None:
    runner = make_fleet(1)
    before = services(runner.fleet.host(HOST))
    res = runner.playbook(play(GATE)).result(HOST)
    assert res["failed"] is True and res["ready"] is False and res["changed"] is False
    programs = {s["program_name"] for s in res["blocking_sessions"]}
    assert {"SMS_EXECUTIVE", "SMS Provider"} <= programs and "Microsoft SQL Server Management Studio" in programs
    assert "would race SQL Server setup for the single-user connection" in res["msg"]
    assert "SMS Provider on CM01 as CONTOSO\\CM01$" in res["msg"] and "on ADMIN-WS01 as CONTOSO\\sqladmin" in res["msg"]
    assert res["instance"]["version"] == "13.0.6300.2" and res["polls"] == 1
    assert {d["name"]: d["user_access"] for d in res["databases"]}["CM_P01"] == "MULTI_USER"
    assert services(runner.fleet.host(HOST)) == before  # the gate only reads


def test_sessions_read_before_step_2_stop_the_services_that_hold_them(make_fleet: Any) -> None:
    runner = make_fleet(1)
    run = runner.playbook("""
- hosts: all
  gather_facts: false
  module_defaults:
    group/configmgr.sql_upgrade.service_window:
      run_id: r-gate
  tasks:
    - name: Read the sessions (KB step 2 takes them)
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
    - name: The gate before step 5
      configmgr.sql_upgrade.sql_single_user_check:
    - name: KB step 6
      configmgr.sql_upgrade.net_isolate:
        state: restored
    - name: KB step 7
      configmgr.sql_upgrade.wmi_disable:
        state: enabled
    - name: Services back
      configmgr.sql_upgrade.win_service_quiesce:
        state: restored
""")
    read = run.result(HOST, 0)
    assert not read.get("failed"), read.get("msg")  # fail_when_blocked: false only reads
    assert read["ready"] is False and read["sessions"]
    gate = run.result(HOST, 4)
    assert not gate.get("failed"), gate.get("msg")
    assert gate["ready"] is True and gate["sessions"] == [] and gate["blocking_sessions"] == []
    assert run.rc == 0


def test_the_gate_waits_for_the_last_session_to_go(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    # Only the Management Studio session on ADMIN-WS01 is left: the local clients and WMI are stopped.
    for svc in host.scm.all():
        if svc.sql_client and svc.state == "running":
            host.scm.stop(svc.name, force=True)
    host.scm.stop("Winmgmt", force=True)
    host.net.remote_clients = [c for c in host.net.remote_clients if c.host_name == "ADMIN-WS01"]
    start = host.counters.winrm_commands

    def administrator_closes_the_console(owner: Any, trigger: str) -> bool:
        """Runs before every WinRM request; the console closes when the gate's second read starts (a module call
        is one command, whose stdin and output come in later requests)."""
        if owner.counters.winrm_commands < start + 2:
            return False
        owner.net.remote_clients = []
        return True

    host.tasks.register("\\lab\\console", 0, False, administrator_closes_the_console)
    res = runner.playbook(play(GATE + "        wait_timeout: 30\n        poll_interval: 1\n")).result(HOST)
    assert not res.get("failed"), res.get("msg")
    assert res["ready"] is True and res["polls"] == 2 and res["sessions"] == []


def test_allowed_programs_do_not_block_and_an_unknown_instance_is_refused(make_fleet: Any) -> None:
    runner = make_fleet(1)
    res = runner.playbook(play(GATE + "        instance: SQL2022\n")).result(HOST)
    assert res["failed"] is True and "instance 'SQL2022' is not on this host (instances registered: MSSQLSERVER)" \
        in res["msg"]
    bad = runner.playbook(play(GATE + "        instance: 'MSSQLSERVER; DROP DATABASE x'\n")).result(HOST)
    assert bad["failed"] is True and "option instance must be a SQL Server instance name" in bad["msg"]
    assert "polls" in bad and bad["polls"] == 0


def test_an_instance_in_single_user_mode_held_by_another_client_is_not_ready(make_fleet: Any) -> None:
    runner = make_fleet(1)
    inst = runner.fleet.host(HOST).sql.instance("MSSQLSERVER")
    inst.single_user, inst.single_user_owner = True, "SMS_EXECUTIVE"
    res = runner.playbook(play(GATE)).result(HOST)
    assert res["failed"] is True and res["ready"] is False
    assert "SQL Server error 18461" in res["connect_error"] and "did not answer" in res["msg"]


def blind(host: Any, **rights: bool) -> None:
    """The instance's logins as a server whose sysadmins are a DBA group the connection's account is not in, with
    BUILTIN\\Administrators a login of its own that holds `rights` (SQL Server 2012 and later provision no
    Administrators sysadmin by default)."""
    host.sql.instance("MSSQLSERVER").logins = {
        "CONTOSO\\SQL DBAs": {"sysadmin": True, "view_server_state": False},
        "BUILTIN\\Administrators": {"sysadmin": False, "view_server_state": False, **rights},
    }


def test_a_gate_without_view_server_state_is_refused_naming_the_grant(make_fleet: Any) -> None:
    """Without VIEW SERVER STATE, sys.dm_exec_sessions shows a login only its own session: the gate would see no
    SMS session and call the busy instance ready. It refuses instead, before any wait, in both of its uses."""
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    blind(host)
    before = services(host)
    res = runner.playbook(play(GATE)).result(HOST)
    assert res["failed"] is True and res["polls"] == 1
    login = f"{host.computer_name}\\Administrator"
    assert "cannot see the sessions" in res["msg"] and f"GRANT VIEW SERVER STATE TO [{login}];" in res["msg"]
    assert res["permissions"] == {"login": login, "sysadmin": False, "view_server_state": False}
    read = runner.playbook(play(GATE + "        fail_when_blocked: false\n")).result(HOST)
    assert read["failed"] is True and "cannot see the sessions" in read["msg"]
    assert services(host) == before


def test_view_server_state_alone_lets_the_gate_see(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    blind(host, view_server_state=True)
    res = runner.playbook(play(GATE)).result(HOST)
    assert res["failed"] is True and "would race SQL Server setup" in res["msg"]
    assert {"SMS_EXECUTIVE", "SMS Provider"} <= {s["program_name"] for s in res["blocking_sessions"]}
    assert res["permissions"]["view_server_state"] is True and res["permissions"]["sysadmin"] is False


def test_a_connection_without_any_login_does_not_answer(make_fleet: Any) -> None:
    runner = make_fleet(1)
    host = runner.fleet.host(HOST)
    host.sql.instance("MSSQLSERVER").logins = {"CONTOSO\\SQL DBAs": {"sysadmin": True}}
    res = runner.playbook(play(GATE)).result(HOST)
    assert res["failed"] is True and "did not answer" in res["msg"] and "18456" in res["msg"]
