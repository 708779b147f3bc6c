"""Network: firewall evaluation, WinRM reachability, remote SQL clients, files and registry basics."""

import pytest

from twin.host import Unmodelled, WindowsError_, load_host
from twin.host.net import FirewallRule


@pytest.fixture
def host():
    return load_host("twin/data/site_server.yml", name="site01", seed=1)


def remote_programs(host):
    return {s["host_name"] for s in host.sql.instances["MSSQLSERVER"].sessions() if s["host_process_id"] == 0}


def test_remote_clients_connect_while_the_firewall_lets_them(host):
    assert remote_programs(host) == {"CM02", "ADMIN-WS01", "MP01"}
    host.net.firewall.rules.insert(0, FirewallRule("block console", "in", "block", "tcp", [1433], ["10.20.5.0/24"]))
    assert remote_programs(host) == {"CM02", "MP01"}  # block wins over the allow rule for 1433
    host.net.firewall.rules = [r for r in host.net.firewall.rules if r.local_ports != [1433]]
    assert remote_programs(host) == set()  # default inbound block


def test_adapter_down_cuts_every_remote_client_but_not_loopback(host):
    host.net.set_adapter("Ethernet0", False)
    assert remote_programs(host) == set()
    assert host.net.inbound_allowed("127.0.0.1", 1433)
    assert not host.net.winrm_allowed(host.net.controller_ip, 5985)
    assert host.net.winrm_allowed("127.0.0.1", 5985)


def test_disabled_profile_filters_nothing(host):
    host.net.firewall.profiles["domain"].enabled = False
    assert host.net.inbound_allowed("10.20.9.9", 50000)
    host.net.firewall.profiles["domain"].enabled = True
    assert not host.net.inbound_allowed("10.20.9.9", 50000)


def test_winrm_allowed_needs_rule_and_service(host):
    ip = host.net.controller_ip
    assert host.net.winrm_allowed(ip, 5985)
    host.net.firewall.rules.insert(0, FirewallRule("keep controller", "in", "allow", "tcp", [5985], [ip]))
    host.net.firewall.rules.insert(0, FirewallRule("cut", "in", "block", "tcp", None, ["10.20.5.0/24"]))
    assert host.net.winrm_allowed(ip, 5985)
    assert not host.net.winrm_allowed("10.20.5.40", 5985)
    host.scm.stop("WinRM")
    assert not host.net.winrm_allowed(ip, 5985)
    host.faults.update({"unreachable": True})
    host.scm.start("WinRM")
    assert not host.net.winrm_allowed(ip, 5985)


def test_sessions_follow_services_and_wmi(host):
    inst = host.sql.instances["MSSQLSERVER"]
    programs = {s["program_name"] for s in inst.sessions()}
    assert {"SMS_EXECUTIVE", "SMS Provider", "WSUS Service", "SQLAgent - Generic Refresher"} <= programs
    exec_session = next(s for s in inst.sessions() if s["program_name"] == "SMS_EXECUTIVE")
    assert exec_session["host_process_id"] == host.scm.get("SMS_EXECUTIVE").process_id
    assert exec_session["spid"] >= 51 and exec_session["login_name"] == "NT AUTHORITY\\SYSTEM"
    host.scm.stop("Winmgmt", force=True)
    assert not any(s["client"].startswith("SMS Provider (") for s in inst.sessions())
    host.scm.stop("MSSQLSERVER", force=True)
    assert inst.sessions() == []
    assert "CM_P01" in inst.databases and inst.databases["CM_P01"]["user_access"] == "MULTI_USER"


def test_netsh_is_not_modelled_yet(host):
    with pytest.raises(Unmodelled, match="netsh"):
        host.net.netsh(["advfirewall", "show", "allprofiles"])


