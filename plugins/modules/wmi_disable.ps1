#!powershell
# configmgr:wmi-free

# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

#AnsibleRequires -CSharpUtil Ansible.Basic
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._Journal
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._ServiceTable
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._ServiceOps
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._Watchdog
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._Apply

# Thin executor of wmi_disable (KB 256202 steps 3 and 7). The action plugin (plugins/action/wmi_disable.py)
# calls it with _phase=gather (service table + journal) and _phase=apply (write the journal, run the planned
# operations on Winmgmt and its dependents). Service Control Manager only: it runs while winmgmt is
# stopped and disabled, so it must not touch WMI/CIM itself.

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

$spec = @{
    options = @{
        state = @{ type = 'str'; default = 'disabled'; choices = @('disabled', 'running_for_setup', 'enabled') }
        timeout = @{ type = 'int'; default = 120 }
        settle_seconds = @{ type = 'int'; default = 5 }
        run_id = @{ type = 'str' }
        takeover = @{ type = 'str' }
        _phase = @{ type = 'str'; default = 'gather'; choices = @('gather', 'apply') }
        _plan = @{
            type = 'list'; elements = 'dict'; default = @()
            # The operation vocabulary: plugins/plugin_utils/_window/ops.py (MODULE_OPS, FIELDS).
            options = @{
                op = @{ type = 'str'; required = $true; choices = @('set_mode', 'stop', 'start', 'expect_stopped') }
                name = @{ type = 'str'; required = $true }
                timeout = @{ type = 'int' }
                end_hung = @{ type = 'bool' }
                start_mode = @{ type = 'str'; choices = @('auto', 'delayed', 'manual', 'disabled') }
                seconds = @{ type = 'int' }
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

if ($module.Params._phase -eq 'gather') {
    # The lease as found, renewed unless it has ended (then its run is dead and may be taken over).
    $module.Result.watchdog = Get-RenewedLease -JournalPath $journalPath -CheckMode $module.CheckMode
    $module.Result.services = Get-ServiceTable
    $module.Result.journal_text = Read-JournalText -Path $journalPath
    $module.Result.journal_untrusted = Get-JournalTrustProblem -Path $journalPath
    $module.Result.host_time = Get-HostTime
    $module.Result.host_name = $env:COMPUTERNAME
    $module.ExitJson()
}

# Apply: the journal first, then the planned operations, then the journal after (_Apply.psm1).
$failureHint = "Winmgmt's prior start mode and running dependents: run wmi_disable with state=enabled to put them back."
Invoke-JournaledPlan -Module $module -JournalPath $journalPath -FailureHint $failureHint
$module.ExitJson()
