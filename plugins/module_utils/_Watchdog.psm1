# configmgr:wmi-free
# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# The lease of the service window: the watchdog task (schtasks.exe, as SYSTEM: the ScheduledTasks cmdlets are
# CIM), its renewal by every call of the collection's modules, and the watchdog itself, which puts the window back
# from the journal when the controller is gone.
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._NativeCommand
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._Journal
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._Firewall

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

Function Get-WatchdogScriptPath {
    param ([Parameter(Mandatory = $true)][string]$JournalPath)
    return Join-Path -Path (Split-Path -Path $JournalPath -Parent) -ChildPath 'watchdog.ps1'
}

Function Get-WatchdogTask {
    <#
    .SYNOPSIS
    The watchdog task as schtasks.exe /Query /XML shows it: @{ task; fires } ($null when not registered).
    #>
    param ([Parameter(Mandatory = $true)][string]$Name)
    $run = Invoke-NativeCommand -FilePath 'schtasks.exe' -ArgumentList @('/Query', '/TN', $Name, '/XML')
    if ($run.rc -ne 0) {
        return $null
    }
    $xml = [xml]($run.output -join "`n")
    $fires = $null
    $expired = $false
    foreach ($trigger in $xml.Task.Triggers.ChildNodes) {
        if ($trigger.LocalName -eq 'TimeTrigger') {
            $fires = [string]$trigger.StartBoundary
            # StartBoundary with its offset (or, written by an older version, without a zone: the host's local time,
            # as Get-Date is); a [datetime] cast parses it in the invariant culture either way.
            $expired = ([datetime]$fires -lt (Get-Date))
        }
    }
    return @{ task = $Name; fires = $fires; expired = $expired }
}

Function Register-Watchdog {
    <#
    .SYNOPSIS
    Register (or replace) the watchdog: a task run as SYSTEM that runs watchdog.ps1 (written beside the
    journal, in its protected folder, from the text of the functions it runs: Get-WatchdogScriptText) at now +
    Minutes and at every boot. Task XML through schtasks.exe /Create /XML (the ScheduledTasks cmdlets are CIM).
    #>
    param (
        [Parameter(Mandatory = $true)][string]$Name,
        [Parameter(Mandatory = $true)][int]$Minutes,
        [Parameter(Mandatory = $true)][string]$JournalPath
    )
    $script = Get-WatchdogScriptPath -JournalPath $JournalPath
    Write-JournalText -Path $script -Text (Get-WatchdogScriptText)
    # The invariant culture (':' in a custom format is the session culture's time separator) and the local offset:
    # Task Scheduler reads StartBoundary as YYYY-MM-DDTHH:MM:SS(+-)HH:MM ("StartBoundary (triggerBaseType)").
    $fires = (Get-Date).AddMinutes($Minutes).ToString("yyyy-MM-dd'T'HH:mm:sszzz", [System.Globalization.CultureInfo]::InvariantCulture)
    Register-SystemScriptTask -Name $Name -Script $script -Argument 'lease' -StartWhenAvailable `
        -Description 'configmgr.sql_upgrade: puts the KB 256202 window back when its lease ends or the server boots' `
        -Triggers "<TimeTrigger><StartBoundary>$fires</StartBoundary><Enabled>true</Enabled></TimeTrigger><BootTrigger><Enabled>true</Enabled></BootTrigger>"
    return 'changed'
}

Function Unregister-Watchdog {
    param ([Parameter(Mandatory = $true)][string]$Name)
    if ($null -eq (Get-WatchdogTask -Name $Name)) {
        return 'unchanged'
    }
    $run = Invoke-NativeCommand -FilePath 'schtasks.exe' -ArgumentList @('/Delete', '/TN', $Name, '/F')
    if ($run.rc -ne 0) {
        throw "schtasks.exe /Delete /TN $Name failed ($($run.rc)): $($run.output -join ' ')"
    }
    return 'changed'
}

Function Get-RenewedLease {
    <#
    .SYNOPSIS
    The watchdog task as found (Get-WatchdogTask), its lease renewed (Update-ServiceWindowLease) unless it has
    ended (then its run is dead, and the controller may take the host over) or this is check mode: what every
    gather of the collection's modules returns as `watchdog`.
    #>
    param (
        [Parameter(Mandatory = $true)][string]$JournalPath,
        [bool]$CheckMode = $false
    )
    $name = '\configmgr.sql_upgrade\watchdog'
    $found = Get-WatchdogTask -Name $name
    if (-not $CheckMode -and $found -and -not $found.expired) {
        $null = Update-ServiceWindowLease -JournalPath $JournalPath -Name $name
    }
    return $found
}

