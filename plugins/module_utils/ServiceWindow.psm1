# configmgr:wmi-free
# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Host-side helpers of the service window (KB 256202 steps 2, 3 and 7), shared by win_service_quiesce and
# wmi_disable: gather the service table, read and write the on-host journal, and run an explicit list of
# operations (the vocabulary is plugins/plugin_utils/_window/ops.py; Invoke-ServiceOp has one
# branch per operation). No decisions here: the action plugins plan in Python (plugins/plugin_utils/
# _service_window/). The executor protocol is described in docs/executor-protocol.md. Runs inside the WMI-free window
# (winmgmt stopped and disabled), so only the SCM (System.ServiceProcess.ServiceController and
# ansible.windows' SCManager.cs), the registry provider and System.IO are used; never WMI/CIM.
#
# Requires the caller to load
#   #AnsibleRequires -CSharpUtil ansible_collections.ansible.windows.plugins.module_utils.SCManager
#   #AnsibleRequires -CSharpUtil ansible_collections.configmgr.sql_upgrade.plugins.module_utils.ServiceControl
# and, for Get-ProcessSnapshot / end_process (win_service_quiesce),
#   #AnsibleRequires -CSharpUtil ansible_collections.configmgr.sql_upgrade.plugins.module_utils.ProcessSnapshot

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

Function Get-JournalPath {
    <#
    .SYNOPSIS
    %ProgramData%\configmgr.sql_upgrade\journal.json: one journal per host, shared by both modules. Its
    location and content are the schema plugins/plugin_utils/_window/journal.schema.json
    (x-location); this module only stores and returns the text, the controller validates it.
    #>
    [OutputType([string])]
    param ()
    $dir = Join-Path -Path $env:ProgramData -ChildPath 'configmgr.sql_upgrade'
    Join-Path -Path $dir -ChildPath 'journal.json'
}

Function Read-JournalText {
    <#
    .SYNOPSIS
    The journal file's text, or $null when there is none. It is returned as text: the controller validates
    it (plugins/plugin_utils/_window/journal.py) before anything acts on it.
    #>
    [OutputType([string])]
    param ([Parameter(Mandatory = $true)][string]$Path)
    if (-not (Test-Path -LiteralPath $Path -PathType Leaf)) {
        return $null
    }
    [System.IO.File]::ReadAllText($Path, [System.Text.Encoding]::UTF8)
}

Function Set-JournalFolderAcl {
    <#
    .SYNOPSIS
    Create the journal folder and give it a protected ACL: SYSTEM and Administrators full control, nothing
    inherited. %ProgramData% subfolders inherit write access for BUILTIN\Users by default; a user who could
    edit the journal would steer what SYSTEM restores.
    #>
    param ([Parameter(Mandatory = $true)][string]$Folder)
    if (-not (Test-Path -LiteralPath $Folder -PathType Container)) {
        $null = New-Item -Path $Folder -ItemType Directory -Force
    }
    $system = New-Object -TypeName System.Security.Principal.SecurityIdentifier -ArgumentList 'S-1-5-18'
    $admins = New-Object -TypeName System.Security.Principal.SecurityIdentifier -ArgumentList 'S-1-5-32-544'
    $acl = New-Object -TypeName System.Security.AccessControl.DirectorySecurity
    $acl.SetAccessRuleProtection($true, $false)
    $acl.SetOwner($admins)
    $inherit = [System.Security.AccessControl.InheritanceFlags]'ContainerInherit, ObjectInherit'
    $none = [System.Security.AccessControl.PropagationFlags]::None
    $full = [System.Security.AccessControl.FileSystemRights]::FullControl
    $allow = [System.Security.AccessControl.AccessControlType]::Allow
    foreach ($sid in @($system, $admins)) {
        $rule = New-Object -TypeName System.Security.AccessControl.FileSystemAccessRule -ArgumentList @(
            $sid, $full, $inherit, $none, $allow)
        $acl.AddAccessRule($rule)
    }
    (Get-Item -LiteralPath $Folder -Force).SetAccessControl($acl)
}

# SYSTEM and BUILTIN\Administrators: the only principals that may own or write the journal.
$script:TrustedSids = @('S-1-5-18', 'S-1-5-32-544')

