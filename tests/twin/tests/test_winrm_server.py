"""The WS-Management front end through pywinrm 0.5.0's own Protocol: commands, faults, auth, connection faults."""

import base64

import pytest
import requests
import xmltodict
from winrm.exceptions import InvalidCredentialsError, WinRMOperationTimeoutError, WSManFaultError
from winrm.protocol import Protocol

from twin.fleet import PASSWORD, USER, Fleet
from twin.host.net import FirewallRule
from twin.winrm import soap
from twin.winrm.payload import COMMON_ARGS
from twin.winrm.server import WINRM_HTTP_PORT

BOOT_TIME = ("(Get-CimInstance -ClassName Win32_OperatingSystem -Property LastBootUpTime)"
             ".LastBootUpTime.ToFileTime()")


def encoded(script):
    return [*COMMON_ARGS, "-EncodedCommand", base64.b64encode(script.encode("utf-16-le")).decode()]


def protocol(fleet, name="site01", password=PASSWORD):
    port = fleet.listeners[name].port
    return Protocol(f"http://127.0.0.1:{port}/wsman", transport="plaintext", username=USER, password=password,
                    proxy=None, ca_trust_path=None, read_timeout_sec=10, operation_timeout_sec=5)


def run(p, shell, command, args):
    cid = p.run_command(shell, command, args)
    out, err, rc = p.get_command_output(shell, cid)
    p.cleanup_command(shell, cid)
    return rc, out.decode(), err.decode()


@pytest.fixture
def fleet():
    with Fleet(size=2) as f:
        yield f


def test_raw_command_runs_and_is_counted(fleet):
    host = fleet.host("site01")
    p = protocol(fleet)
    shell = p.open_shell()
    before = host.counters.winrm_commands, host.counters.bytes_in, host.counters.bytes_out
    clock = host.clock.now()
    rc, out, err = run(p, shell, "PowerShell", encoded(BOOT_TIME))
    p.close_shell(shell)
    assert (rc, err) == (0, "") and int(out) == host.boot_time_filetime
    assert host.counters.winrm_commands == before[0] + 1
    assert host.counters.bytes_in > before[1] and host.counters.bytes_out > before[2]
    assert host.clock.now() == clock + 1.0  # one host.tick() per command
    assert fleet.host("site02").counters.winrm_commands == 0  # each host its own listener


def test_commands_ansible_never_sends_fail_naming_them(fleet):
    p = protocol(fleet)
    shell = p.open_shell()
    rc, out, err = run(p, shell, "ipconfig", ["/all"])
    assert rc == 1 and out == "" and "'ipconfig'" in err
    rc, _out, err = run(p, shell, "PowerShell", encoded("Get-Date"))
    assert rc == 1 and "Get-Date" in err and "not modelled" in err


def test_wrong_password_is_http_401(fleet):
    with pytest.raises(InvalidCredentialsError):
        protocol(fleet, password="wrong").open_shell()
    assert fleet.host("site01").counters.winrm_commands == 0


def test_unknown_action_is_a_fault_naming_it(fleet):
    p = protocol(fleet)
    action = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate"
    msg = {"env:Envelope": p.build_wsman_header(action, "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/*")}
    msg["env:Envelope"]["env:Body"] = {"n:Enumerate": {}}
    with pytest.raises(WSManFaultError) as err:
        p.send_message(xmltodict.unparse(msg))
    assert err.value.code == 500 and action in err.value.reason
    assert err.value.wsman_fault_code == soap.WSMAN_ACTION_NOT_SUPPORTED


def test_unknown_shell_is_a_shell_not_found_fault(fleet):
    with pytest.raises(WSManFaultError) as err:
        protocol(fleet).run_command("00000000-0000-0000-0000-000000000000", "PowerShell", encoded(BOOT_TIME))
    assert err.value.wsman_fault_code == soap.WSMAN_SHELL_NOT_FOUND
    assert "00000000-0000-0000-0000-000000000000" in err.value.reason


def test_receive_before_stdin_ends_is_the_operation_timeout_pywinrm_retries(fleet):
    p = protocol(fleet)
    shell = p.open_shell()
    cid = p.run_command(shell, "PowerShell", encoded(BOOT_TIME), console_mode_stdin=False)
    with pytest.raises(WinRMOperationTimeoutError):
        p.get_command_output_raw(shell, cid)
    p.send_command_input(shell, cid, b"data", end=True)
    out, err, rc = p.get_command_output(shell, cid)
    assert (rc, out) == (1, b"") and b"stdin" in err  # a raw script with stdin is not modelled: refused by name


