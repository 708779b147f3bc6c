# configmgr:wmi-free
# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# The processes of KB 256202 step 2: a WMI-free snapshot (ProcessSnapshot.cs, Toolhelp32) and the end of a
# process a stopped service left behind, checked by id, name and creation time.
#AnsibleRequires -CSharpUtil ansible_collections.configmgr.sql_upgrade.plugins.module_utils.ProcessSnapshot

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

Function Get-ProcessCreated {
    <#
    .SYNOPSIS
    A process's creation time as a FILETIME (Process.StartTime is GetProcessTimes), 0 when it cannot be read
    (OpenProcess denied, as for the System process, or the process has exited).
    #>
    [OutputType([long])]
    param ([Parameter(Mandatory = $true)][int]$ProcessId)
    try {
        $process = [System.Diagnostics.Process]::GetProcessById($ProcessId)
        try {
            return [long]$process.StartTime.ToFileTimeUtc()
        }
        finally {
            $process.Dispose()
        }
    }
    catch {
        return [long]0
    }
}

Function Get-ProcessImageName {
    <#
    .SYNOPSIS
    The one way a process is named here, for the snapshot and for the check before ending it: the
    Toolhelp32 image name without a trailing '.exe' (what Process.ProcessName gives; GetFileNameWithoutExtension
    would also cut '.com' or a dotted name's last part, so two names made two ways could differ).
    #>
    [OutputType([string])]
    param ([Parameter(Mandatory = $true)][AllowEmptyString()][string]$ExeFile)
    if ($ExeFile.EndsWith('.exe', [System.StringComparison]::OrdinalIgnoreCase)) {
        return $ExeFile.Substring(0, $ExeFile.Length - 4)
    }
    $ExeFile
}

Function Get-ProcessSnapshot {
    <#
    .SYNOPSIS
    Every process: name (image name without .exe), id, parent id (CreateToolhelp32Snapshot, no WMI: the
    parent id is the creator's at creation time and may be stale) and creation time. No filtering here: the
    controller decides which processes are left behind by services that stop, or named.
    #>
    param ()
    $found = [System.Collections.Generic.List[Object]]@()
    foreach ($entry in [ConfigMgr.SqlUpgrade.ProcessSnapshot]::Get()) {
        $found.Add(@{
                name = Get-ProcessImageName -ExeFile $entry.ExeFile
                process_id = [int]$entry.ProcessId
                parent_process_id = [int]$entry.ParentProcessId
                created = Get-ProcessCreated -ProcessId $entry.ProcessId
            })
    }
    , $found.ToArray()
}

Function Stop-LeftProcess {
    <#
    .SYNOPSIS
    End one planned process, only if it is still the one the plan saw (same id, image name and creation
    time): returns 'ended', or 'gone' when it exited by itself or its id now belongs to another process.
    Throws, naming the process, when it cannot be ended or does not exit within TimeoutSeconds.
    #>
    [OutputType([string])]
    param (
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Op,
        [Parameter(Mandatory = $true)][int]$TimeoutSeconds
    )
    $processId = [int]$Op['process_id']
    $name = [string]$Op['name']
    try {
        $process = [System.Diagnostics.Process]::GetProcessById($processId)
    }
    catch [System.ArgumentException] {
        return 'gone'
    }
    try {
        # The same process the plan saw: same id, the same name made the same way (a fresh Toolhelp32 entry),
        # the same creation time. Windows reuses ids.
        $entry = @([ConfigMgr.SqlUpgrade.ProcessSnapshot]::Get() | Where-Object -FilterScript { $_.ProcessId -eq $processId })
        if ($entry.Count -ne 1 -or (Get-ProcessImageName -ExeFile $entry[0].ExeFile) -ne $name -or
            (Get-ProcessCreated -ProcessId $processId) -ne [long]$Op['created']) {
            return 'gone'
        }
        try {
            $process.Kill()
        }
        catch {
            # TerminateProcess on a process that is already exiting answers ERROR_ACCESS_DENIED: it is gone.
            $process.Refresh()
            if ($process.HasExited) {
                return 'gone'
            }
            throw "process $name (id $processId) could not be ended: $($_.Exception.Message)"
        }
        if (-not $process.WaitForExit($TimeoutSeconds * 1000)) {
            throw "process $name (id $processId) did not end within $TimeoutSeconds seconds"
        }
    }
    finally {
        $process.Dispose()
    }
    'ended'
}

Function Invoke-EndProcessOp {
    <#
    .SYNOPSIS
    End a process the plan names (by id, image name and creation time).
    The handler of the operation 'end_process' (Invoke-ServiceOp's contract: -Op -TimeoutSeconds -EndHung; it sets
    $Op['result'] and throws naming what failed).
    #>
    param (
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Op,
        [Parameter(Mandatory = $true)][int]$TimeoutSeconds,
        [switch]$EndHung
    )
    $name = [string]$Op['name']
    $Op['result'] = Stop-LeftProcess -Op $Op -TimeoutSeconds $TimeoutSeconds
}

Export-ModuleMember -Function @(
    'Get-ProcessSnapshot',
    'Invoke-EndProcessOp'
)