Function Get-JournalTrustProblem {
    <#
    .SYNOPSIS
    '' when the journal folder, file and temp file (those that exist) are owned by SYSTEM or Administrators
    and grant write access to nobody else; otherwise what is wrong, naming the item and the principal. The
    journal steers what is restored (and, with the lease of KB steps 4 and 6, what SYSTEM restores by
    itself): a user who pre-created journal.json or its .tmp keeps write access through File.Replace, which
    keeps the destination's DACL, so such a journal is refused, not repaired.
    #>
    [OutputType([string])]
    param ([Parameter(Mandatory = $true)][string]$Path)
    $write = [System.Security.AccessControl.FileSystemRights]('WriteData, AppendData, WriteExtendedAttributes, ' +
        'WriteAttributes, Delete, DeleteSubdirectoriesAndFiles, ChangePermissions, TakeOwnership')
    $problems = [System.Collections.Generic.List[string]]@()
    foreach ($item in @((Split-Path -Path $Path -Parent), $Path, ($Path + '.tmp'))) {
        if (-not (Test-Path -LiteralPath $item)) {
            continue
        }
        $acl = Get-Acl -LiteralPath $item
        $owner = $acl.GetOwner([System.Security.Principal.SecurityIdentifier]).Value
        if ($script:TrustedSids -notcontains $owner) {
            $problems.Add("$item is owned by $owner, not SYSTEM or Administrators")
        }
        foreach ($rule in $acl.GetAccessRules($true, $true, [System.Security.Principal.SecurityIdentifier])) {
            $sid = $rule.IdentityReference.Value
            if ($rule.AccessControlType -eq 'Allow' -and $script:TrustedSids -notcontains $sid -and
                ($rule.FileSystemRights -band $write) -ne 0) {
                $problems.Add("$item grants $sid write access ($($rule.FileSystemRights))")
            }
        }
    }
    $problems -join '; '
}

Function Set-JournalFileAcl {
    <#
    .SYNOPSIS
    The same protected ACL as the folder's, on the journal file itself (File.Replace keeps the destination's
    DACL, so the file's own ACL is set after every replace).
    #>
    param ([Parameter(Mandatory = $true)][string]$Path)
    $system = New-Object -TypeName System.Security.Principal.SecurityIdentifier -ArgumentList 'S-1-5-18'
    $admins = New-Object -TypeName System.Security.Principal.SecurityIdentifier -ArgumentList 'S-1-5-32-544'
    $acl = New-Object -TypeName System.Security.AccessControl.FileSecurity
    $acl.SetAccessRuleProtection($true, $false)
    $acl.SetOwner($admins)
    foreach ($sid in @($system, $admins)) {
        $rule = New-Object -TypeName System.Security.AccessControl.FileSystemAccessRule -ArgumentList @(
            $sid, [System.Security.AccessControl.FileSystemRights]::FullControl,
            [System.Security.AccessControl.AccessControlType]::Allow)
        $acl.AddAccessRule($rule)
    }
    [System.IO.File]::SetAccessControl($Path, $acl)
}

Function Write-JournalText {
    <#
    .SYNOPSIS
    Write the journal atomically: a temp file in the same folder, flushed to disk, then renamed over the
    old one (File.Replace / File.Move are renames on one NTFS volume), so a crash never leaves half a file.
    The text is written as given: it is data produced and validated by the controller.
    #>
    param (
        [Parameter(Mandatory = $true)][string]$Path,
        [Parameter(Mandatory = $true)][string]$Text
    )
    $folder = Split-Path -Path $Path -Parent
    Set-JournalFolderAcl -Folder $folder
    $temp = $Path + '.tmp'
    # A temp file left over (or planted) keeps its own DACL when reused: delete it, then create it anew
    # (CreateNew), so it inherits the folder's protected ACL.
    if (Test-Path -LiteralPath $temp) {
        [System.IO.File]::Delete($temp)
    }
    $bytes = (New-Object -TypeName System.Text.UTF8Encoding -ArgumentList $false).GetBytes($Text)
    $stream = New-Object -TypeName System.IO.FileStream -ArgumentList @(
        $temp, [System.IO.FileMode]::CreateNew, [System.IO.FileAccess]::Write, [System.IO.FileShare]::None)
    try {
        $stream.Write($bytes, 0, $bytes.Length)
        $stream.Flush($true)
    }
    finally {
        $stream.Dispose()
    }
    if (Test-Path -LiteralPath $Path -PathType Leaf) {
        # PowerShell turns $null for a [string] parameter into '', which File.Replace rejects as a backup path
        # ("The path is not of a legal form"): [NullString]::Value passes a real null (no backup).
        [System.IO.File]::Replace($temp, $Path, [NullString]::Value)
    }
    else {
        [System.IO.File]::Move($temp, $Path)
    }
    Set-JournalFileAcl -Path $Path
}