def test_malformed_xml_is_a_schema_fault(fleet):
    with pytest.raises(WSManFaultError) as err:
        protocol(fleet).send_message("<not-xml")
    assert "malformed XML" in err.value.reason


def test_connection_drop_fault_resets_the_next_command_and_every_request_after(fleet):
    host = fleet.host("site01")
    host.faults.drop_after_commands = 1
    p = protocol(fleet)
    shell = p.open_shell()
    assert run(p, shell, "PowerShell", encoded(BOOT_TIME))[0] == 0
    with pytest.raises(requests.exceptions.ConnectionError):
        p.run_command(shell, "PowerShell", encoded(BOOT_TIME))
    with pytest.raises(requests.exceptions.ConnectionError):
        protocol(fleet).open_shell()
    assert host.counters.winrm_commands == 1
    assert protocol(fleet, "site02").open_shell()  # the other host is not affected


@pytest.mark.parametrize("cut", ["unreachable", "winrm_stopped", "adapters_down", "host_down"])
def test_a_host_the_controller_cannot_reach_resets_the_connection(fleet, cut):
    host = fleet.host("site01")
    if cut == "unreachable":
        host.faults.unreachable = True
    elif cut == "winrm_stopped":
        host.scm.stop("WinRM", force=True)
    elif cut == "adapters_down":
        for adapter in host.net.adapters:
            host.net.set_adapter(adapter.name, False)
    else:
        host.is_up = False
    with pytest.raises(requests.exceptions.ConnectionError):
        protocol(fleet).open_shell()
    assert host.counters.winrm_commands == 0


def test_a_reboot_destroys_the_shells_of_the_old_boot(fleet):
    host = fleet.host("site01")
    p = protocol(fleet)
    shell = p.open_shell()
    reboot = ("$ErrorActionPreference = 'Continue'\nif ($True) {\n"
              "Remove-Item -LiteralPath 'HKLM:\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon\\"
              "AutoLogonChecked' -Force -ErrorAction SilentlyContinue\n}\n$stdout = $null\n"
              "$stderr = . { C:\\Windows\\System32\\shutdown.exe /r /t 2 /c 'x' | Set-Variable stdout } 2>&1 | "
              "ForEach-Object ToString\nConvertTo-Json -Compress -InputObject @{\n"
              "stdout = (@($stdout) -join \"`n\")\nstderr = (@($stderr) -join \"`n\")\nrc = $LASTEXITCODE\n}")
    boot = host.boot_time_filetime
    assert run(p, shell, "PowerShell", encoded(reboot))[0] == 0
    with pytest.raises(WSManFaultError) as err:  # the next command: shutdown happens, the shell is gone
        p.run_command(shell, "PowerShell", encoded(BOOT_TIME))
    assert err.value.wsman_fault_code == soap.WSMAN_SHELL_NOT_FOUND
    assert host.boot_time_filetime != boot and host.is_up
    fresh = p.open_shell()
    assert int(run(p, fresh, "PowerShell", encoded(BOOT_TIME))[1]) == host.boot_time_filetime


# -- Windows Firewall between the controller and WinRM ------------------------------------------------------
# What net_isolate will do: every profile's default inbound action Block (`netsh advfirewall set allprofiles
# firewallpolicy blockinbound,...`) and no inbound allow rule left enabled, except, to never lock the
# controller out, an allow rule for TCP 5985 from the controller's address. The front end asks the firewall as
# the host sees the controller (host.net.controller_ip -> 5985), not the loopback peer.

def isolate(host, adapter_profile):
    """Block inbound on all three profiles, disable every inbound allow rule; the adapter on `adapter_profile`."""
    for adapter in host.net.adapters:
        adapter.profile = adapter_profile
    for profile in host.net.firewall.profiles.values():
        assert profile.enabled
        profile.default_inbound = "block"
    for rule in host.net.firewall.rules:
        if rule.direction == "in" and rule.action == "allow":
            rule.enabled = False


def allow_5985(remote, name="keep the controller", **kwargs):
    return FirewallRule(name, "in", "allow", "tcp", [WINRM_HTTP_PORT], [remote], **kwargs)


def assert_reset(fleet, host):
    with pytest.raises(requests.exceptions.ConnectionError):
        protocol(fleet).open_shell()
    assert host.counters.winrm_commands == 0


def test_the_host_file_lets_the_controller_in_through_the_winrm_allow_rule(fleet):
    host = fleet.host("site01")
    rule = next(r for r in host.net.firewall.rules if r.name == "Windows Remote Management (HTTP-In)")
    assert {p.default_inbound for p in host.net.firewall.profiles.values()} == {"block"}
    assert protocol(fleet).open_shell()
    rule.enabled = False  # the only rule for 5985 off: the profile's default (block) decides
    assert_reset(fleet, host)


