# configmgr:wmi-free
# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# The service operations of a plan (set_mode, stop, start, expect_stopped): each acts on the service's state at
# apply time and waits within the task's timeout. Loaded by the executors whose plans change services; the apply
# engine (_Apply.psm1) finds each handler by the operation's name.
#AnsibleRequires -CSharpUtil ansible_collections.ansible.windows.plugins.module_utils.SCManager
#AnsibleRequires -CSharpUtil ansible_collections.configmgr.sql_upgrade.plugins.module_utils.ServiceControl

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

Add-Type -AssemblyName System.ServiceProcess

Function Get-FreshStatus {
    <#
    .SYNOPSIS
    The service's status now. ServiceController caches Status until Refresh(): reading it without one is how
    a stop ends in ERROR_SERVICE_NOT_ACTIVE (1062) for a service that stopped by itself in between.
    #>
    [OutputType([System.ServiceProcess.ServiceControllerStatus])]
    param ([Parameter(Mandatory = $true)][System.ServiceProcess.ServiceController]$Controller)
    $Controller.Refresh()
    $Controller.Status
}

Function Stop-PlannedService {
    <#
    .SYNOPSIS
    Bring one service to Stopped, acting on its state now, within TimeoutSeconds. Returns 'already_stopped'
    when it was stopped (at gather, or by itself since: 1062 is done, not an error) or 'stopped'. Pending
    states are waited out before the stop control (StartPending / ContinuePending / PausePending answer
    ERROR_SERVICE_CANNOT_ACCEPT_CTRL, 1061), a StopPending service is only waited for. The control is sent
    with ControlService, which never stops a dependent: a running dependent (one the plan did not stop, or
    one that started again after its own stop) makes the SCM answer 1051, reported by name. Throws naming the service and the
    Win32 error otherwise.
    #>
    [OutputType([string])]
    param (
        [Parameter(Mandatory = $true)][string]$Name,
        [Parameter(Mandatory = $true)][int]$TimeoutSeconds,
        # A resumed stop: the control was sent by an earlier slice, WaitedSeconds of the timeout are spent.
        [int]$WaitedSeconds = 0,
        # Return 'stopping' when the service is still stopping after this many seconds (0: wait to the timeout).
        [int]$SliceSeconds = 0
    )
    $status = [System.ServiceProcess.ServiceControllerStatus]
    $controller = New-Object -TypeName System.ServiceProcess.ServiceController -ArgumentList $Name
    try {
        $begun = [System.DateTime]::UtcNow
        $deadline = $begun.AddSeconds([System.Math]::Max(0, $TimeoutSeconds - $WaitedSeconds))
        $sliceEnd = if ($SliceSeconds -gt 0) { $begun.AddSeconds($SliceSeconds) } else { [System.DateTime]::MaxValue }
        $sent = $WaitedSeconds -gt 0
        while ($true) {
            $now = Get-FreshStatus -Controller $controller
            if ($now -eq $status::Stopped) {
                if ($sent) { return 'stopped' }
                return 'already_stopped'
            }
            if ([System.DateTime]::UtcNow -gt $deadline) {
                throw "service $Name did not stop within $TimeoutSeconds seconds (state: $now)"
            }
            if ($sent -and [System.DateTime]::UtcNow -gt $sliceEnd) {
                return 'stopping'
            }
            $settled = @($status::Running, $status::Paused) -contains $now
            if ($settled -and -not $sent) {
                $code = [ConfigMgr.SqlUpgrade.ServiceControl]::Stop($Name)
                if ($code -eq 0) {
                    $sent = $true
                }
                elseif ($code -eq 1062) {
                    return 'already_stopped'  # ERROR_SERVICE_NOT_ACTIVE: it stopped by itself just now
                }
                elseif ($code -eq 1051) {
                    $running = @($controller.DependentServices | Where-Object -FilterScript {
                            (Get-FreshStatus -Controller $_) -ne $status::Stopped
                        } | ForEach-Object -Process { $_.ServiceName })
                    throw "service $Name has running dependents ($($running -join ', ')) that the plan did not stop, or that started again after their own stop; a stop never cascades: run the task again"
                }
                elseif ($code -ne 1061) {
                    # 1061: it entered a pending state since the read; wait it out and send again.
                    throw "service ${Name}: the stop control was refused: $([ConfigMgr.SqlUpgrade.ServiceControl]::Describe($code))"
                }
            }
            Start-Sleep -Milliseconds 250
        }
    }
    finally {
        $controller.Dispose()
    }
}