Function Update-ServiceWindowLease {
    <#
    .SYNOPSIS
    Every call of the collection's modules renews the lease: when the journal records an open window and the
    watchdog is registered, move its time trigger to now + the recorded lease - the isolation's while the host
    is isolated, else the window's own (lease_minutes, recorded by the first change, step 2) while services or
    WMI are still to be put back. Returns the task (or $null). Reads only data from the journal
    (ConvertFrom-Json), never code. The twin's renew_lease decides the same way.
    #>
    param (
        [Parameter(Mandatory = $true)][string]$JournalPath,
        [Parameter(Mandatory = $true)][string]$Name
    )
    $text = Read-JournalText -Path $JournalPath
    if ($null -eq $text -or (Get-JournalTrustProblem -Path $JournalPath)) {
        return $null
    }
    $doc = ConvertFrom-Json -InputObject $text
    $keys = $doc.PSObject.Properties.Name
    $minutes = 0
    if ($keys -contains 'network' -and $doc.network.status -eq 'isolated') {
        $minutes = [int]$doc.network.lease_minutes
    }
    elseif ($keys -contains 'lease_minutes' -and (
            ($keys -contains 'services' -and $doc.services.status -eq 'quiesced') -or
            ($keys -contains 'wmi' -and $doc.wmi.status -ne 'enabled'))) {
        $minutes = [int]$doc.lease_minutes
    }
    if ($minutes -le 0) {
        return $null
    }
    if ($null -eq (Get-WatchdogTask -Name $Name)) {
        return $null
    }
    $null = Register-Watchdog -Name $Name -Minutes $minutes -JournalPath $JournalPath
    return Get-WatchdogTask -Name $Name
}

# The functions watchdog.ps1 holds, copied by their text from this util and the ones it loads: the watchdog runs the
# journal's undo with net_isolate's own firewall handlers, and services with Invoke-WatchdogServiceOp.
$script:WatchdogFunctions = @(
    'Invoke-NativeCommand', 'Get-FirewallProfileBit', 'Set-FirewallProfileState', 'Remove-IsolationRule',
    'Invoke-SetProfileOp', 'Invoke-RemoveRuleOp', 'Test-UndoOp', 'Invoke-WatchdogServiceOp',
    'Invoke-ServiceWindowWatchdog'
)

Function Get-WatchdogScriptText {
    <#
    .SYNOPSIS
    watchdog.ps1: strict mode, the functions of $script:WatchdogFunctions by their own text, and the call of the
    watchdog with the trigger the task passes. A fixed script: nothing in it comes from the journal.
    #>
    [OutputType([string])]
    param ()
    $parts = [System.Collections.Generic.List[string]]@("Set-StrictMode -Version 2.0", "`$ErrorActionPreference = 'Stop'")
    foreach ($name in $script:WatchdogFunctions) {
        $command = Get-Command -Name $name -CommandType Function -ErrorAction Stop
        $parts.Add("Function $name {`r`n$($command.ScriptBlock.ToString())`r`n}")
    }
    $parts.Add("Invoke-ServiceWindowWatchdog -Trigger `$args[0]")
    ($parts -join "`r`n") + "`r`n"
}

Function Test-UndoOp {
    <#
    .SYNOPSIS
    '' when the watchdog may run Op from the journal's undo, else why not: only the operations of a restore
    (set_mode, start, remove_rule, set_profile), on services the journal records (Recorded), this collection's
    isolation rules and the three firewall profiles. The journal's folder is protected, and the controller refuses
    an undo that is not the restore of its records; this is the watchdog's own check of data it acts on as SYSTEM.
    #>
    [OutputType([string])]
    param (
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Op,
        [Parameter(Mandatory = $true)][AllowEmptyCollection()][string[]]$Recorded
    )
    $kind = [string]$Op['op']
    $name = [string]$Op['name']
    if (@('set_mode', 'start') -contains $kind) {
        # -notcontains compares without case, as the Service Control Manager compares service names.
        if ($Recorded -notcontains $name) {
            return "$name is not a service the journal records"
        }
        if ($kind -eq 'set_mode' -and @('auto', 'delayed', 'manual', 'disabled') -notcontains [string]$Op['start_mode']) {
            return "start mode '$($Op['start_mode'])' is not one a restore sets"
        }
        return ''
    }
    if ($kind -eq 'remove_rule') {
        if (-not $name.StartsWith('configmgr.sql_upgrade isolation (')) {
            return "rule '$name' is not an isolation rule of configmgr.sql_upgrade"
        }
        return ''
    }
    if ($kind -eq 'set_profile') {
        if (@('domain', 'private', 'public') -notcontains $name) {
            return "'$name' is not a firewall profile"
        }
        return ''
    }
    return "'$kind' is not an operation of a restore"
}

