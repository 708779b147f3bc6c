# configmgr:wmi-free
# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# The gather of the services (KB 256202 steps 2, 3 and 7): the service table with each service's evidence
# (binary, version resource, registry), and the fresh read of named services after an apply. Service Control
# Manager (ServiceController, ansible.windows' SCManager.cs), the registry and file version resources only.
#AnsibleRequires -CSharpUtil ansible_collections.ansible.windows.plugins.module_utils.SCManager

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

Add-Type -AssemblyName System.ServiceProcess

$script:StartModeNames = @{
    'AutoStart' = 'auto'
    'AutoStartDelayed' = 'delayed'
    'DemandStart' = 'manual'
    'Disabled' = 'disabled'
    'BootStart' = 'boot'
    'SystemStart' = 'system'
}

$script:StateNames = @{
    'Running' = 'running'
    'Stopped' = 'stopped'
    'StartPending' = 'start_pending'
    'StopPending' = 'stop_pending'
    'Paused' = 'paused'
    'ContinuePending' = 'continue_pending'
    'PausePending' = 'pause_pending'
}

Function Get-BinaryPath {
    <#
    .SYNOPSIS
    The executable of a service's command line (quoted or not), environment variables expanded.
    #>
    [OutputType([string])]
    param ([AllowEmptyString()][string]$CommandLine)
    if (-not $CommandLine) {
        return ''
    }
    $line = [System.Environment]::ExpandEnvironmentVariables($CommandLine.Trim())
    if ($line.StartsWith('"')) {
        $end = $line.IndexOf('"', 1)
        if ($end -gt 0) {
            return $line.Substring(1, $end - 1)
        }
        return $line.Trim('"')
    }
    $exe = $line.ToLowerInvariant().IndexOf('.exe')
    if ($exe -gt 0) {
        return $line.Substring(0, $exe + 4)
    }
    ($line -split ' ')[0]
}

Function Get-VersionEvidence {
    <#
    .SYNOPSIS
    ProductName / CompanyName of the service's binary, or for a svchost service of its ServiceDll
    (HKLM:\SYSTEM\CurrentControlSet\Services\NAME\Parameters), read from the file's version resource.
    #>
    param (
        [Parameter(Mandatory = $true)][string]$Name,
        [AllowEmptyString()][string]$CommandLine
    )
    $file = Get-BinaryPath -CommandLine $CommandLine
    if ($file -and ([System.IO.Path]::GetFileName($file) -eq 'svchost.exe')) {
        $key = 'HKLM:\SYSTEM\CurrentControlSet\Services\' + $Name + '\Parameters'
        $dll = $null
        if (Test-Path -LiteralPath $key) {
            $dll = (Get-Item -LiteralPath $key).GetValue('ServiceDll', $null)
        }
        if ($dll) {
            $file = [System.Environment]::ExpandEnvironmentVariables([string]$dll)
        }
    }
    $product = ''
    $company = ''
    $read = ''
    if ($file -and (Test-Path -LiteralPath $file -PathType Leaf)) {
        $info = [System.Diagnostics.FileVersionInfo]::GetVersionInfo($file)
        if ($info.ProductName) { $product = $info.ProductName }
        if ($info.CompanyName) { $company = $info.CompanyName }
        $read = $file
    }
    @{ product_name = $product; company_name = $company; binary = $read }
}