@pytest.mark.parametrize("adapter_profile", ["domain", "private", "public"])
def test_blocking_inbound_on_all_profiles_without_an_allow_rule_resets_the_controller(fleet, adapter_profile):
    host = fleet.host("site01")
    isolate(host, adapter_profile)
    assert_reset(fleet, host)
    assert protocol(fleet, "site02").open_shell()  # the other host's firewall is its own


@pytest.mark.parametrize("adapter_profile", ["domain", "private", "public"])
def test_an_allow_rule_for_5985_from_the_controller_keeps_the_shell(fleet, adapter_profile):
    host = fleet.host("site01")
    isolate(host, adapter_profile)
    host.net.firewall.rules.append(allow_5985(host.net.controller_ip))
    p = protocol(fleet)
    shell = p.open_shell()
    rc, out, err = run(p, shell, "PowerShell", encoded(BOOT_TIME))
    p.close_shell(shell)
    assert (rc, err) == (0, "") and int(out) == host.boot_time_filetime
    assert host.counters.winrm_commands == 1
    # Only the controller: a remote site system on the same subnet is kept out of WinRM and SQL Server.
    assert not host.net.winrm_allowed("10.20.1.22", WINRM_HTTP_PORT)
    assert not any(host.net.client_connected(c) for c in host.net.remote_clients)


def test_an_allow_rule_for_the_controllers_network_as_cidr_keeps_the_shell(fleet):
    host = fleet.host("site01")
    isolate(host, "domain")
    host.net.firewall.rules.append(allow_5985("10.20.0.0/24"))
    assert protocol(fleet).open_shell()


@pytest.mark.parametrize(
    "rule",
    [
        pytest.param(lambda ip: allow_5985("10.20.0.6"), id="other-remote-address"),
        pytest.param(lambda ip: allow_5985("10.20.1.0/24"), id="other-remote-network"),
        pytest.param(lambda ip: FirewallRule("https only", "in", "allow", "tcp", [5986], [ip]), id="other-port"),
        pytest.param(lambda ip: FirewallRule("udp", "in", "allow", "udp", [WINRM_HTTP_PORT], [ip]), id="udp"),
        pytest.param(lambda ip: FirewallRule("out", "out", "allow", "tcp", [WINRM_HTTP_PORT], [ip]), id="outbound"),
        pytest.param(lambda ip: allow_5985(ip, profiles=["private", "public"]), id="other-profiles"),
        pytest.param(lambda ip: allow_5985(ip, enabled=False), id="disabled"),
    ],
)
def test_an_allow_rule_that_does_not_match_the_controller_resets_it(fleet, rule):
    host = fleet.host("site01")
    isolate(host, "domain")
    host.net.firewall.rules.append(rule(host.net.controller_ip))
    assert_reset(fleet, host)


@pytest.mark.parametrize("blocked", [None, "10.20.0.5", "10.20.0.0/16"])
def test_a_block_rule_for_the_controller_wins_over_its_allow_rule(fleet, blocked):
    # Windows Firewall: "block rules take precedence over allow rules" ([MS-FASP] 2.2.34), in whatever order
    # the rules were added; so the default WinRM rule and the controller's own allow rule do not help.
    host = fleet.host("site01")
    host.net.firewall.rules.append(allow_5985(host.net.controller_ip))
    host.net.firewall.rules.append(FirewallRule("cut", "in", "block", "tcp", [WINRM_HTTP_PORT],
                                                None if blocked is None else [blocked]))
    assert_reset(fleet, host)


def test_a_block_rule_for_other_addresses_leaves_the_controller_in(fleet):
    host = fleet.host("site01")
    host.net.firewall.rules.append(FirewallRule("cut the site", "in", "block", "any", None, ["10.20.1.0/24"]))
    assert protocol(fleet).open_shell()
    assert not host.net.winrm_allowed("10.20.1.22", WINRM_HTTP_PORT)


def test_the_firewall_is_asked_on_every_request_so_an_open_shell_is_cut_and_comes_back(fleet):
    host = fleet.host("site01")
    p = protocol(fleet)
    shell = p.open_shell()
    isolate(host, "domain")
    with pytest.raises(requests.exceptions.ConnectionError):
        p.run_command(shell, "PowerShell", encoded(BOOT_TIME))
    host.net.firewall.rules.append(allow_5985(host.net.controller_ip))
    assert run(p, shell, "PowerShell", encoded(BOOT_TIME))[0] == 0  # the shell survived on the host
