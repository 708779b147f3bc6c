#!powershell
# configmgr:wmi-free

# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

#AnsibleRequires -CSharpUtil Ansible.Basic
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._Journal
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._ServiceTable
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._ServiceOps
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._Processes
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._Watchdog
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._Apply

# Thin executor of win_service_quiesce (KB 256202 step 2 and its undo). The action plugin
# (plugins/action/win_service_quiesce.py) calls it twice: _phase=gather reads the service table and the
# journal; _phase=apply writes the journal and runs the explicit operations the controller planned. It makes
# no decisions. Parameters arrive as JSON-decoded values and are never turned into script text. Service
# Control Manager only (runs while winmgmt is disabled): no WMI/CIM.

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

$spec = @{
    options = @{
        state = @{ type = 'str'; default = 'quiesced'; choices = @('quiesced', 'restored', 'verified') }
        keep = @{ type = 'list'; elements = 'str'; default = @() }
        stop = @{ type = 'list'; elements = 'str'; default = @() }
        disable = @{ type = 'bool'; default = $true }
        processes = @{ type = 'list'; elements = 'str'; default = @() }
        instance = @{ type = 'str'; default = 'MSSQLSERVER' }
        sql_sessions = @{ type = 'list'; elements = 'dict'; default = @() }
        timeout = @{ type = 'int'; default = 120 }
        missing_journal_ok = @{ type = 'bool'; default = $false }
        lease_minutes = @{ type = 'int'; default = 60 }
        end_hung_services = @{ type = 'bool'; default = $true }
        configmgr_stop_timeout = @{ type = 'int'; default = 1800 }
        end_hung_configmgr = @{ type = 'bool'; default = $false }
        run_id = @{ type = 'str' }
        takeover = @{ type = 'str' }
        _phase = @{ type = 'str'; default = 'gather'; choices = @('gather', 'apply') }
        _plan = @{
            type = 'list'; elements = 'dict'; default = @()
            # The operation vocabulary: plugins/plugin_utils/_window/ops.py (MODULE_OPS, FIELDS).
            options = @{
                op = @{
                    type = 'str'; required = $true
                    choices = @('register_watchdog', 'set_mode', 'stop', 'start', 'end_process', 'remove_watchdog')
                }
                name = @{ type = 'str'; required = $true }
                timeout = @{ type = 'int' }
                end_hung = @{ type = 'bool' }
                start_mode = @{ type = 'str'; choices = @('auto', 'delayed', 'manual', 'disabled') }
                process_id = @{ type = 'int' }
                created = @{ type = 'raw' }
                reason = @{ type = 'str' }
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

if ($module.Params._phase -eq 'gather') {
    # The lease as found, renewed unless it has ended (then its run is dead and may be taken over).
    $module.Result.watchdog = Get-RenewedLease -JournalPath $journalPath -CheckMode $module.CheckMode
    # Read only: safe in check mode.
    $unreadable = New-Object -TypeName System.Collections.Generic.List[Object]
    $module.Result.services = Get-ServiceTable -VersionEvidence -Unreadable $unreadable
    $module.Result.unreadable_services = $unreadable
    $module.Result.system_root = $env:SystemRoot
    $module.Result.journal_text = Read-JournalText -Path $journalPath
    $module.Result.journal_untrusted = Get-JournalTrustProblem -Path $journalPath
    $module.Result.host_time = Get-HostTime
    $module.Result.host_name = $env:COMPUTERNAME
    # Every process with its parent id (Toolhelp32, no WMI); the controller picks what to end.
    $module.Result.processes = Get-ProcessSnapshot
    $module.ExitJson()
}

# Apply: the journal first, then the planned operations, then the journal after (_Apply.psm1).
$failureHint = "the prior state of every service this run changes and the processes it ends (which a restore " +
"does not bring back): run win_service_quiesce with state=restored to put the host back, or fix {0} and run again."
Invoke-JournaledPlan -Module $module -JournalPath $journalPath -FailureHint $failureHint
$module.ExitJson()