Function Get-ServiceFromRegistry {
    <#
    .SYNOPSIS
    A service whose configuration the SCM refuses to give (QueryServiceConfig: ERROR_ACCESS_DENIED, 5, even to
    Administrators for some services, as win_service_info notes). ServiceController.StartType and
    ServicesDependedOn call the same QueryServiceConfig, so the configuration is read from the registry
    (HKLM\SYSTEM\CurrentControlSet\Services\NAME: Start, DelayedAutostart, DependOnService, ImagePath) and the
    state with QueryServiceStatus alone (ServiceController.Status). $null when the status cannot be read
    either: the caller reports the service as unreadable and leaves it out.
    #>
    param (
        [Parameter(Mandatory = $true)][string]$Name,
        [Parameter(Mandatory = $true)][System.ServiceProcess.ServiceController]$Controller
    )
    try {
        $state = $script:StateNames[[string]$Controller.Status]
    }
    catch {
        return $null
    }
    $key = Get-Item -LiteralPath ('HKLM:\SYSTEM\CurrentControlSet\Services\' + $Name)
    # Start: 0 boot, 1 system, 2 automatic (DelayedAutostart 1: delayed), 3 demand, 4 disabled.
    $modes = @{ 0 = 'boot'; 1 = 'system'; 2 = 'auto'; 3 = 'manual'; 4 = 'disabled' }
    $start = [int]$key.GetValue('Start', 3)
    $mode = $modes[$start]
    if ($start -eq 2 -and [int]$key.GetValue('DelayedAutostart', 0) -eq 1) {
        $mode = 'delayed'
    }
    @{
        name = $Name
        display_name = $Controller.DisplayName
        start_mode = $mode
        state = $state
        dependencies = @($key.GetValue('DependOnService', [string[]]@()))
        process_id = 0
        path = [string]$key.GetValue('ImagePath', '')
        config_readable = $false
    }
}

Function Test-ServiceChangeRight {
    <#
    .SYNOPSIS
    True when the service can be opened with the rights to reconfigure and stop it; the handle is closed at
    once. Tamper-protected security agents refuse them (ERROR_ACCESS_DENIED, 5) even to an administrator.
    SCManager.Service reads the configuration and status when it opens, hence the two query rights.
    #>
    [OutputType([bool])]
    param ([Parameter(Mandatory = $true)][string]$Name)
    $rights = [Ansible.Windows.SCManager.ServiceRights]'QueryConfig, QueryStatus, ChangeConfig, Stop'
    try {
        $probe = New-Object -TypeName Ansible.Windows.SCManager.Service -ArgumentList @($Name, $rights)
    }
    catch [Ansible.Windows.SCManager.ServiceManagerException] {
        return $false
    }
    $probe.Dispose()
    $true
}

Function Get-ServiceTable {
    <#
    .SYNOPSIS
    Every Win32 service with start mode (delayed auto-start included), state, dependencies, process id and
    path, from the SCM, and whether the module can change it (can_change, accepts_stop, config_readable).
    With -VersionEvidence also the binary's ProductName / CompanyName and which file they come from. A
    service whose status cannot be read at all is added to Unreadable (name, reason) and left out: one
    unreadable service must not empty the whole table.
    #>
    param (
        [switch]$VersionEvidence,
        [AllowEmptyCollection()][System.Collections.Generic.List[Object]]$Unreadable = (New-Object -TypeName System.Collections.Generic.List[Object])
    )
    $rights = [Ansible.Windows.SCManager.ServiceRights]'QueryConfig, QueryStatus'
    $table = [System.Collections.Generic.List[Object]]@()
    foreach ($controller in [System.ServiceProcess.ServiceController]::GetServices()) {
        $name = $controller.ServiceName
        try {
            $svc = New-Object -TypeName Ansible.Windows.SCManager.Service -ArgumentList @($name, $rights)
        }
        catch [Ansible.Windows.SCManager.ServiceManagerException] {
            $svc = $null
            $why = $_.Exception.Message
        }
        if ($null -eq $svc) {
            $entry = Get-ServiceFromRegistry -Name $name -Controller $controller
            if ($null -eq $entry) {
                $Unreadable.Add(@{ name = $name; reason = $why })
                $controller.Dispose()
                continue
            }
        }
        else {
            try {
                $entry = @{
                    name = $name
                    display_name = $svc.DisplayName
                    start_mode = $script:StartModeNames[[string]$svc.StartType]
                    state = $script:StateNames[[string]$svc.State]
                    dependencies = @($svc.DependentOn)
                    process_id = [int]$svc.ProcessId
                    path = $svc.Path
                    config_readable = $true
                }
            }
            finally {
                $svc.Dispose()
            }
        }
        $entry.can_change = $entry.config_readable -and (Test-ServiceChangeRight -Name $name)
        try {
            # SERVICE_ACCEPT_STOP of a running service (QueryServiceStatus); a stopped one accepts none.
            $entry.accepts_stop = ($entry.state -ne 'running') -or $controller.CanStop
        }
        catch {
            $entry.accepts_stop = $false
        }
        $controller.Dispose()
        if ($VersionEvidence) {
            try {
                $evidence = Get-VersionEvidence -Name $name -CommandLine $entry.path
            }
            catch {
                # An unreadable binary or registry key is no evidence: the service is then classified as
                # third-party unless a list names it.
                $evidence = @{ product_name = ''; company_name = ''; binary = '' }
            }
            $entry.product_name = $evidence.product_name
            $entry.company_name = $evidence.company_name
            $entry.binary = $evidence.binary
        }
        $table.Add($entry)
    }
    , $table.ToArray()
}

Function Get-ServiceState {
    <#
    .SYNOPSIS
    A fresh read of some services' start mode and state from the SCM (the apply phase's verification):
    one entry per name, state 'missing' for a service that no longer exists.
    #>
    param ([Parameter(Mandatory = $true)][AllowEmptyCollection()][string[]]$Names)
    $rights = [Ansible.Windows.SCManager.ServiceRights]'QueryConfig, QueryStatus'
    $found = [System.Collections.Generic.List[Object]]@()
    foreach ($name in $Names) {
        try {
            $svc = New-Object -TypeName Ansible.Windows.SCManager.Service -ArgumentList @($name, $rights)
        }
        catch [Ansible.Windows.SCManager.ServiceManagerException] {
            $found.Add(@{ name = $name; start_mode = ''; state = 'missing' })
            continue
        }
        try {
            $found.Add(@{
                    name = $name
                    start_mode = $script:StartModeNames[[string]$svc.StartType]
                    state = $script:StateNames[[string]$svc.State]
                })
        }
        finally {
            $svc.Dispose()
        }
    }
    , $found.ToArray()
}

Export-ModuleMember -Function @(
    'Get-ServiceTable',
    'Get-ServiceState'
)
