#!powershell
# configmgr:wmi-free

# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

#AnsibleRequires -CSharpUtil Ansible.Basic
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._Journal
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._ServiceTable
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._Watchdog
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._NativeCommand

# Thin executor of sql_setup (KB 256202 step 5). The action plugin (plugins/action/sql_setup.py) decides; this
# script reads and starts:
#   _phase=gather  the instance (registry, Service Control Manager), the media (setup.exe's version resource,
#                  DefaultSetup.ini), the setup task and its runner's state file, Summary.txt, the journal; renews
#                  the lease of an isolation.
#   _phase=start   under the journal lock, on the journal this task read: writes the journal (setup running),
#                  hands the command line to the runner (a file only SYSTEM and Administrators can read, deleted by
#                  the runner before setup starts), registers and runs the setup task as SYSTEM, waits for the
#                  runner to report setup's process id.
#   _phase=poll    the task and the runner's state, setup's progress from its own log folder (and Summary.txt once
#                  setup has ended); records setup's process id in the journal when the controller sends it; renews
#                  the lease.
#   _phase=finish  records that setup has ended, removes the task and the runner's files, reads the instance.
# Setup runs as a local process of its own, detached from this WinRM session: it survives a dropped connection,
# and it avoids setup's failures inside a network logon. WMI-free: it runs inside the window.

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

$spec = @{
    options = @{
        media_path = @{ type = 'str'; required = $true }
        instance = @{ type = 'str'; default = 'MSSQLSERVER' }
        product_key = @{ type = 'str'; no_log = $true }
        evaluation = @{ type = 'bool'; default = $false }
        target_version = @{ type = 'str' }
        extra_args = @{ type = 'dict'; default = @{} }
        wmi_during_setup = @{ type = 'str'; default = 'auto'; choices = @('auto', 'running', 'stopped') }
        state = @{ type = 'str'; default = 'upgraded'; choices = @('upgraded', 'verified') }
        wait_timeout = @{ type = 'int'; default = 14400 }
        poll_interval = @{ type = 'int'; default = 30 }
        stall_warning = @{ type = 'int'; default = 1800 }
        login_user = @{ type = 'str' }
        login_password = @{ type = 'str'; no_log = $true }
        run_id = @{ type = 'str' }
        takeover = @{ type = 'str' }
        _phase = @{ type = 'str'; default = 'gather'; choices = @('gather', 'start', 'poll', 'finish') }
        _arguments = @{ type = 'str'; no_log = $true }
        _journal_before = @{ type = 'str' }
        _journal_after = @{ type = 'str' }
        _journal_expected = @{ type = 'str'; default = '' }
    }
    supports_check_mode = $true
}

$module = [Ansible.Basic.AnsibleModule]::Create($args, $spec)
$journalPath = Get-JournalPath
$folder = Split-Path -Path $journalPath -Parent
$taskName = '\configmgr.sql_upgrade\sql_setup'
$runFile = Join-Path -Path $folder -ChildPath 'setup_run.json'
$stateFile = Join-Path -Path $folder -ChildPath 'setup_state.json'
$runnerFile = Join-Path -Path $folder -ChildPath 'setup_runner.ps1'
$setupExe = Join-Path -Path $module.Params.media_path -ChildPath 'setup.exe'
$module.Result.journal_path = $journalPath

