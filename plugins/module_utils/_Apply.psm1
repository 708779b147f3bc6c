# configmgr:wmi-free
# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# The apply phase every journaled executor shares (win_service_quiesce, wmi_disable, net_isolate): the journal
# before, each planned operation through its handler, the journal after, and the fresh read the controller checks
# against what the plan promised. No decisions: the action plugins plan in Python; the executor protocol is
# docs/executor-protocol.md.
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._Journal
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._ServiceTable

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

# The operation vocabulary (plugins/plugin_utils/_window/ops.py OPS) -> its handler, in the util of its concern.
$script:OpHandlers = [ordered]@{
    set_mode = 'Invoke-SetModeOp'
    stop = 'Invoke-StopOp'
    start = 'Invoke-StartOp'
    expect_stopped = 'Invoke-ExpectStoppedOp'
    end_process = 'Invoke-EndProcessOp'
    set_profile = 'Invoke-SetProfileOp'
    add_rule = 'Invoke-AddRuleOp'
    remove_rule = 'Invoke-RemoveRuleOp'
    register_watchdog = 'Invoke-RegisterWatchdogOp'
    remove_watchdog = 'Invoke-RemoveWatchdogOp'
}

Function Invoke-ServiceOp {
    <#
    .SYNOPSIS
    Run one planned operation with its handler ($script:OpHandlers: the operation vocabulary of
    plugins/plugin_utils/_window/ops.py). The handlers live in the utils of their concern; an executor loads the
    ones its operations need, and an operation whose handler is not loaded fails naming it.
    #>
    param (
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Op,
        [Parameter(Mandatory = $true)][int]$TimeoutSeconds,
        # win_service_quiesce's end_hung_services: a stop that times out in StopPending ends the service's process.
        [switch]$EndHung
    )
    $kind = [string]$Op['op']
    if (-not $script:OpHandlers.Contains($kind)) {
        throw "unknown operation '$kind' for $([string]$Op['name'])"
    }
    $handler = Get-Command -Name $script:OpHandlers[$kind] -CommandType Function -ErrorAction SilentlyContinue
    if ($null -eq $handler) {
        throw "operation '$kind' needs $($script:OpHandlers[$kind]), which this executor does not load"
    }
    & $handler -Op $Op -TimeoutSeconds $TimeoutSeconds -EndHung:$EndHung
}