Function Stop-HungServiceProcess {
    <#
    .SYNOPSIS
    A service that did not stop within the timeout and still reports StopPending: end its own process
    (Process.Kill, TerminateProcess), then wait up to 30 seconds for the SCM to record it Stopped. Only a
    SERVICE_WIN32_OWN_PROCESS service, whose process hosts nothing else; a service sharing its process (svchost)
    throws, naming it. The id is the SCM's current one (QueryServiceStatusEx, through SCManager.Service), read
    while the process still runs, so it cannot name a reused id. The SCM counts the end as a failure: recovery
    actions would restart it, but the quiesce disabled it first, and StartService refuses a disabled service
    (ERROR_SERVICE_DISABLED). Returns the process id ended, or 0 when the service is no longer StopPending.
    #>
    [OutputType([int])]
    param ([Parameter(Mandatory = $true)][string]$Name)
    $rights = [Ansible.Windows.SCManager.ServiceRights]'QueryConfig, QueryStatus'
    $svc = New-Object -TypeName Ansible.Windows.SCManager.Service -ArgumentList @($Name, $rights)
    try {
        $state = $svc.State
        $type = $svc.ServiceType
        $processId = [int]$svc.ProcessId
    }
    finally {
        $svc.Dispose()
    }
    if ($state -ne [Ansible.Windows.SCManager.ServiceStatus]::StopPending -or $processId -le 0) {
        return 0
    }
    # dwServiceType bits as integers (SERVICE_WIN32_OWN_PROCESS 0x10, SERVICE_WIN32_SHARE_PROCESS 0x20), not enum truth.
    $bits = [uint32]$type
    if (($bits -band 0x10) -eq 0 -or ($bits -band 0x20) -ne 0) {
        throw "service $Name is still stopping and shares its process (id $processId) with other services; it is not ended. End it by hand or wait, then run the task again"
    }
    try {
        $process = [System.Diagnostics.Process]::GetProcessById($processId)
    }
    catch [System.ArgumentException] {
        $process = $null  # it exited between the read and now
    }
    if ($null -ne $process) {
        try {
            $process.Kill()
            $null = $process.WaitForExit(30000)
        }
        catch {
            $process.Refresh()
            if (-not $process.HasExited) {
                throw "service $Name is still stopping and its process (id $processId) could not be ended: $($_.Exception.Message)"
            }
        }
        finally {
            $process.Dispose()
        }
    }
    # Stop-PlannedService only waits for a StopPending service (no second control): the SCM's record of the end.
    try {
        $null = Stop-PlannedService -Name $Name -TimeoutSeconds 30
    }
    catch {
        throw "service ${Name}: its process (id $processId) was ended, but: $($_.Exception.Message)"
    }
    return $processId
}

Function Start-PlannedService {
    <#
    .SYNOPSIS
    Bring one service to Running within TimeoutSeconds. Returns 'already_running' or 'started'. A StopPending
    service is waited for until it has stopped (StartService fails until then, 1061), a Paused one is
    continued (StartService would answer 1056), a pending one (StartPending, ContinuePending, PausePending)
    is waited for. A service that falls back to Stopped after the start fails at once, with its Win32 and
    service-specific exit codes (QueryServiceStatusEx), instead of being waited on for the whole timeout.
    #>
    [OutputType([string])]
    param (
        [Parameter(Mandatory = $true)][string]$Name,
        [Parameter(Mandatory = $true)][int]$TimeoutSeconds
    )
    $status = [System.ServiceProcess.ServiceControllerStatus]
    $controller = New-Object -TypeName System.ServiceProcess.ServiceController -ArgumentList $Name
    try {
        $deadline = [System.DateTime]::UtcNow.AddSeconds($TimeoutSeconds)
        $result = 'already_running'
        $started = $false
        while ($true) {
            $now = Get-FreshStatus -Controller $controller
            if ($now -eq $status::Running) {
                return $result
            }
            if ([System.DateTime]::UtcNow -gt $deadline) {
                if ($now -eq $status::StopPending) {
                    throw "service $Name is still stopping after $TimeoutSeconds seconds and cannot be started until it has stopped (state: $now)"
                }
                throw "service $Name did not start within $TimeoutSeconds seconds (state: $now)"
            }
            if ($now -eq $status::Stopped) {
                if ($started) {
                    $svc = New-Object -TypeName Ansible.Windows.SCManager.Service -ArgumentList @(
                        $Name, [Ansible.Windows.SCManager.ServiceRights]'QueryConfig, QueryStatus')
                    try {
                        $win32 = [int]$svc.Win32ExitCode  # a Win32 error code: below 2^31
                        $specific = [long]$svc.ServiceExitCode  # any DWORD (an HRESULT such as 0x80070005)
                    }
                    finally {
                        $svc.Dispose()
                    }
                    throw ("service $Name stopped while starting: Win32 exit code " +
                        "$([ConfigMgr.SqlUpgrade.ServiceControl]::Describe($win32)), service-specific exit code $specific")
                }
                $controller.Start()
                $started = $true
                $result = 'started'
            }
            elseif ($now -eq $status::Paused -and $result -ne 'started') {
                # Once: until the service reports ContinuePending a second control would answer 1061.
                $controller.Continue()
                $result = 'started'
            }
            Start-Sleep -Milliseconds 250
        }
    }
    finally {
        $controller.Dispose()
    }
}

