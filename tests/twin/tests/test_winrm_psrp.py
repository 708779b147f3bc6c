"""The PSRP front end through pypsrp 0.9's own client (what Ansible's psrp plugin uses): a runspace pool opens,
a script pipeline runs against the host model with its input, and anything the twin does not model fails
loudly, naming it."""

from __future__ import annotations

import base64

import pytest
from pypsrp.exceptions import WSManFaultError
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan

from twin.fleet import PASSWORD, USER, Fleet
from twin.winrm.payload import COMMON_ARGS

BOOT_TIME = ("(Get-CimInstance -ClassName Win32_OperatingSystem -Property LastBootUpTime)"
             ".LastBootUpTime.ToFileTime()")


@pytest.fixture
def fleet():
    with Fleet(size=1) as f:
        yield f


def pool(fleet: Fleet) -> RunspacePool:
    port = fleet.listeners["site01"].port
    wsman = WSMan("127.0.0.1", port=port, username=USER, password=PASSWORD, ssl=False, auth="basic",
                  encryption="never", no_proxy=True, operation_timeout=5, read_timeout=10)
    return RunspacePool(wsman)


def test_a_runspace_pool_runs_a_raw_script_against_the_host_model(fleet):
    with pool(fleet) as rp:
        ps = PowerShell(rp)
        ps.add_script(BOOT_TIME)
        out = ps.invoke()
    assert out == [str(fleet.host("site01").boot_time_filetime)]
    assert fleet.host("site01").counters.winrm_commands == 1


def test_the_wmi_rule_holds_over_psrp_too(fleet):
    host = fleet.host("site01")
    host.scm.set_start_mode("Winmgmt", "disabled")
    host.scm.stop("Winmgmt", force=True)
    with pool(fleet) as rp:
        ps = PowerShell(rp)
        ps.add_script(BOOT_TIME)
        ps.invoke()
    assert "Get-CimInstance" in str(ps.streams.error[0])  # the error record the plugin turns into stderr


def test_a_command_that_is_not_a_script_fails_naming_it(fleet):
    with pool(fleet) as rp:
        ps = PowerShell(rp)
        ps.add_cmdlet("Get-Process")
        with pytest.raises(WSManFaultError, match=r"PSRP pipeline of 1 command\(s\) \(Get-Process\) is not modelled"):
            ps.invoke()


def test_a_pipeline_of_two_statements_fails_naming_them(fleet):
    with pool(fleet) as rp:
        ps = PowerShell(rp)
        ps.add_script("'a'").add_statement().add_script("'b'")
        with pytest.raises(WSManFaultError, match="PSRP pipeline of 2 command\\(s\\)"):
            ps.invoke()


def test_an_unknown_raw_script_is_an_error_record_naming_it(fleet):
    with pool(fleet) as rp:
        ps = PowerShell(rp)
        ps.add_script("Get-ChildItem C:\\")
        ps.invoke()
    assert "raw PowerShell command is not modelled by the twin" in str(ps.streams.error[0])


def test_the_inventory_for_psrp(fleet):
    inv = fleet.inventory(connection="psrp")["all"]["vars"]
    assert inv["ansible_connection"] == "psrp" and inv["ansible_psrp_auth"] == "basic"
    with pytest.raises(ValueError, match="connection 'ssh'"):
        fleet.inventory(connection="ssh")
    assert COMMON_ARGS and base64  # the encoded-command form is the winrm front end's (test_winrm_server.py)