Function Invoke-WatchdogServiceOp {
    <#
    .SYNOPSIS
    A service operation of the undo, acting on the state now as the executors' handlers do: set_mode with
    sc.exe config (ChangeServiceConfig; delayed is start= delayed-auto), start with ServiceController (a
    StopPending service is waited for first, a paused one continued, then it must reach Running within
    TimeoutSeconds). The watchdog runs outside Ansible, where the executors' C# utils (SCManager.cs,
    ServiceControl.cs) are not compiled, so it uses these documented, C#-free ways. Throws naming what failed.
    #>
    param (
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Op,
        [Parameter(Mandatory = $true)][int]$TimeoutSeconds
    )
    $name = [string]$Op['name']
    if ($Op['op'] -eq 'set_mode') {
        $modes = @{ auto = 'auto'; delayed = 'delayed-auto'; manual = 'demand'; disabled = 'disabled' }
        $mode = $modes[[string]$Op['start_mode']]
        $run = Invoke-NativeCommand -FilePath 'sc.exe' -ArgumentList @('config', $name, 'start=', $mode)
        if ($run.rc -ne 0) {
            throw "sc.exe config $name start= $mode failed ($($run.rc)): $($run.output -join ' ')"
        }
        $Op['result'] = 'changed'
        return
    }
    Add-Type -AssemblyName System.ServiceProcess
    $status = [System.ServiceProcess.ServiceControllerStatus]
    $wait = [System.TimeSpan]::FromSeconds($TimeoutSeconds)
    $controller = New-Object -TypeName System.ServiceProcess.ServiceController -ArgumentList $name
    try {
        $controller.Refresh()
        if ($controller.Status -eq $status::StopPending) {
            $controller.WaitForStatus($status::Stopped, $wait)
        }
        if ($controller.Status -eq $status::Running) {
            $Op['result'] = 'already_running'
            return
        }
        if ($controller.Status -eq $status::Paused) {
            $controller.Continue()
        }
        elseif ($controller.Status -ne $status::StartPending -and $controller.Status -ne $status::ContinuePending) {
            $controller.Start()
        }
        $controller.WaitForStatus($status::Running, $wait)
        $Op['result'] = 'started'
    }
    finally {
        $controller.Dispose()
    }
}