Function Open-JournalLock {
    <#
    .SYNOPSIS
    journal.json.lock beside the journal, opened exclusively (FileShare.None, deleted on close): one apply at
    a time per host, so the compare-and-swap of the journal cannot interleave with another controller's. A
    second apply waits up to WaitSeconds for it, then throws naming the file. Dispose the stream to release.
    #>
    [OutputType([System.IO.FileStream])]
    param (
        [Parameter(Mandatory = $true)][string]$Path,
        [int]$WaitSeconds = 30
    )
    $folder = Split-Path -Path $Path -Parent
    if (-not (Test-Path -LiteralPath $folder -PathType Container)) {
        # A folder this run creates gets its protected ACL at once; an existing one is never repaired here:
        # the trust check (Get-JournalTrustProblem) runs after the lock and refuses one that others may write.
        Set-JournalFolderAcl -Folder $folder
    }
    $lockPath = $Path + '.lock'
    $deadline = [System.DateTime]::UtcNow.AddSeconds($WaitSeconds)
    while ($true) {
        try {
            # FileShare.None: a second open fails with a sharing violation (an IOException) while this is open.
            return New-Object -TypeName System.IO.FileStream -ArgumentList @(
                $lockPath, [System.IO.FileMode]::OpenOrCreate, [System.IO.FileAccess]::ReadWrite,
                [System.IO.FileShare]::None, 1, [System.IO.FileOptions]::DeleteOnClose)
        }
        catch [System.IO.IOException] {
            if ([System.DateTime]::UtcNow -gt $deadline) {
                throw "another run has held the journal lock $lockPath for more than $WaitSeconds seconds"
            }
            Start-Sleep -Milliseconds 250
        }
    }
}