Function Invoke-SetModeOp {
    <#
    .SYNOPSIS
    Set a service's start mode (left alone when it is already so).
    The handler of the operation 'set_mode' (Invoke-ServiceOp's contract: -Op -TimeoutSeconds -EndHung; it sets
    $Op['result'] and throws naming what failed).
    #>
    param (
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Op,
        [Parameter(Mandatory = $true)][int]$TimeoutSeconds,
        [switch]$EndHung
    )
    $name = [string]$Op['name']
    $modes = @{
        auto = [Ansible.Windows.SCManager.ServiceStartType]::AutoStart
        delayed = [Ansible.Windows.SCManager.ServiceStartType]::AutoStartDelayed
        manual = [Ansible.Windows.SCManager.ServiceStartType]::DemandStart
        disabled = [Ansible.Windows.SCManager.ServiceStartType]::Disabled
    }
    $mode = [string]$Op['start_mode']
    if (-not $modes.ContainsKey($mode)) {
        throw "service ${name}: start mode '$mode' cannot be set (auto, delayed, manual, disabled)"
    }
    $svc = New-Object -TypeName Ansible.Windows.SCManager.Service -ArgumentList @(
        $name, [Ansible.Windows.SCManager.ServiceRights]'QueryConfig, ChangeConfig, QueryStatus')
    try {
        # Act on the state at apply time: a mode already as decided is left alone and reported so.
        if ($svc.StartType -eq $modes[$mode]) {
            $Op['result'] = 'unchanged'
        }
        else {
            $svc.StartType = $modes[$mode]
            $Op['result'] = 'changed'
        }
    }
    finally {
        $svc.Dispose()
    }
}

Function Invoke-StopOp {
    <#
    .SYNOPSIS
    Stop a service; with -EndHung, a stop that hangs in StopPending ends the service's own process.
    The handler of the operation 'stop' (Invoke-ServiceOp's contract: -Op -TimeoutSeconds -EndHung; it sets
    $Op['result'] and throws naming what failed).
    #>
    param (
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Op,
        [Parameter(Mandatory = $true)][int]$TimeoutSeconds,
        [switch]$EndHung
    )
    $name = [string]$Op['name']
    $waited = if ($Op.ContainsKey('_waited')) { [int]$Op['_waited'] } else { 0 }
    $slice = if ($Op.ContainsKey('_slice')) { [int]$Op['_slice'] } else { 0 }
    $begun = [System.DateTime]::UtcNow
    try {
        $Op['result'] = Stop-PlannedService -Name $name -TimeoutSeconds $TimeoutSeconds -WaitedSeconds $waited -SliceSeconds $slice
        # The whole wait so far, for a stop that goes on in the next slice.
        $Op['_waited'] = $waited + [int]([System.DateTime]::UtcNow - $begun).TotalSeconds
    }
    catch {
        $stopError = $_
        if (-not $EndHung) {
            throw $stopError
        }
        # Hung in StopPending past the timeout: end the service's own process (never a shared one).
        $ended = Stop-HungServiceProcess -Name $name
        if ($ended -le 0) {
            throw $stopError
        }
        $Op['process_id'] = $ended
        $Op['result'] = 'ended_hung'
    }
    # The service's own process is not ended here by its old id: Windows reuses process ids, so the id
    # gathered before the stop may already name another process. Processes a stopped service leaves
    # behind are separate end_process operations, checked by id, name and creation time.
}

Function Invoke-StartOp {
    <#
    .SYNOPSIS
    Start a service.
    The handler of the operation 'start' (Invoke-ServiceOp's contract: -Op -TimeoutSeconds -EndHung; it sets
    $Op['result'] and throws naming what failed).
    #>
    param (
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Op,
        [Parameter(Mandatory = $true)][int]$TimeoutSeconds,
        [switch]$EndHung
    )
    $name = [string]$Op['name']
    $Op['result'] = Start-PlannedService -Name $name -TimeoutSeconds $TimeoutSeconds
}

Function Invoke-ExpectStoppedOp {
    <#
    .SYNOPSIS
    After the settle time, the service must still be stopped.
    The handler of the operation 'expect_stopped' (Invoke-ServiceOp's contract: -Op -TimeoutSeconds -EndHung; it sets
    $Op['result'] and throws naming what failed).
    #>
    param (
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Op,
        [Parameter(Mandatory = $true)][int]$TimeoutSeconds,
        [switch]$EndHung
    )
    $name = [string]$Op['name']
    # Windows starts a stopped (not disabled) winmgmt again on the next WMI request; after the settle
    # time the service must still be stopped, or something is restarting it.
    Start-Sleep -Seconds ([int]$Op['seconds'])
    $controller = New-Object -TypeName System.ServiceProcess.ServiceController -ArgumentList $name
    try {
        if ($controller.Status -ne [System.ServiceProcess.ServiceControllerStatus]::Stopped) {
            throw "service $name did not stay stopped: it is $($controller.Status) $([int]$Op['seconds']) seconds later"
        }
    }
    finally {
        $controller.Dispose()
    }
}

Export-ModuleMember -Function @(
    'Stop-HungServiceProcess',
    'Invoke-SetModeOp',
    'Invoke-StopOp',
    'Invoke-StartOp',
    'Invoke-ExpectStoppedOp'
)