Function Invoke-ServiceWindowWatchdog {
    <#
    .SYNOPSIS
    The on-host watchdog (run as SYSTEM by the task Register-Watchdog creates, from a copy of this function's
    text in watchdog.ps1): when the lease has ended or the server has booted, put the window back from the
    journal without any controller, by running the journal's undo: the operations the modules' own restores
    would run (network, WMI, services, then WMI's dependents), planned by the controller on every write
    (plugins/plugin_utils/_window/undo.py). Each is checked (Test-UndoOp) and run by the firewall handlers
    net_isolate uses, or for services by Invoke-WatchdogServiceOp. Never while SQL Server setup is recorded as
    running and its process exists: it waits for setup to end first. It writes what it did into the journal
    (watchdog section, every status restored, undo emptied, which also releases the run lock), then removes its
    task and its script. WMI-free: the journal is read as data (ConvertFrom-Json), never run. The twin emulates
    exactly this contract (tests/twin/emulation/configmgr.py, run_watchdog).
    #>
    param ([string]$Trigger = 'lease')
    # Best effort: every step is tried and what failed is written into the journal; nothing stops the rest.
    $ErrorActionPreference = 'Continue'
    $folder = Join-Path -Path $env:ProgramData -ChildPath 'configmgr.sql_upgrade'
    $journalPath = Join-Path -Path $folder -ChildPath 'journal.json'
    $taskName = '\configmgr.sql_upgrade\watchdog'
    $log = [System.Collections.Generic.List[string]]@()

    if (-not (Test-Path -LiteralPath $journalPath -PathType Leaf)) {
        & schtasks.exe /Delete /TN $taskName /F 2>$null | Out-Null
        return
    }
    try {
        $doc = ConvertFrom-Json -InputObject ([System.IO.File]::ReadAllText($journalPath))
    }
    catch {
        # An unreadable journal is left for an administrator; the task stays, so the next boot tries again.
        return
    }
    $has = { param($name) $doc.PSObject.Properties.Name -contains $name }

    # Setup runs the instance in single-user mode: putting the network or services back now would let SMS take
    # the one connection. Wait while the recorded setup process exists (at most 72 hours, the task's limit).
    # The journal records setup's process id once the controller heard it; until then (process id 0) the setup
    # runner's state file (setup_state.json, written by sql_setup's runner) names it, or the runner is starting it.
    if ((& $has 'setup') -and $doc.setup.status -eq 'running') {
        $statePath = Join-Path -Path $folder -ChildPath 'setup_state.json'
        $setupPid = [int]$doc.setup.process_id
        $setupStarted = [DateTime]::Parse([string]$doc.setup.started, [System.Globalization.CultureInfo]::InvariantCulture).ToUniversalTime()
        while ($true) {
            if ($setupPid -eq 0 -and (Test-Path -LiteralPath $statePath -PathType Leaf)) {
                try {
                    $runState = ConvertFrom-Json -InputObject ([System.IO.File]::ReadAllText($statePath))
                    if ($null -eq $runState.ended) {
                        $setupPid = [int]$runState.process_id
                    }
                    else {
                        break
                    }
                }
                catch {
                    $setupPid = 0
                }
            }
            $found = if ($setupPid -gt 0) { Get-Process -Id $setupPid -ErrorAction SilentlyContinue } else { $null }
            if ($null -ne $found) {
                # Windows reuses process ids: a process with setup's id that started more than two minutes after
                # setup was recorded as starting is another process, and setup has ended (issue 26).
                try {
                    if ($found.StartTime.ToUniversalTime() -gt $setupStarted.AddMinutes(2)) {
                        $found = $null
                    }
                }
                catch {
                    $log.Add("could not read the start time of process ${setupPid}: $($_.Exception.Message)")
                }
            }
            if ($setupPid -gt 0 -and $null -eq $found) {
                break
            }
            if ($setupPid -eq 0 -and ([DateTime]::UtcNow - $setupStarted).TotalMinutes -ge 10) {
                # No process id ten minutes after setup was recorded as starting: the runner never started it.
                break
            }
            Start-Sleep -Seconds 60
        }
        $log.Add("waited for SQL Server setup (process $setupPid) to end")
    }
    if ($Trigger -eq 'lease') {
        # One action serves both triggers: before the lease's end it can only be the boot trigger.
        try {
            $task = [xml]((& schtasks.exe /Query /TN $taskName /XML 2>$null) -join "`n")
            foreach ($node in @($task.Task.Triggers.ChildNodes)) {
                if ($node.LocalName -eq 'TimeTrigger' -and [datetime]$node.StartBoundary -gt (Get-Date)) {
                    $Trigger = 'boot'
                }
            }
        }
        catch {
            $log.Add("could not read the task's trigger: $($_.Exception.Message)")
        }
    }

    # What is still open, and the undo the controller planned for it (plugins/plugin_utils/_window/undo.py): the
    # operations net_isolate, wmi_disable and win_service_quiesce would run to put it back. They are run here as data,
    # each checked first (Test-UndoOp); nothing is decided here.
    $open = [System.Collections.Generic.List[string]]@()
    if ((& $has 'network') -and $doc.network.status -eq 'isolated') {
        $open.Add('network')
    }
    if ((& $has 'wmi') -and @('disabled', 'setup') -contains $doc.wmi.status) {
        $open.Add('wmi')
    }
    if ((& $has 'services') -and $doc.services.status -eq 'quiesced') {
        $open.Add('services')
    }
    if ($open.Count -gt 0 -and -not (& $has 'undo')) {
        # A journal written before the controller planned its undo: left as it is, with the task, for the next run
        # of the collection (any task of it rewrites the journal) or an administrator.
        return
    }
    $recorded = [System.Collections.Generic.List[string]]@()
    if (& $has 'services') {
        foreach ($record in $doc.services.records.PSObject.Properties) {
            $recorded.Add([string]$record.Name)
        }
    }
    if (& $has 'wmi') {
        $recorded.Add('Winmgmt')
        foreach ($name in @($doc.wmi.dependents)) {
            $recorded.Add([string]$name)
        }
    }
    $ran = 0
    foreach ($item in @($doc.undo)) {
        $op = @{}
        foreach ($property in $item.PSObject.Properties) {
            $op[$property.Name] = $property.Value
        }
        $refused = Test-UndoOp -Op $op -Recorded $recorded.ToArray()
        if ($refused) {
            $log.Add("refused $($op['op']) of $($op['name']): $refused")
            continue
        }
        try {
            if (@('set_mode', 'start') -contains $op['op']) {
                Invoke-WatchdogServiceOp -Op $op -TimeoutSeconds 120
            }
            elseif ($op['op'] -eq 'remove_rule') {
                Invoke-RemoveRuleOp -Op $op -TimeoutSeconds 120
            }
            else {
                Invoke-SetProfileOp -Op $op -TimeoutSeconds 120
            }
            $ran++
        }
        catch {
            $log.Add("$($op['op']) of $($op['name']) failed: $($_.Exception.Message)")
        }
    }
    if ($open.Contains('network')) {
        $doc.network.status = 'restored'
    }
    if ($open.Contains('wmi')) {
        $doc.wmi.status = 'enabled'
    }
    if ($open.Contains('services')) {
        $doc.services.status = 'restored'
    }
    if ($open.Count -gt 0) {
        $log.Add("$($open -join ', ') put back ($ran of $(@($doc.undo).Count) operations ran)")
    }
    if (& $has 'undo') {
        # Every section is put back: nothing is left to undo (the controller plans the same for this journal).
        $doc.undo = @()
    }

    $now = (Get-Date).ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", [System.Globalization.CultureInfo]::InvariantCulture)
    $said = $log -join '; '
    if ($said.Length -gt 2000) {
        $said = $said.Substring(0, 1997) + '...'
    }
    $entry = [pscustomobject]@{ fired = $now; trigger = $Trigger; result = $said }
    $doc | Add-Member -NotePropertyName watchdog -NotePropertyValue $entry -Force
    $doc.updated = $now
    $temp = $journalPath + '.tmp'
    if (Test-Path -LiteralPath $temp) {
        [System.IO.File]::Delete($temp)
    }
    [System.IO.File]::WriteAllText($temp, (ConvertTo-Json -InputObject $doc -Depth 8),
        (New-Object -TypeName System.Text.UTF8Encoding -ArgumentList $false))
    [System.IO.File]::Replace($temp, $journalPath, [NullString]::Value)
    & schtasks.exe /Delete /TN $taskName /F 2>$null | Out-Null
    [System.IO.File]::Delete((Join-Path -Path $folder -ChildPath 'watchdog.ps1'))
}

Function Invoke-RegisterWatchdogOp {
    <#
    .SYNOPSIS
    Register (or replace) the watchdog task.
    The handler of the operation 'register_watchdog' (Invoke-ServiceOp's contract: -Op -TimeoutSeconds -EndHung; it sets
    $Op['result'] and throws naming what failed).
    #>
    param (
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Op,
        [Parameter(Mandatory = $true)][int]$TimeoutSeconds,
        [switch]$EndHung
    )
    $name = [string]$Op['name']
    $Op['result'] = Register-Watchdog -Name $name -Minutes ([int]$Op['minutes']) -JournalPath (Get-JournalPath)
}

Function Invoke-RemoveWatchdogOp {
    <#
    .SYNOPSIS
    Remove the watchdog task and its script.
    The handler of the operation 'remove_watchdog' (Invoke-ServiceOp's contract: -Op -TimeoutSeconds -EndHung; it sets
    $Op['result'] and throws naming what failed).
    #>
    param (
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Op,
        [Parameter(Mandatory = $true)][int]$TimeoutSeconds,
        [switch]$EndHung
    )
    $name = [string]$Op['name']
    $Op['result'] = Unregister-Watchdog -Name $name
    $script = Get-WatchdogScriptPath -JournalPath (Get-JournalPath)
    if (Test-Path -LiteralPath $script) {
        [System.IO.File]::Delete($script)
    }
}

Export-ModuleMember -Function @(
    'Get-WatchdogTask',
    'Get-RenewedLease',
    'Register-Watchdog',
    'Update-ServiceWindowLease',
    'Invoke-ServiceWindowWatchdog',
    'Invoke-RegisterWatchdogOp',
    'Invoke-RemoveWatchdogOp'
)
