"""pscontract.wmi_rules: the one WMI/CIM list, matched on the parse tree."""

import pytest

from pscontract.wmi_rules import find_wmi_uses, is_wmi_command, wmi_type_reason


def names(source: str) -> list[str]:
    return [u.command for u in find_wmi_uses(source)]


@pytest.mark.parametrize("command", [
    "Get-CimInstance", "get-wmiobject", "Invoke-CimMethod", "Invoke-WmiMethod", "Set-CimInstance",
    "New-CimInstance", "Remove-CimInstance", "Get-CimClass", "Register-WmiEvent", "Register-CimIndicationEvent",
    "New-CimSession", "gwmi", "gcim", "wmic.exe", "New-NetFirewallRule", "Get-NetFirewallProfile",
    "Set-NetAdapter", "Get-NetAdapterBinding", "Get-NetIPAddress", "Set-NetIPInterface", "New-NetRoute",
    "Mount-DiskImage", "Get-Disk", "Get-Volume", "Get-Partition", "Register-ScheduledTask", "Get-ScheduledTask",
    "New-ScheduledTaskAction", "Start-ScheduledTask", "Get-SmbShare", "Get-DnsClientServerAddress",
    "Restart-Computer", "CimCmdlets\\Get-CimInstance",
])
def test_wmi_commands_are_listed(command):
    assert is_wmi_command(command), command


@pytest.mark.parametrize("command", [
    "Get-Service", "Stop-Service", "sc.exe", "netsh", "schtasks.exe", "Resolve-DnsName", "Get-Item",
    "Set-Service", "shutdown.exe", "Get-Process",
])
def test_wmi_free_commands_are_not_listed(command):
    assert not is_wmi_command(command), command


def test_commands_found_with_line_and_column():
    uses = find_wmi_uses("$ErrorActionPreference = 'Stop'\n$os = Get-CimInstance -ClassName Win32_OperatingSystem\n")
    assert [(u.command, u.line, u.column) for u in uses] == [("Get-CimInstance", 2, 7)]
    assert "winmgmt" in uses[0].reason


def test_comments_and_strings_do_not_count():
    source = """# Get-CimInstance Win32_OperatingSystem
<# Get-WmiObject
   New-NetFirewallRule #>
$a = 'Get-CimInstance'
$b = "Register-ScheduledTask -TaskName x"
$c = @'
Mount-DiskImage -ImagePath x
'@
Write-Output -InputObject 'gwmi'
"""
    assert find_wmi_uses(source) == []


def test_code_inside_an_expandable_string_counts():
    assert names('"boot: $(Get-CimInstance Win32_OperatingSystem)"') == ["Get-CimInstance"]


def test_call_operator_with_a_literal_name_counts():
    assert names("& 'Get-WmiObject' -Class Win32_Service\n& \"Get-NetAdapter\"") == ["Get-WmiObject", "Get-NetAdapter"]


def test_type_literals_and_accelerators():
    source = """$a = [wmi]'\\\\.\\root\\cimv2:Win32_OperatingSystem=@'
$b = [WMICLASS]'Win32_Process'
$c = [wmisearcher]'SELECT * FROM Win32_Service'
$d = [System.Management.ManagementObjectSearcher]::new('q')
$e = [Microsoft.Management.Infrastructure.CimSession]::Create('.')
"""
    assert len(find_wmi_uses(source)) == 5


def test_powershell_own_namespace_is_not_wmi():
    source = "$c = [System.Management.Automation.PSCredential]::new('u', $p)\n" \
             "New-Object -TypeName System.Management.Automation.PSCredential -ArgumentList 'u', $p\n" \
             "$x = [Management.Automation.ErrorRecord]$e\n"
    assert find_wmi_uses(source) == []
    assert wmi_type_reason("System.Management.Automation.PSObject") is None


def test_new_object_type_and_com_object():
    source = "New-Object -TypeName System.Management.ManagementClass -ArgumentList 'Win32_Process'\n" \
             "New-Object System.Management.ManagementObject\n" \
             "New-Object -ComObject WbemScripting.SWbemLocator\n" \
             "New-Object -ComObject Schedule.Service\n"
    assert names(source) == ["System.Management.ManagementClass", "System.Management.ManagementObject",
                             "WbemScripting.SWbemLocator"]


def test_scm_netsh_schtasks_script_is_clean():
    source = """$svc = [System.ServiceProcess.ServiceController]::new('winmgmt')
$svc.Stop()
&sc.exe config winmgmt start= disabled
&netsh.exe advfirewall set allprofiles firewallpolicy blockinbound,blockoutbound
&schtasks.exe /Create /SC ONCE /ST 23:59 /RU SYSTEM /TN lease /TR x
"""
    assert find_wmi_uses(source) == []