def test_files_are_case_insensitive(host):
    host.fs.mkdir(r"C:\ProgramData\ConfigMgrSqlUpgrade")
    host.fs.write(r"c:\programdata\configmgrsqlupgrade\journal.json", b"{}")
    assert host.fs.read(r"C:\PROGRAMDATA\ConfigMgrSqlUpgrade\JOURNAL.JSON") == b"{}"
    assert host.fs.listdir(r"C:\ProgramData\configmgrsqlupgrade") == ["journal.json"]
    assert host.fs.stat(r"C:\ProgramData\ConfigMgrSqlUpgrade\journal.json", sha1=True)["sha1"] == (
        "bf21a9e8fbc5a3846fb05b4fa0859e0917b2202f"
    )
    with pytest.raises(WindowsError_) as err:
        host.fs.write(r"C:\Nope\x.txt", b"")
    assert err.value.code == 3
    with pytest.raises(WindowsError_) as err:
        host.fs.remove(r"C:\ProgramData\ConfigMgrSqlUpgrade")
    assert err.value.code == 145
    host.fs.remove(r"C:\ProgramData\ConfigMgrSqlUpgrade", recurse=True)
    assert not host.fs.exists(r"C:\ProgramData\ConfigMgrSqlUpgrade\journal.json")


def test_registry_is_case_insensitive_and_errors_like_windows(host):
    assert host.registry.get(r"HKLM:\SOFTWARE\Microsoft\SMS\Identification", "site code") == "P01"
    with pytest.raises(WindowsError_) as err:
        host.registry.get(r"HKLM\SOFTWARE\Nope", "x")
    assert err.value.code == 2
    host.registry.set(r"HKEY_LOCAL_MACHINE\SOFTWARE\Contoso\Run", "Step", 3)
    assert host.registry.key_exists(r"hklm\software\contoso")
    host.registry.delete(r"HKLM\SOFTWARE\Contoso")
    assert not host.registry.key_exists(r"HKLM\SOFTWARE\Contoso\Run")


def test_outbound_rules_match_the_remote_port_and_address_ranges(host):
    assert host.net.outbound_allowed("10.20.1.30", 1433)  # default outbound allow
    host.net.firewall.rules.append(FirewallRule("iso out", "out", "block", "any", None, ["10.20.1.0-10.20.1.255"]))
    assert not host.net.outbound_allowed("10.20.1.30", 1433)
    assert host.net.outbound_allowed("10.20.0.10", 135)
    host.net.firewall.rules.append(FirewallRule("dc", "out", "block", "tcp", None, ["10.20.0.10"],
                                                remote_ports=["1-134", "136-65535"]))
    assert host.net.outbound_allowed("10.20.0.10", 135) and not host.net.outbound_allowed("10.20.0.10", 1433)


def test_group_policy_without_local_rule_merge_ignores_local_rules(host):
    host.net.firewall.rules.append(FirewallRule("iso in", "in", "block", "any", None, ["10.20.5.0/24"]))
    assert not host.net.inbound_allowed("10.20.5.40", 1433)
    host.net.firewall.profiles["domain"].local_rules_merged = False
    # Only policy rules count now: neither the local block nor the local allow for 1433.
    assert not host.net.inbound_allowed("10.20.5.40", 1433)
    host.net.firewall.rules.append(FirewallRule("sql (policy)", "in", "allow", "tcp", [1433], source="policy"))
    assert host.net.inbound_allowed("10.20.5.40", 1433)
    assert host.net.firewall.profiles["domain"].modify_state() == 1


def test_a_domain_accounts_new_logon_needs_a_reachable_domain_controller(host):
    from twin.host.net import ConnectionAccount, Domain

    assert host.net.new_logon_allowed()  # a local account
    host.net.account = ConnectionAccount("CONTOSO\\ansible", True)
    host.net.domain = Domain("contoso.com", ["10.20.0.10"])
    assert host.net.new_logon_allowed()
    host.net.firewall.rules.append(FirewallRule("no dc", "out", "block", "any", None, ["10.20.0.10"]))
    assert not host.net.new_logon_allowed()


def test_scheduled_tasks_fire_on_the_clock_and_at_boot_and_may_keep_running(host):
    calls = []
    answers = iter([False, True])

    def action(owner, trigger):
        calls.append(trigger)
        return next(answers, True)

    host.tasks.register("\\t", 30, True, action)
    assert host.tasks.run_due() == []
    host.clock.advance(30 * 60)
    assert host.tasks.run_due() == ["\\t"] and host.tasks.get("\\t").running == "lease"  # still running
    assert host.tasks.run_due() == ["\\t"] and host.tasks.get("\\t").running is None
    assert host.tasks.run_due() == []  # a time trigger fires once
    host.reboot()
    assert calls == ["lease", "lease", "boot"]