Function Invoke-JournaledPlan {
    <#
    .SYNOPSIS
    The apply phase of both executors: write _journal_before (before anything changes), run every operation
    of _plan in order with Invoke-ServiceOp, then write _journal_after. Sets Result.applied (the operations
    that finished) and Result.changed. A change (_continue_on_error false) stops at the first operation that
    throws; a restore (_continue_on_error true) tries every operation and collects each failure in
    Result.failures. Either way a failure fails the module with Result.failed_op (the first failure), a
    message that ends with FailureHint (its {0} is the operation's name), and _journal_after unwritten, so
    the journal keeps every record for the next restore. Changes nothing in check mode. The caller calls
    ExitJson.
    #>
    param (
        [Parameter(Mandatory = $true)][Object]$Module,
        [Parameter(Mandatory = $true)][string]$JournalPath,
        [Parameter(Mandatory = $true)][string]$FailureHint
    )
    $applied = [System.Collections.Generic.List[Object]]@()
    $failures = [System.Collections.Generic.List[Object]]@()
    $Module.Result.applied = $applied
    if ($Module.CheckMode) {
        # The action plugins never send apply in check mode; if something does, change nothing.
        return
    }

    # One apply at a time per host, and only on the journal this task planned from (compare-and-swap): a
    # second controller that read the same journal, or that read it before this run wrote it, is refused
    # here, before any change, instead of overwriting a record. finally runs on FailJson's exit too.
    try {
        $lock = Open-JournalLock -Path $JournalPath
    }
    catch {
        $Module.FailJson("cannot lock the journal $JournalPath before changing anything: $($_.Exception.Message); nothing was changed", $_)
    }
    try {
        $untrusted = Get-JournalTrustProblem -Path $JournalPath
        if ($untrusted) {
            $Module.FailJson("the journal $JournalPath cannot be trusted: $untrusted; nothing was changed")
        }
        $current = Get-JournalHash -Text (Read-JournalText -Path $JournalPath)
        if ($current -ne $Module.Params._journal_expected) {
            $Module.FailJson("the journal $JournalPath changed since this task read it: another run is working on " +
                "this host; nothing was changed. Run the task again to see which run holds the host.")
        }
        Invoke-PlanLocked -Module $Module -JournalPath $JournalPath -FailureHint $FailureHint -Applied $applied -Failures $failures
    }
    finally {
        $lock.Dispose()
    }
}

Function Invoke-PlanLocked {
    <#
    .SYNOPSIS
    Invoke-JournaledPlan's work under the journal lock: journal before, operations, journal after, the
    verification read.
    #>
    param (
        [Parameter(Mandatory = $true)][Object]$Module,
        [Parameter(Mandatory = $true)][string]$JournalPath,
        [Parameter(Mandatory = $true)][string]$FailureHint,
        [Parameter(Mandatory = $true)][AllowEmptyCollection()][System.Collections.Generic.List[Object]]$Applied,
        [Parameter(Mandatory = $true)][AllowEmptyCollection()][System.Collections.Generic.List[Object]]$Failures
    )
    # ($applied and $failures below are these two lists: PowerShell variable names ignore case.)
    if ($null -ne $Module.Params._journal_before) {
        try {
            Write-JournalText -Path $JournalPath -Text $Module.Params._journal_before
        }
        catch {
            $Module.FailJson("failed to write the journal $JournalPath before changing anything: $($_.Exception.Message)", $_)
        }
        $Module.Result.changed = $true
    }

    # Only win_service_quiesce has the option; the other executors' Params have no such key.
    $endHung = $Module.Params.ContainsKey('end_hung_services') -and [bool]$Module.Params['end_hung_services']
    # Slices (docs/progress.md): a stop still pending after _slice seconds returns as Result.pending, so the
    # controller can print how long it has waited; its next call resumes the plan at that operation (_resume_at,
    # the wait so far in _waited). A WinRM command's output reaches the controller only when the command ends.
    $plan = @($Module.Params._plan)
    $resumeAt = [int]$Module.Params._resume_at
    if ($resumeAt -lt 0 -or $resumeAt -gt $plan.Count) {
        $Module.FailJson("_resume_at $resumeAt is outside the plan of $($plan.Count) operations; nothing was changed")
    }
    for ($index = $resumeAt; $index -lt $plan.Count; $index++) {
        $op = $plan[$index]
        # The slice travels with the operation for its handler (Invoke-StopOp), and leaves it afterwards.
        $op['_slice'] = [int]$Module.Params._slice
        $op['_waited'] = if ($index -eq $resumeAt) { [int]$Module.Params._waited } else { 0 }
        # A stop of a Configuration Manager service carries its own timeout and end_hung (ops.py OPS).
        $opTimeout = [int]$Module.Params.timeout
        $opEndHung = $endHung
        if ($op['op'] -eq 'stop' -and $null -ne $op['timeout']) {
            $opTimeout = [int]$op['timeout']
        }
        if ($op['op'] -eq 'stop' -and $null -ne $op['end_hung']) {
            $opEndHung = [bool]$op['end_hung']
        }
        try {
            Invoke-ServiceOp -Op $op -TimeoutSeconds $opTimeout -EndHung:$opEndHung
        }
        catch {
            $what = "service $($op.name)"
            if ($op.op -eq 'end_process') {
                $what = "process $($op.name) (id $($op.process_id))"
            }
            elseif (@('add_rule', 'remove_rule') -contains $op.op) {
                $what = "firewall rule '$($op.name)'"
            }
            elseif ($op.op -eq 'set_profile') {
                $what = "firewall profile $($op.name)"
            }
            elseif (@('register_watchdog', 'remove_watchdog') -contains $op.op) {
                $what = "scheduled task $($op.name)"
            }
            $failures.Add(@{ op = $op.op; name = $op.name; msg = "$($op.op) of $what failed: $($_.Exception.Message)" })
            if ($failures.Count -eq 1) {
                $Module.Result.failed_op = $op
            }
            if (-not $Module.Params._continue_on_error) {
                $msg = "$($failures[0].msg). The journal $JournalPath holds " + ($FailureHint -f $op.name)
                $Module.FailJson($msg, $_)
            }
            continue
        }
        finally {
            $waited = [int]$op['_waited']
            $null = $op.Remove('_slice')
            $null = $op.Remove('_waited')
        }
        if ($op['result'] -eq 'stopping') {
            # Still stopping at the end of the slice: the journal keeps every record (_journal_after unwritten)
            # until the plan has run to its end. The caller is alive: its lease is renewed.
            $Module.Result.pending = @{ index = $index; op = [string]$op.op; name = [string]$op.name; waited = $waited
                timeout = $opTimeout; state = (Get-ServiceState -Names @([string]$op.name))[0].state }
            $renew = Get-Command -Name 'Get-RenewedLease' -CommandType Function -ErrorAction SilentlyContinue
            if ($null -ne $renew) {
                $null = & $renew -JournalPath $JournalPath
            }
            return
        }
        $applied.Add($op)
        # An operation that found the decided state already there changed nothing (see ops.py NO_CHANGE_RESULTS).
        if (@('already_stopped', 'already_running', 'unchanged', 'gone') -notcontains $op['result']) {
            $Module.Result.changed = $true
        }
    }

    if ($failures.Count -gt 0) {
        # A restore that could not do everything: every failure is listed, the journal keeps every record.
        $Module.Result.failures = $failures
        $list = ($failures | ForEach-Object -Process { $_.msg }) -join '; '
        $total = $plan.Count
        $Module.FailJson("$($failures.Count) of $total operations failed: $list. The host is still in the " +
            "window: the journal $JournalPath keeps every record. " + ($FailureHint -f $failures[0].name))
    }

    if ($null -ne $Module.Params._journal_after) {
        try {
            Write-JournalText -Path $JournalPath -Text $Module.Params._journal_after
        }
        catch {
            $Module.FailJson("every planned operation ran, but the journal $JournalPath could not be updated: " +
                "$($_.Exception.Message). Run the task again to record the result.", $_)
        }
        $Module.Result.changed = $true
    }

    # Verification: a fresh read of every service the plan acted on; the controller compares it with what
    # the plan promised and fails naming what does not hold.
    $serviceOps = @('set_mode', 'stop', 'start', 'expect_stopped')
    $names = @($plan | Where-Object -FilterScript { $serviceOps -contains $_.op } |
            ForEach-Object -Process { [string]$_.name } | Select-Object -Unique)
    $Module.Result.after = Get-ServiceState -Names $names
    # The firewall's read-back (firewall_after) is net_isolate's own, after this returns: only it loads _Firewall.
}

Export-ModuleMember -Function @(
    'Invoke-ServiceOp',
    'Invoke-JournaledPlan'
)