Function Get-JournalHash {
    <#
    .SYNOPSIS
    SHA-256 (lower-case hex) of the journal text's UTF-8 bytes, '' when there is no journal: what the
    controller sends as _journal_expected, computed the same way from the text it read at gather.
    #>
    [OutputType([string])]
    param ([AllowNull()][Object]$Text)
    if ($null -eq $Text) {
        return ''
    }
    $bytes = (New-Object -TypeName System.Text.UTF8Encoding -ArgumentList $false).GetBytes([string]$Text)
    $sha = [System.Security.Cryptography.SHA256]::Create()
    try {
        return (($sha.ComputeHash($bytes) | ForEach-Object -Process { $_.ToString('x2') }) -join '')
    }
    finally {
        $sha.Dispose()
    }
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

Function Get-HostTime {
    [OutputType([string])]
    param ()
    # Invariant culture: ':' in a custom format is the culture's time separator otherwise.
    [System.DateTime]::UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", [System.Globalization.CultureInfo]::InvariantCulture)
}

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
        [Parameter(Mandatory = $true)][int]$TimeoutSeconds
    )
    $status = [System.ServiceProcess.ServiceControllerStatus]
    $controller = New-Object -TypeName System.ServiceProcess.ServiceController -ArgumentList $Name
    try {
        $deadline = [System.DateTime]::UtcNow.AddSeconds($TimeoutSeconds)
        $sent = $false
        while ($true) {
            $now = Get-FreshStatus -Controller $controller
            if ($now -eq $status::Stopped) {
                if ($sent) { return 'stopped' }
                return 'already_stopped'
            }
            if ([System.DateTime]::UtcNow -gt $deadline) {
                throw "service $Name did not stop within $TimeoutSeconds seconds (state: $now)"
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

Function Invoke-ServiceOp {
    <#
    .SYNOPSIS
    Run one planned operation: set_mode, stop, start or end_process. Waits up to TimeoutSeconds for a stop
    or start to finish; a service that does not stop in time throws, naming it.
    #>
    param (
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Op,
        [Parameter(Mandatory = $true)][int]$TimeoutSeconds,
        # win_service_quiesce's end_hung_services: a stop that times out in StopPending ends the service's process.
        [switch]$EndHung
    )
    $kind = [string]$Op['op']
    $name = [string]$Op['name']
    $wait = [System.TimeSpan]::FromSeconds($TimeoutSeconds)
    if ($kind -eq 'set_mode') {
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
    elseif ($kind -eq 'stop') {
        try {
            $Op['result'] = Stop-PlannedService -Name $name -TimeoutSeconds $TimeoutSeconds
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
    elseif ($kind -eq 'start') {
        $Op['result'] = Start-PlannedService -Name $name -TimeoutSeconds $TimeoutSeconds
    }
    elseif ($kind -eq 'expect_stopped') {
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
    elseif ($kind -eq 'end_process') {
        $Op['result'] = Stop-LeftProcess -Op $Op -TimeoutSeconds $TimeoutSeconds
    }
    elseif ($kind -eq 'set_profile') {
        $Op['result'] = Set-FirewallProfileState -ProfileName $name -Enabled ([bool]$Op['enabled'])
    }
    elseif ($kind -eq 'add_rule') {
        $Op['result'] = Add-IsolationRule -Op $Op
    }
    elseif ($kind -eq 'remove_rule') {
        $Op['result'] = Remove-IsolationRule -Name $name
    }
    elseif ($kind -eq 'register_watchdog') {
        $Op['result'] = Register-Watchdog -Name $name -Minutes ([int]$Op['minutes']) -JournalPath (Get-JournalPath)
    }
    elseif ($kind -eq 'remove_watchdog') {
        $Op['result'] = Unregister-Watchdog -Name $name
        $script = Get-WatchdogScriptPath -JournalPath (Get-JournalPath)
        if (Test-Path -LiteralPath $script) {
            [System.IO.File]::Delete($script)
        }
    }
    else {
        throw "unknown operation '$kind' for service $name"
    }
}

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
    foreach ($op in $Module.Params._plan) {
        try {
            Invoke-ServiceOp -Op $op -TimeoutSeconds $Module.Params.timeout -EndHung:$endHung
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
        $total = @($Module.Params._plan).Count
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
    $names = @($Module.Params._plan | Where-Object -FilterScript { $serviceOps -contains $_.op } |
            ForEach-Object -Process { [string]$_.name } | Select-Object -Unique)
    $Module.Result.after = Get-ServiceState -Names $names
    if (@($Module.Params._plan | Where-Object -FilterScript { @('set_profile', 'add_rule', 'remove_rule') -contains $_.op }).Count -gt 0) {
        $Module.Result.firewall_after = Get-FirewallState
    }
}


# --- KB steps 4 and 6: the firewall, the watchdog and its lease (net_isolate) ------------------------------
# Windows Firewall through its COM API (HNetCfg.FwPolicy2, HNetCfg.FWRule; netfw.h) and netsh advfirewall,
# never the NetSecurity cmdlets (CIM). Constants: NET_FW_PROFILE2_DOMAIN 1, _PRIVATE 2, _PUBLIC 4, _ALL
# 0x7FFFFFFF; NET_FW_RULE_DIR_IN 1, _OUT 2; NET_FW_ACTION_BLOCK 0; NET_FW_IP_PROTOCOL_TCP 6, _UDP 17, _ANY 256.

$script:FirewallProfiles = [ordered]@{ domain = 1; private = 2; public = 4 }
$script:IsolationGroup = 'configmgr.sql_upgrade'

Function Invoke-NativeCommand {
    <#
    .SYNOPSIS
    Run a console program (netsh, schtasks, nltest) with its arguments as an array (each passed as one argument,
    never parsed as script) and return @{ rc; output } with stdout and stderr as text. Windows PowerShell 5.1
    turns each stderr line of a native command into an error record, which $ErrorActionPreference = 'Stop'
    would make terminating: this function's own scope runs with 'Continue' and the caller checks rc.
    #>
    param (
        [Parameter(Mandatory = $true)][string]$FilePath,
        [Parameter(Mandatory = $true)][AllowEmptyCollection()][string[]]$ArgumentList
    )
    $ErrorActionPreference = 'Continue'
    $output = @(& $FilePath @ArgumentList 2>&1 | ForEach-Object -Process { [string]$_ })
    return @{ rc = $LASTEXITCODE; output = $output }
}

Function Get-FirewallPolicyValue {
    <#
    .SYNOPSIS
    A Group Policy value of one firewall profile (HKLM:\SOFTWARE\Policies\Microsoft\WindowsFirewall\
    <Domain|Private|Public>Profile), $null when the policy does not set it.
    #>
    param (
        [Parameter(Mandatory = $true)][string]$ProfileName,
        [Parameter(Mandatory = $true)][string]$Value
    )
    $key = 'HKLM:\SOFTWARE\Policies\Microsoft\WindowsFirewall\{0}{1}Profile' -f $ProfileName.Substring(0, 1).ToUpper(),
    $ProfileName.Substring(1)
    $item = Get-ItemProperty -LiteralPath $key -Name $Value -ErrorAction SilentlyContinue
    if ($null -eq $item) {
        return $null
    }
    return [int]$item.$Value
}

Function ConvertTo-RuleFact {
    <#
    .SYNOPSIS
    One INetFwRule as the controller compares it (ops.py add_rule's fields, plus action, profiles, enabled).
    #>
    param ([Parameter(Mandatory = $true)][Object]$Rule)
    $protocols = @{ 6 = 'tcp'; 17 = 'udp'; 256 = 'any' }
    $protocol = 'other'
    if ($protocols.ContainsKey([int]$Rule.Protocol)) {
        $protocol = $protocols[[int]$Rule.Protocol]
    }
    $ports = @()
    if ($Rule.RemotePorts -and $Rule.RemotePorts -ne '*') {
        $ports = @(([string]$Rule.RemotePorts).Split(','))
    }
    $addresses = @()
    if ($Rule.RemoteAddresses -and $Rule.RemoteAddresses -ne '*') {
        $addresses = @(([string]$Rule.RemoteAddresses).Split(','))
    }
    $profiles = 'some'
    if (([int]$Rule.Profiles -band 7) -eq 7) {
        $profiles = 'all'
    }
    return @{
        name = [string]$Rule.Name
        direction = @{ 1 = 'in'; 2 = 'out' }[[int]$Rule.Direction]
        action = @{ 0 = 'block'; 1 = 'allow' }[[int]$Rule.Action]
        protocol = $protocol
        remote_addresses = $addresses
        remote_ports = $ports
        profiles = $profiles
        enabled = [bool]$Rule.Enabled
    }
}

Function Get-FirewallState {
    <#
    .SYNOPSIS
    Each profile's on/off state and what Group Policy enforces on it, and this collection's isolation rules
    (by group or name) as they are now: what net_isolate plans from and verifies against.
    #>
    $policy = New-Object -ComObject HNetCfg.FwPolicy2
    $current = [int]$policy.CurrentProfileTypes
    # LocalPolicyModifyState answers for the current profiles (NET_FW_MODIFY_STATE_OK 0, _GP_OVERRIDE 1,
    # _INBOUND_BLOCKED 2).
    $modifyState = [int]$policy.LocalPolicyModifyState
    $profiles = @{}
    foreach ($name in $script:FirewallProfiles.Keys) {
        $bit = $script:FirewallProfiles[$name]
        $enabledByPolicy = Get-FirewallPolicyValue -ProfileName $name -Value 'EnableFirewall'
        $merge = Get-FirewallPolicyValue -ProfileName $name -Value 'AllowLocalPolicyMerge'
        $shields = Get-FirewallPolicyValue -ProfileName $name -Value 'DoNotAllowExceptions'
        $state = $null
        if ($current -band $bit) {
            $state = $modifyState
        }
        $profiles[$name] = @{
            enabled = [bool]$policy.FirewallEnabled($bit)
            current = [bool]($current -band $bit)
            modify_state = $state
            policy_enabled = if ($null -eq $enabledByPolicy) { $null } else { [bool]$enabledByPolicy }
            local_rules_merged = if ($null -eq $merge) { $null } else { [bool]$merge }
            shields_up = ($shields -eq 1)
        }
    }
    $rules = @{}
    foreach ($rule in $policy.Rules) {
        $ruleName = [string]$rule.Name
        if ($rule.Grouping -eq $script:IsolationGroup -or $ruleName.StartsWith('configmgr.sql_upgrade isolation (')) {
            $rules[$ruleName] = ConvertTo-RuleFact -Rule $rule
        }
    }
    return @{ profiles = $profiles; rules = $rules }
}

Function Set-FirewallProfileState {
    <#
    .SYNOPSIS
    Turn one profile's firewall on or off with netsh advfirewall (documented, no CIM); throws netsh's output
    when it fails. Result: 'changed', or 'unchanged' when the profile already was so.
    #>
    param (
        [Parameter(Mandatory = $true)][string]$ProfileName,
        [Parameter(Mandatory = $true)][bool]$Enabled
    )
    $policy = New-Object -ComObject HNetCfg.FwPolicy2
    if ([bool]$policy.FirewallEnabled($script:FirewallProfiles[$ProfileName]) -eq $Enabled) {
        return 'unchanged'
    }
    $state = if ($Enabled) { 'on' } else { 'off' }
    $run = Invoke-NativeCommand -FilePath 'netsh.exe' -ArgumentList @('advfirewall', 'set', "$($ProfileName)profile", 'state', $state)
    if ($run.rc -ne 0) {
        throw "netsh advfirewall set $($ProfileName)profile state $state failed ($($run.rc)): $($run.output -join ' ')"
    }
    return 'changed'
}

Function Remove-IsolationRule {
    <#
    .SYNOPSIS
    Remove every rule of that name (INetFwRules.Remove removes one per call). Only this collection's
    isolation rules: any other name is refused. Result: 'changed', or 'unchanged' when there was none.
    #>
    param ([Parameter(Mandatory = $true)][string]$Name)
    if (-not $Name.StartsWith('configmgr.sql_upgrade isolation (')) {
        throw "rule '$Name' is not an isolation rule of configmgr.sql_upgrade; it is left alone"
    }
    $policy = New-Object -ComObject HNetCfg.FwPolicy2
    $removed = 0
    for ($i = 0; $i -lt 16; $i++) {
        $present = @($policy.Rules | Where-Object -FilterScript { $_.Name -eq $Name })
        if ($present.Count -eq 0) {
            break
        }
        $policy.Rules.Remove($Name)
        $removed++
    }
    if ($removed -gt 0) {
        return 'changed'
    }
    return 'unchanged'
}

Function Add-IsolationRule {
    <#
    .SYNOPSIS
    Add one block rule of the isolation on every profile, enabled, in this collection's group. The
    addresses and ports are data from the plan, set as properties (never parsed as script).
    #>
    param ([Parameter(Mandatory = $true)][System.Collections.IDictionary]$Op)
    $rule = New-Object -ComObject HNetCfg.FWRule
    $rule.Name = [string]$Op['name']
    $rule.Grouping = $script:IsolationGroup
    $rule.Description = 'KB 256202 network isolation by configmgr.sql_upgrade net_isolate; removed by state=restored or its watchdog'
    $rule.Direction = @{ 'in' = 1; 'out' = 2 }[[string]$Op['direction']]
    $rule.Action = 0
    # Protocol before ports: INetFwRule refuses ports on a rule whose protocol is any.
    $rule.Protocol = @{ any = 256; tcp = 6; udp = 17 }[[string]$Op['protocol']]
    $ports = @($Op['remote_ports'])
    if ($ports.Count -gt 0) {
        $rule.RemotePorts = ($ports -join ',')
    }
    $rule.RemoteAddresses = (@($Op['remote_addresses']) -join ',')
    $rule.Profiles = 0x7FFFFFFF
    $rule.Enabled = $true
    $policy = New-Object -ComObject HNetCfg.FwPolicy2
    $policy.Rules.Add($rule)
    return 'changed'
}

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
            # StartBoundary without a zone is the host's local time, as Get-Date is.
            $expired = ([datetime]$fires -lt (Get-Date))
        }
    }
    return @{ task = $Name; fires = $fires; expired = $expired }
}

Function Register-Watchdog {
    <#
    .SYNOPSIS
    Register (or replace) the watchdog: a task run as SYSTEM that runs watchdog.ps1 (written beside the
    journal, in its protected folder, from Invoke-ServiceWindowWatchdog's own text) at now + Minutes and at
    every boot. Task XML through schtasks.exe /Create /XML (the ScheduledTasks cmdlets are CIM).
    #>
    param (
        [Parameter(Mandatory = $true)][string]$Name,
        [Parameter(Mandatory = $true)][int]$Minutes,
        [Parameter(Mandatory = $true)][string]$JournalPath
    )
    $script = Get-WatchdogScriptPath -JournalPath $JournalPath
    $body = "Set-StrictMode -Version 2.0`r`n`$ErrorActionPreference = 'Stop'`r`n" +
    "Function Invoke-ServiceWindowWatchdog {`r`n" + ${function:Invoke-ServiceWindowWatchdog}.ToString() + "`r`n}`r`n" +
    "Invoke-ServiceWindowWatchdog -Trigger `$args[0]`r`n"
    Write-JournalText -Path $script -Text $body
    $fires = (Get-Date).AddMinutes($Minutes).ToString('yyyy-MM-ddTHH:mm:ss')
    $command = [System.Security.SecurityElement]::Escape("$env:SystemRoot\System32\WindowsPowerShell\v1.0\powershell.exe")
    $arguments = [System.Security.SecurityElement]::Escape("-NoProfile -NonInteractive -ExecutionPolicy Bypass -File `"$script`"")
    $xml = @"
<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo><Description>configmgr.sql_upgrade: puts the KB 256202 window back when its lease ends or the server boots</Description></RegistrationInfo>
  <Triggers>
    <TimeTrigger><StartBoundary>$fires</StartBoundary><Enabled>true</Enabled></TimeTrigger>
    <BootTrigger><Enabled>true</Enabled></BootTrigger>
  </Triggers>
  <Principals><Principal id="System"><UserId>S-1-5-18</UserId><RunLevel>HighestAvailable</RunLevel></Principal></Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <StartWhenAvailable>true</StartWhenAvailable>
    <ExecutionTimeLimit>PT72H</ExecutionTimeLimit>
    <Priority>4</Priority>
  </Settings>
  <Actions Context="System"><Exec><Command>$command</Command><Arguments>$arguments lease</Arguments></Exec></Actions>
</Task>
"@
    $xmlPath = Join-Path -Path (Split-Path -Path $JournalPath -Parent) -ChildPath 'watchdog.xml'
    [System.IO.File]::WriteAllText($xmlPath, $xml, [System.Text.Encoding]::Unicode)
    try {
        $run = Invoke-NativeCommand -FilePath 'schtasks.exe' -ArgumentList @('/Create', '/TN', $Name, '/XML', $xmlPath, '/F')
        if ($run.rc -ne 0) {
            throw "schtasks.exe /Create /TN $Name failed ($($run.rc)): $($run.output -join ' ')"
        }
    }
    finally {
        [System.IO.File]::Delete($xmlPath)
    }
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

Function Get-ConnectedPeer {
    <#
    .SYNOPSIS
    The remote addresses of the established TCP connections to a local port (TcpConnections.cs), unique.
    #>
    param ([Parameter(Mandatory = $true)][int]$Port)
    $peers = [ConfigMgr.SqlUpgrade.TcpConnections]::Established($Port)
    return @($peers | ForEach-Object -Process { $_.RemoteAddress } | Select-Object -Unique)
}

Function Get-DomainFact {
    <#
    .SYNOPSIS
    Whether the connection's account is a domain account, the server's domain, and the addresses of the
    domain controllers it uses: the locator's choice (nltest /dsgetdc) and the secure channel's
    (nltest /sc_query, resolved by DNS). No WMI.
    #>
    $identity = [System.Security.Principal.WindowsIdentity]::GetCurrent()
    $accountDomain = ($identity.Name -split '\\')[0]
    $domain = [System.Net.NetworkInformation.IPGlobalProperties]::GetIPGlobalProperties().DomainName
    $result = @{
        account = $identity.Name
        account_is_domain = ($accountDomain -ne $env:COMPUTERNAME -and $accountDomain -ne 'NT AUTHORITY' -and $domain)
        authentication = [string]$identity.AuthenticationType
        domain = $domain
        controllers = @()
    }
    if (-not $domain) {
        return $result
    }
    $addresses = [System.Collections.Generic.List[string]]@()
    $located = Invoke-NativeCommand -FilePath 'nltest.exe' -ArgumentList @("/dsgetdc:$domain")
    if ($located.rc -eq 0) {
        foreach ($line in $located.output) {
            if ($line -match '^\s*Address:\s*\\\\(\S+)\s*$') {
                $addresses.Add($Matches[1])
            }
        }
    }
    $channel = Invoke-NativeCommand -FilePath 'nltest.exe' -ArgumentList @("/sc_query:$domain")
    if ($channel.rc -eq 0) {
        foreach ($line in $channel.output) {
            if ($line -match '^\s*Trusted DC Name\s+\\\\(\S+)\s*$') {
                foreach ($ip in [System.Net.Dns]::GetHostAddresses($Matches[1])) {
                    $addresses.Add($ip.ToString())
                }
            }
        }
    }
    $result.controllers = @($addresses | Select-Object -Unique)
    return $result
}


Function Invoke-ServiceWindowWatchdog {
    <#
    .SYNOPSIS
    The on-host watchdog (run as SYSTEM by the task Register-Watchdog creates, from a copy of this function's
    own text in watchdog.ps1): when the lease has ended or the server has booted, put the window back from the
    journal without any controller - network first (this collection's rules removed by name, each profile's
    recorded on/off state), then WMI (recorded start mode; started when it ran), then the services (recorded
    start modes; started when they ran). Never while SQL Server setup is recorded as running and its process
    exists: it waits for setup to end first. It writes what it did into the journal (watchdog section, every
    status restored, which also releases the run lock), then removes its task and its script.
    Self-contained (the script holds only this function) and WMI-free: the journal is read as data
    (ConvertFrom-Json), never run; services through sc.exe and ServiceController, the firewall through COM and
    netsh. The twin emulates exactly this contract (tests/twin/emulation/configmgr.py, run_watchdog).
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
            if ($setupPid -gt 0 -and $null -eq (Get-Process -Id $setupPid -ErrorAction SilentlyContinue)) {
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

    if ((& $has 'network') -and $doc.network.status -eq 'isolated') {
        $policy = New-Object -ComObject HNetCfg.FwPolicy2
        foreach ($name in @($doc.network.rules)) {
            if (-not ([string]$name).StartsWith('configmgr.sql_upgrade isolation (')) {
                continue
            }
            for ($i = 0; $i -lt 16; $i++) {
                if (@($policy.Rules | Where-Object -FilterScript { $_.Name -eq $name }).Count -eq 0) {
                    break
                }
                $policy.Rules.Remove([string]$name)
            }
        }
        $bits = @{ domain = 1; private = 2; public = 4 }
        foreach ($profileName in @('domain', 'private', 'public')) {
            $want = [bool]$doc.network.profiles.$profileName
            if ([bool]$policy.FirewallEnabled($bits[$profileName]) -ne $want) {
                $state = if ($want) { 'on' } else { 'off' }
                & netsh.exe advfirewall set "$($profileName)profile" state $state | Out-Null
                if ($LASTEXITCODE -ne 0) {
                    $log.Add("netsh could not turn the $profileName profile $state ($LASTEXITCODE)")
                }
            }
        }
        $doc.network.status = 'restored'
        $log.Add('network back (isolation rules removed, profiles as recorded)')
    }

    $modes = @{ auto = 'auto'; delayed = 'delayed-auto'; manual = 'demand'; disabled = 'disabled' }
    $restoreService = {
        param($name, $mode, $state)
        if ($modes.ContainsKey([string]$mode)) {
            & sc.exe config "$name" start= $modes[[string]$mode] | Out-Null
        }
        if ($state -eq 'running') {
            try {
                Start-Service -Name $name -ErrorAction Stop
            }
            catch {
                $log.Add("could not start ${name}: $($_.Exception.Message)")
            }
        }
    }
    if ((& $has 'wmi') -and @('disabled', 'setup') -contains $doc.wmi.status) {
        & $restoreService 'Winmgmt' $doc.wmi.start_mode $doc.wmi.state
        $doc.wmi.status = 'enabled'
        $log.Add('WMI back as recorded')
    }
    if ((& $has 'services') -and $doc.services.status -eq 'quiesced') {
        foreach ($record in $doc.services.records.PSObject.Properties) {
            & $restoreService $record.Name $record.Value.start_mode 'stopped'
        }
        foreach ($record in $doc.services.records.PSObject.Properties) {
            if ($record.Value.state -eq 'running') {
                & $restoreService $record.Name $record.Value.start_mode 'running'
            }
        }
        $doc.services.status = 'restored'
        $log.Add('services back as recorded')
    }
    if ((& $has 'wmi') -and $doc.wmi.state -eq 'running') {
        # Starting Winmgmt does not start its dependents: start the ones that ran before WMI stopped, now that
        # every start mode is back (a dependent the quiesce disabled had to wait for the services).
        foreach ($name in @($doc.wmi.dependents)) {
            $svc = Get-Service -Name $name -ErrorAction SilentlyContinue
            if ($null -ne $svc -and $svc.Status -eq 'Stopped') {
                & $restoreService $name '' 'running'
            }
        }
    }

    $now = (Get-Date).ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ')
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

$exported = @(
    'Get-JournalPath', 'Read-JournalText', 'Write-JournalText', 'Get-JournalTrustProblem', 'Get-ServiceTable',
    'Get-ServiceState', 'Get-HostTime',
    'Invoke-ServiceOp', 'Invoke-JournaledPlan', 'Get-ProcessSnapshot',
    'Get-FirewallState', 'Get-WatchdogTask', 'Update-ServiceWindowLease', 'Register-Watchdog', 'Get-ConnectedPeer',
    'Get-DomainFact', 'Invoke-ServiceWindowWatchdog', 'Invoke-NativeCommand'
)
Export-ModuleMember -Function $exported