Function Invoke-SetupRunner {
    <#
    .SYNOPSIS
    The runner the setup task runs as SYSTEM (written to setup_runner.ps1 from this function's own text): reads
    setup_run.json, deletes it (the product key leaves the disk before setup starts), starts setup.exe with the
    command line as given, and keeps setup_state.json (process_id, started, exit_code, ended, error) up to date,
    each write a temp file renamed over the old one. Self-contained and WMI-free.
    #>
    $ErrorActionPreference = 'Stop'
    $here = Join-Path -Path $env:ProgramData -ChildPath 'configmgr.sql_upgrade'
    $runPath = Join-Path -Path $here -ChildPath 'setup_run.json'
    $statePath = Join-Path -Path $here -ChildPath 'setup_state.json'
    $save = {
        param ($State)
        $temp = $statePath + '.tmp'
        [System.IO.File]::WriteAllText($temp, (ConvertTo-Json -InputObject $State -Compress))
        if (Test-Path -LiteralPath $statePath) {
            [System.IO.File]::Replace($temp, $statePath, [NullString]::Value)
        }
        else {
            [System.IO.File]::Move($temp, $statePath)
        }
    }
    # Invariant culture: ':' in a custom format is the culture's time separator otherwise.
    $invariant = [System.Globalization.CultureInfo]::InvariantCulture
    $stamp = "yyyy-MM-dd'T'HH:mm:ss'Z'"
    $state = [ordered]@{ process_id = 0; started = $null; exit_code = $null; ended = $null; error = $null }
    try {
        $run = ConvertFrom-Json -InputObject ([System.IO.File]::ReadAllText($runPath))
        [System.IO.File]::Delete($runPath)
        $info = New-Object -TypeName System.Diagnostics.ProcessStartInfo
        $info.FileName = [string]$run.setup
        $info.Arguments = [string]$run.arguments
        $info.WorkingDirectory = Split-Path -Path ([string]$run.setup) -Parent
        $info.UseShellExecute = $false
        $process = [System.Diagnostics.Process]::Start($info)
    }
    catch {
        $state.error = $_.Exception.Message
        $state.ended = [DateTime]::UtcNow.ToString($stamp, $invariant)
        & $save $state
        return
    }
    $state.process_id = $process.Id
    $state.started = [DateTime]::UtcNow.ToString($stamp, $invariant)
    & $save $state
    $process.WaitForExit()
    $state.exit_code = $process.ExitCode
    $state.ended = [DateTime]::UtcNow.ToString($stamp, $invariant)
    & $save $state
}

Function Get-SetupState {
    <#
    .SYNOPSIS
    The setup task, the runner's state and whether setup's process still exists (Result keys task, run_state,
    process_alive).
    #>
    $module.Result.task = $null
    $query = Invoke-NativeCommand -FilePath 'schtasks.exe' -ArgumentList @('/Query', '/TN', $taskName, '/FO', 'CSV', '/NH')
    if ($query.rc -eq 0) {
        # "TaskName","Next Run Time","Status"
        $fields = @(($query.output | Where-Object -FilterScript { $_ -like '"*' } | Select-Object -First 1) -split '","')
        $status = if ($fields.Count -ge 3) { $fields[2].Trim('"') } else { '' }
        $module.Result.task = @{ task = $taskName; status = $status }
    }
    $module.Result.run_state = $null
    $module.Result.process_alive = $false
    if (Test-Path -LiteralPath $stateFile -PathType Leaf) {
        $read = ConvertFrom-Json -InputObject ([System.IO.File]::ReadAllText($stateFile))
        $module.Result.run_state = @{
            process_id = [int]$read.process_id; started = $read.started; exit_code = $read.exit_code
            ended = $read.ended; error = $read.error
        }
        if ([int]$read.process_id -gt 0 -and $null -eq $read.exit_code) {
            $module.Result.process_alive = $null -ne (Get-Process -Id ([int]$read.process_id) -ErrorAction SilentlyContinue)
        }
    }
}

Function Get-InstanceFact {
    <#
    .SYNOPSIS
    The instance as setup registered it (no WMI, no connection): its id, version and edition from the registry,
    its services' states from the Service Control Manager.
    #>
    $root = 'HKLM:\SOFTWARE\Microsoft\Microsoft SQL Server'
    $names = Join-Path -Path $root -ChildPath 'Instance Names\SQL'
    $module.Result.instances = @()
    $module.Result.instance_id = $null
    $module.Result.version = $null
    $module.Result.edition = $null
    if (Test-Path -LiteralPath $names) {
        $key = Get-Item -LiteralPath $names
        $module.Result.instances = @($key.GetValueNames())
        if ($module.Result.instances -contains $module.Params.instance) {
            $id = [string]$key.GetValue($module.Params.instance)
            $module.Result.instance_id = $id
            $current = Join-Path -Path $root -ChildPath "$id\MSSQLServer\CurrentVersion"
            if (Test-Path -LiteralPath $current) {
                $module.Result.version = [string](Get-Item -LiteralPath $current).GetValue('CurrentVersion')
            }
            $setupKey = Join-Path -Path $root -ChildPath "$id\Setup"
            if (Test-Path -LiteralPath $setupKey) {
                $module.Result.edition = [string](Get-Item -LiteralPath $setupKey).GetValue('Edition')
            }
        }
    }
    $instance = $module.Params.instance
    $engine = if ($instance -eq 'MSSQLSERVER') { 'MSSQLSERVER' } else { 'MSSQL$' + $instance }
    $agent = if ($instance -eq 'MSSQLSERVER') { 'SQLSERVERAGENT' } else { 'SQLAgent$' + $instance }
    $services = @{}
    foreach ($row in @(Get-ServiceState -Names @($engine, $agent))) {
        if ($row.state -ne 'missing') {
            $services[$row.name] = $row.state
        }
    }
    $module.Result.services = $services
    $module.Result.winmgmt = (Get-ServiceState -Names @('Winmgmt'))[0].state
}

Function Get-MediaVersion {
    <#
    .SYNOPSIS
    The ProductVersion of the media's setup.exe (its version resource; the file is never run), or $null.
    #>
    if (-not (Test-Path -LiteralPath $setupExe -PathType Leaf)) {
        return $null
    }
    return [System.Diagnostics.FileVersionInfo]::GetVersionInfo($setupExe).ProductVersion
}

Function Get-SetupLogRoot {
    <#
    .SYNOPSIS
    Setup's log folder for a version: %ProgramFiles%\Microsoft SQL Server\<nnn>\Setup Bootstrap\Log, <nnn> = major
    version x 10 (Microsoft Learn, "View and read SQL Server Setup log files").
    #>
    [OutputType([string])]
    param ([Parameter(Mandatory = $true)][string]$Version)
    $nnn = [string]([int]($Version.Split('.')[0]) * 10)
    return Join-Path -Path $env:ProgramFiles -ChildPath "Microsoft SQL Server\$nnn\Setup Bootstrap\Log"
}

Function Get-SummaryText {
    <#
    .SYNOPSIS
    Summary.txt of the latest setup run of the media's version (in Get-SetupLogRoot), or $null.
    #>
    param ([string]$Version)
    if (-not $Version) {
        return $null
    }
    $path = Join-Path -Path (Get-SetupLogRoot -Version $Version) -ChildPath 'Summary.txt'
    if (-not (Test-Path -LiteralPath $path -PathType Leaf)) {
        return $null
    }
    return [System.IO.File]::ReadAllText($path)
}

Function Read-LogTail {
    <#
    .SYNOPSIS
    The last Bytes bytes of a log file that setup still has open for writing (FileShare ReadWrite and Delete, or
    the open fails with a sharing violation), as text from the first whole line: @{ length; text }. UTF-16 when
    the file starts with its byte order mark FF FE, UTF-8 otherwise.
    #>
    param (
        [Parameter(Mandatory = $true)][string]$Path,
        [int]$Bytes = 4096
    )
    $share = [System.IO.FileShare]::ReadWrite -bor [System.IO.FileShare]::Delete
    $stream = New-Object -TypeName System.IO.FileStream -ArgumentList @($Path, [System.IO.FileMode]::Open,
        [System.IO.FileAccess]::Read, $share)
    try {
        $length = $stream.Length
        $head = New-Object -TypeName 'byte[]' -ArgumentList 2
        $headRead = $stream.Read($head, 0, 2)
        $encoding = New-Object -TypeName System.Text.UTF8Encoding -ArgumentList $false
        $start = [System.Math]::Max([long]0, $length - $Bytes)
        if ($headRead -eq 2 -and $head[0] -eq 0xFF -and $head[1] -eq 0xFE) {
            $encoding = [System.Text.Encoding]::Unicode
            if ($start % 2 -ne 0) {
                $start += 1  # UTF-16 code units start at even offsets
            }
        }
        $null = $stream.Seek($start, [System.IO.SeekOrigin]::Begin)
        $buffer = New-Object -TypeName 'byte[]' -ArgumentList ([int]($length - $start))
        $got = 0
        while ($got -lt $buffer.Length) {
            $count = $stream.Read($buffer, $got, $buffer.Length - $got)
            if ($count -le 0) {
                break
            }
            $got += $count
        }
        $text = $encoding.GetString($buffer, 0, $got).TrimStart([char]0xFEFF)
        if ($start -gt 0) {
            $cut = $text.IndexOf("`n")
            $text = if ($cut -ge 0) { $text.Substring($cut + 1) } else { '' }
        }
        return @{ length = $length; text = $text }
    }
    finally {
        $stream.Dispose()
    }
}

Function Get-SetupProgress {
    <#
    .SYNOPSIS
    Where the running setup is, from its own logs (Microsoft Learn, "View and read SQL Server Setup log files"):
    the newest run folder Setup Bootstrap\Log\<YYYYMMDD_HHMMSS> created since setup started, its Detail.txt (size,
    last write, last 4 KB) and the newest of its MSI logs (<Feature>_<Architecture>_<Interaction>.log). Result key
    progress, $null until setup has made its folder. The controller reads the phase from the text; WMI-free.
    #>
    param ([string]$Version)
    $module.Result.progress = $null
    $run = $module.Result.run_state
    if (-not $Version -or $null -eq $run -or -not $run.started) {
        return
    }
    $invariant = [System.Globalization.CultureInfo]::InvariantCulture
    $stamp = "yyyy-MM-dd'T'HH:mm:ss'Z'"
    $utc = [System.Globalization.DateTimeStyles]::AdjustToUniversal -bor [System.Globalization.DateTimeStyles]::AssumeUniversal
    $started = [System.DateTime]::MinValue
    if (-not [System.DateTime]::TryParseExact([string]$run.started, $stamp, $invariant, $utc, [ref]$started)) {
        return  # a runner of another version that wrote its time in the session's culture: no progress, no failure
    }
    # Two minutes of slack: the runner stamps setup's start after CreateProcess returns; setup makes its folder at once.
    $since = $started.AddSeconds(-120)
    $root = Get-SetupLogRoot -Version $Version
    if (-not (Test-Path -LiteralPath $root -PathType Container)) {
        return
    }
    $folder = Get-ChildItem -LiteralPath $root -Directory | Where-Object -FilterScript {
        $_.Name -match '^\d{8}_\d{6}$' -and $_.CreationTimeUtc -ge $since
    } | Sort-Object -Property @('CreationTimeUtc', 'Name') | Select-Object -Last 1
    if ($null -eq $folder) {
        return
    }
    $progress = @{ folder = $folder.FullName; detail_length = 0; detail_written = $null; detail_tail = ''
        log_name = $null; log_length = 0; log_written = $null }
    $detail = Join-Path -Path $folder.FullName -ChildPath 'Detail.txt'
    if (Test-Path -LiteralPath $detail -PathType Leaf) {
        $tail = Read-LogTail -Path $detail
        $progress.detail_length = $tail.length
        $progress.detail_tail = $tail.text
        $progress.detail_written = (Get-Item -LiteralPath $detail).LastWriteTimeUtc.ToString($stamp, $invariant)
    }
    $log = Get-ChildItem -LiteralPath $folder.FullName -File -Filter '*.log' |
        Sort-Object -Property @('LastWriteTimeUtc', 'Name') | Select-Object -Last 1
    if ($null -ne $log) {
        $progress.log_name = $log.Name
        $progress.log_length = $log.Length
        $progress.log_written = $log.LastWriteTimeUtc.ToString($stamp, $invariant)
    }
    $module.Result.progress = $progress
}

Function Write-JournalChecked {
    <#
    .SYNOPSIS
    Write Text as the journal under its lock, only if the journal is still the one the controller read
    (_journal_expected): a second controller is refused before anything changes.
    #>
    param ([Parameter(Mandatory = $true)][string]$Text)
    $lock = Open-JournalLock -Path $journalPath
    try {
        $untrusted = Get-JournalTrustProblem -Path $journalPath
        if ($untrusted) {
            $module.FailJson("the journal $journalPath cannot be trusted: $untrusted; nothing was changed")
        }
        if ((Get-JournalHash -Text (Read-JournalText -Path $journalPath)) -ne $module.Params._journal_expected) {
            $module.FailJson("the journal $journalPath changed since this task read it: another run is working on " +
                "this host; nothing was changed. Run the task again to see which run holds the host.")
        }
        Write-JournalText -Path $journalPath -Text $Text
    }
    finally {
        $lock.Dispose()
    }
}

Function Add-Lease {
    # The lease as found, renewed unless it has ended (then its run is dead and may be taken over).
    $module.Result.watchdog = Get-RenewedLease -JournalPath $journalPath -CheckMode $module.CheckMode
}

$module.Result.host_time = Get-HostTime
$module.Result.host_name = $env:COMPUTERNAME
$module.Result.journal_untrusted = Get-JournalTrustProblem -Path $journalPath

if ($module.Params._phase -eq 'gather') {
    Add-Lease
    Get-SetupState
    Get-InstanceFact
    $module.Result.setup_version = Get-MediaVersion
    $module.Result.product_key_in_media = $false
    $ini = Join-Path -Path $module.Params.media_path -ChildPath 'x64\DefaultSetup.ini'
    if (Test-Path -LiteralPath $ini -PathType Leaf) {
        foreach ($line in [System.IO.File]::ReadAllLines($ini)) {
            if ($line -match '^\s*PID\s*=\s*"?[0-9A-Za-z]{5}(-[0-9A-Za-z]{5}){4}"?\s*$') {
                $module.Result.product_key_in_media = $true
            }
        }
    }
    $module.Result.summary_text = Get-SummaryText -Version $module.Result.setup_version
    $module.Result.journal_text = Read-JournalText -Path $journalPath
    $module.ExitJson()
}

if ($module.CheckMode) {
    # The action plugin sends no change in check mode.
    Get-SetupState
    $module.Result.journal_text = Read-JournalText -Path $journalPath
    $module.ExitJson()
}

if ($module.Params._phase -eq 'start') {
    Write-JournalChecked -Text $module.Params._journal_before
    $module.Result.changed = $true
    if (Test-Path -LiteralPath $stateFile) {
        [System.IO.File]::Delete($stateFile)
    }
    Write-JournalText -Path $runnerFile -Text ("Set-StrictMode -Version 2.0`r`nFunction Invoke-SetupRunner {`r`n" +
        ${function:Invoke-SetupRunner}.ToString() + "`r`n}`r`nInvoke-SetupRunner`r`n")
    # The command line (with a product key) in a file of the journal's protected folder, never in the task.
    Write-JournalText -Path $runFile -Text (ConvertTo-Json -Compress -InputObject @{ setup = $setupExe; arguments = $module.Params._arguments })
    try {
        Register-SystemScriptTask -Name $taskName -Script $runnerFile `
            -Description 'configmgr.sql_upgrade: SQL Server setup (KB 256202 step 5), detached from WinRM'
    }
    catch {
        $module.FailJson("$($_.Exception.Message); setup did not start")
    }
    $run = Invoke-NativeCommand -FilePath 'schtasks.exe' -ArgumentList @('/Run', '/TN', $taskName)
    if ($run.rc -ne 0) {
        $module.FailJson("schtasks.exe /Run /TN $taskName failed ($($run.rc)): $($run.output -join ' '); setup did not start")
    }
    # The runner reports setup's process id (or why it could not start it) within moments.
    $deadline = (Get-Date).AddSeconds(60)
    do {
        Start-Sleep -Milliseconds 500
        Get-SetupState
    } while ($null -eq $module.Result.run_state -and (Get-Date) -lt $deadline)
    $module.Result.journal_text = Read-JournalText -Path $journalPath
    $module.ExitJson()
}

if ($module.Params._phase -eq 'poll') {
    if ($null -ne $module.Params._journal_after) {
        Write-JournalChecked -Text $module.Params._journal_after
        $module.Result.changed = $true
    }
    Add-Lease
    Get-SetupState
    Get-SetupProgress -Version (Get-MediaVersion)
    $module.Result.summary_text = $null
    if ($null -ne $module.Result.run_state -and $null -ne $module.Result.run_state.ended) {
        $module.Result.summary_text = Get-SummaryText -Version (Get-MediaVersion)
    }
    $module.Result.journal_text = Read-JournalText -Path $journalPath
    $module.ExitJson()
}

# finish
if ($null -ne $module.Params._journal_after) {
    Write-JournalChecked -Text $module.Params._journal_after
}
$module.Result.changed = $true
Get-SetupState
$delete = Invoke-NativeCommand -FilePath 'schtasks.exe' -ArgumentList @('/Delete', '/TN', $taskName, '/F')
if ($delete.rc -ne 0 -and $null -ne $module.Result.task) {
    $module.Warn("schtasks.exe /Delete /TN $taskName failed ($($delete.rc)): $($delete.output -join ' ')")
}
foreach ($path in @($stateFile, $runnerFile, $runFile)) {
    if (Test-Path -LiteralPath $path) {
        [System.IO.File]::Delete($path)
    }
}
Get-InstanceFact
$module.Result.summary_text = Get-SummaryText -Version (Get-MediaVersion)
$module.Result.journal_text = Read-JournalText -Path $journalPath
$module.ExitJson()
