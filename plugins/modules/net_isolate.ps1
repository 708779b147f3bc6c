#!powershell
# configmgr:wmi-free

# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

#AnsibleRequires -CSharpUtil Ansible.Basic
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._Journal
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._ServiceTable
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._Firewall
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._NetworkFacts
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._Watchdog
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._Apply

# Thin executor of net_isolate (KB 256202 steps 4 and 6). The action plugin (plugins/action/net_isolate.py)
# calls it: _phase=gather reads the firewall, the connections to the WinRM port, the domain controllers, the
# watchdog task and the journal; _phase=apply writes the journal and runs the planned firewall and task
# operations; _phase=confirm, sent over a new connection after an isolation, moves the watchdog from its
# probation to the full lease. No decisions here. Runs while WMI is stopped and disabled: the firewall's COM
# API and netsh, schtasks.exe, nltest.exe and the IP Helper API; never WMI/CIM.

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

$spec = @{
    options = @{
        state = @{ type = 'str'; default = 'isolated'; choices = @('isolated', 'restored') }
        allow_from = @{ type = 'list'; elements = 'str' }
        allow_to = @{ type = 'list'; elements = 'str'; default = @() }
        domain_controllers = @{ type = 'list'; elements = 'str' }
        lease_minutes = @{ type = 'int'; default = 30 }
        probation_seconds = @{ type = 'int'; default = 300 }
        timeout = @{ type = 'int'; default = 120 }
        run_id = @{ type = 'str' }
        takeover = @{ type = 'str' }
        _phase = @{ type = 'str'; default = 'gather'; choices = @('gather', 'apply', 'confirm') }
        _winrm_port = @{ type = 'int'; default = 5985 }
        _plan = @{
            type = 'list'; elements = 'dict'; default = @()
            # The operation vocabulary: plugins/plugin_utils/_window/ops.py (MODULE_OPS, FIELDS).
            options = @{
                op = @{
                    type = 'str'; required = $true
                    choices = @('set_profile', 'add_rule', 'remove_rule', 'register_watchdog', 'remove_watchdog')
                }
                name = @{ type = 'str'; required = $true }
                enabled = @{ type = 'bool' }
                direction = @{ type = 'str'; choices = @('in', 'out') }
                protocol = @{ type = 'str'; choices = @('any', 'tcp', 'udp') }
                remote_addresses = @{ type = 'list'; elements = 'str' }
                remote_ports = @{ type = 'list'; elements = 'str' }
                minutes = @{ type = 'int' }
            }
        }
        _journal_before = @{ type = 'str' }
        _journal_after = @{ type = 'str' }
        _journal_expected = @{ type = 'str'; default = '' }
        _continue_on_error = @{ type = 'bool'; default = $false }
        _slice = @{ type = 'int'; default = 0 }
        _resume_at = @{ type = 'int'; default = 0 }
        _waited = @{ type = 'int'; default = 0 }
    }
    supports_check_mode = $true
}

$module = [Ansible.Basic.AnsibleModule]::Create($args, $spec)

$journalPath = Get-JournalPath
$module.Result.journal_path = $journalPath
$taskName = '\configmgr.sql_upgrade\watchdog'

if ($module.Params._phase -eq 'gather') {
    # The lease as found, renewed unless it has ended (then its run is dead and may be taken over).
    $module.Result.watchdog = Get-RenewedLease -JournalPath $journalPath -CheckMode $module.CheckMode
    $module.Result.firewall = Get-FirewallState
    $module.Result.peers = @(Get-ConnectedPeer -Port $module.Params._winrm_port)
    $module.Result.domain = Get-DomainFact
    $module.Result.journal_text = Read-JournalText -Path $journalPath
    $module.Result.journal_untrusted = Get-JournalTrustProblem -Path $journalPath
    $module.Result.host_time = Get-HostTime
    $module.Result.host_name = $env:COMPUTERNAME
    $module.ExitJson()
}

if ($module.Params._phase -eq 'confirm') {
    # This request came over a new connection: the channel works. Probation over, the full lease runs - if the
    # lease still holds: the task is there and the journal still records the isolation. A probation that ended
    # before this request (the new connection took longer) has let the watchdog put the network back.
    if (-not $module.CheckMode) {
        $module.Result.watchdog = Update-ServiceWindowLease -JournalPath $journalPath -Name $taskName
        $module.Result.changed = $true
        if ($null -eq $module.Result.watchdog) {
            $module.Result.lease_lost = $true
            $module.FailJson("the isolation's lease no longer holds: the watchdog task $taskName is gone or the journal $journalPath no longer records the isolation (its probation ended before this confirm, and the watchdog put the network back)")
        }
    }
    $module.ExitJson()
}

# Apply: the journal first, then the planned operations, then the journal after (_Apply.psm1).
$failureHint = "the firewall profiles' prior state and this collection's rules: run net_isolate with state=restored to put the network back, or fix {0} and run again."
Invoke-JournaledPlan -Module $module -JournalPath $journalPath -FailureHint $failureHint
$firewallOps = @('set_profile', 'add_rule', 'remove_rule')
if (@($module.Params._plan | Where-Object -FilterScript { $firewallOps -contains $_.op }).Count -gt 0) {
    # The verification read of the firewall: the controller compares it with the rules and profiles it planned.
    $module.Result.firewall_after = Get-FirewallState
}
$module.Result.watchdog = Get-WatchdogTask -Name $taskName
$module.ExitJson()
