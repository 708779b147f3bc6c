#!powershell
# configmgr:wmi-free

# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

#AnsibleRequires -CSharpUtil Ansible.Basic
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._Journal
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._NativeCommand

# Thin executor of site_preflight (the read-only checks of the role site_sql_upgrade before anything changes).
# The action plugin (plugins/action/site_preflight.py) decides; this script reads, with _phase=read: the markers
# of a pending restart, the free space of the drives named, the site's Configuration Manager identity and version
# and its site database's name (registry), and over its own System.Data.SqlClient connection (closed before it
# returns) each database's collation and the age of its last full backup (msdb.dbo.backupset). The query takes
# no input. With _phase=probe (option probe): the readiness probe of the window's watchdog, a one-shot SYSTEM task
# removed before it returns. No WMI.

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

$spec = @{
    options = @{
        instance = @{ type = 'str'; default = 'MSSQLSERVER' }
        target_version = @{ type = 'str'; required = $true }
        media_path = @{ type = 'str' }
        drives = @{ type = 'dict'; default = @{} }
        backup_max_age_hours = @{ type = 'int'; default = 24 }
        product_key_given = @{ type = 'bool'; default = $false }
        evaluation = @{ type = 'bool'; default = $false }
        run_id = @{ type = 'str' }
        takeover = @{ type = 'str' }
        probe = @{ type = 'bool'; default = $false }
        _phase = @{ type = 'str'; default = 'read'; choices = @('read', 'probe') }
    }
    supports_check_mode = $true
}

$module = [Ansible.Basic.AnsibleModule]::Create($args, $spec)

if ($module.Params._phase -eq 'probe') {
    # The lease can run (issue 26): a one-shot task as SYSTEM, registered as the watchdog's is
    # (Register-SystemScriptTask: the same PowerShell host and arguments) from the watchdog's folder, runs a script
    # that writes what it could do. The task, the script and its answer are removed before this returns, in check
    # mode too: nothing is left behind.
    $folder = Split-Path -Path (Get-JournalPath) -Parent
    $taskName = '\configmgr.sql_upgrade\probe'
    $script = Join-Path -Path $folder -ChildPath 'probe.ps1'
    $answer = Join-Path -Path $folder -ChildPath 'probe.json'
    $probe = @{ registered = $false; register_error = $null; ran = $false; language_mode = $null; com = $false
        com_error = $null; machine_policy = [string](Get-ExecutionPolicy -Scope MachinePolicy) }
    # Only cmdlets and core types before the COM test: the script must answer in ConstrainedLanguage too.
    $text = @"
`$out = @{ language_mode = [string]`$ExecutionContext.SessionState.LanguageMode; com = `$false; com_error = `$null }
try { `$null = New-Object -ComObject HNetCfg.FwPolicy2; `$out.com = `$true } catch { `$out.com_error = `$_.Exception.Message }
Set-Content -LiteralPath '$answer' -Value (ConvertTo-Json -Compress -InputObject `$out) -Encoding UTF8
"@
    try {
        if (Test-Path -LiteralPath $answer) {
            Remove-Item -LiteralPath $answer -Force
        }
        Write-JournalText -Path $script -Text $text
        try {
            Register-SystemScriptTask -Name $taskName -Script $script -TimeLimit 'PT5M' `
                -Description "configmgr.sql_upgrade: readiness probe of the window's watchdog (removed at once)"
            $probe.registered = $true
        }
        catch {
            $probe.register_error = $_.Exception.Message
        }
        if ($probe.registered) {
            $null = Invoke-NativeCommand -FilePath 'schtasks.exe' -ArgumentList @('/Run', '/TN', $taskName)
            $deadline = [System.DateTime]::UtcNow.AddSeconds(60)
            while (-not (Test-Path -LiteralPath $answer) -and [System.DateTime]::UtcNow -lt $deadline) {
                Start-Sleep -Milliseconds 500
            }
            if (Test-Path -LiteralPath $answer) {
                Start-Sleep -Milliseconds 200  # Set-Content may still be writing
                $said = ConvertFrom-Json -InputObject ([System.IO.File]::ReadAllText($answer))
                $probe.ran = $true
                $probe.language_mode = [string]$said.language_mode
                $probe.com = [bool]$said.com
                $probe.com_error = $said.com_error
            }
        }
    }
    finally {
        $null = Invoke-NativeCommand -FilePath 'schtasks.exe' -ArgumentList @('/Delete', '/TN', $taskName, '/F')
        foreach ($path in @($script, $answer)) {
            if (Test-Path -LiteralPath $path) {
                Remove-Item -LiteralPath $path -Force
            }
        }
    }
    $module.Result.probe = $probe
    $module.ExitJson()
}


Function Get-RegistryValue {
    param ([Parameter(Mandatory = $true)][string]$Key, [Parameter(Mandatory = $true)][string]$Name)
    if (-not (Test-Path -LiteralPath $Key)) {
        return $null
    }
    return (Get-Item -LiteralPath $Key).GetValue($Name)
}

# A restart Windows waits for: two subkeys that exist only while one is pending, one value, a computer rename.
$renames = Get-RegistryValue -Key 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager' -Name 'PendingFileRenameOperations'
$active = Get-RegistryValue -Key 'HKLM:\SYSTEM\CurrentControlSet\Control\ComputerName\ActiveComputerName' -Name 'ComputerName'
$pending = Get-RegistryValue -Key 'HKLM:\SYSTEM\CurrentControlSet\Control\ComputerName\ComputerName' -Name 'ComputerName'
$module.Result.reboot = @{
    cbs_reboot_pending = Test-Path -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending'
    wu_reboot_required = Test-Path -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired'
    pending_file_renames = @($renames | Where-Object -FilterScript { $_ }).Count -gt 0
    computer_rename_pending = ($null -ne $active -and $null -ne $pending -and $active -ne $pending)
}

$free = @{}
foreach ($drive in $module.Params.drives.Keys) {
    $root = [string]$drive + ':\'
    $free[[string]$drive] = if (Test-Path -LiteralPath $root) { (New-Object -TypeName System.IO.DriveInfo -ArgumentList $root).AvailableFreeSpace } else { $null }
}
$module.Result.free_bytes = $free

$module.Result.configmgr = @{
    full_version = Get-RegistryValue -Key 'HKLM:\SOFTWARE\Microsoft\SMS\Setup' -Name 'Full Version'
    site_code = Get-RegistryValue -Key 'HKLM:\SOFTWARE\Microsoft\SMS\Identification' -Name 'Site Code'
    site_database = Get-RegistryValue -Key 'HKLM:\SOFTWARE\Microsoft\SMS\SQL Server' -Name 'Database Name'
}

$instance = $module.Params.instance
$namesKey = 'HKLM:\SOFTWARE\Microsoft\Microsoft SQL Server\Instance Names\SQL'
$id = Get-RegistryValue -Key $namesKey -Name $instance
$module.Result.instance_id = $id
$module.Result.version = $null
if ($id) {
    $module.Result.version = Get-RegistryValue -Key "HKLM:\SOFTWARE\Microsoft\Microsoft SQL Server\$id\MSSQLServer\CurrentVersion" -Name 'CurrentVersion'
}
$module.Result.media_has_key = $null
if ($module.Params.media_path) {
    $ini = Join-Path -Path $module.Params.media_path -ChildPath 'x64\DefaultSetup.ini'
    if (Test-Path -LiteralPath $ini -PathType Leaf) {
        $module.Result.media_has_key = $false
        foreach ($line in [System.IO.File]::ReadAllLines($ini)) {
            if ($line -match '^\s*PID\s*=\s*"?[0-9A-Za-z]{5}(-[0-9A-Za-z]{5}){4}"?\s*$') {
                $module.Result.media_has_key = $true
            }
        }
    }
}
# The journal of a run that may hold the host (the controller decides; the text is data).
$journal = Join-Path -Path $env:ProgramData -ChildPath 'configmgr.sql_upgrade\journal.json'
$module.Result.journal_text = if (Test-Path -LiteralPath $journal -PathType Leaf) { [System.IO.File]::ReadAllText($journal) } else { $null }
$module.Result.databases = @()
$module.Result.connect_error = $null
if (-not $id) {
    $module.ExitJson()
}

$builder = New-Object -TypeName System.Data.SqlClient.SqlConnectionStringBuilder
$builder['Data Source'] = if ($instance -eq 'MSSQLSERVER') { '.' } else { ".\$instance" }
$builder['Application Name'] = 'configmgr.sql_upgrade site_preflight'
$builder['Integrated Security'] = $true
$builder['Pooling'] = $false
$builder['Connect Timeout'] = 15
$connection = New-Object -TypeName System.Data.SqlClient.SqlConnection -ArgumentList $builder.ConnectionString
try {
    $connection.Open()
    $command = $connection.CreateCommand()
    # Every database with its collation and the age in minutes of its last full backup (type D). backupset keeps
    # the server's local time, so the age is taken on the server against its own GETDATE().
    $command.CommandText = (
        "SELECT d.name, d.collation_name, " +
        "DATEDIFF(minute, (SELECT MAX(b.backup_finish_date) FROM msdb.dbo.backupset AS b " +
        "WHERE b.database_name = d.name AND b.type = 'D'), GETDATE()) AS backup_age_minutes " +
        "FROM sys.databases AS d ORDER BY d.name")
    $command.CommandTimeout = 30
    $reader = $command.ExecuteReader()
    $rows = [System.Collections.Generic.List[Object]]@()
    try {
        while ($reader.Read()) {
            $age = if ($reader.IsDBNull(2)) { $null } else { $reader.GetInt32(2) }
            $collation = if ($reader.IsDBNull(1)) { $null } else { $reader.GetString(1) }
            $rows.Add(@{ name = $reader.GetString(0); collation = $collation; backup_age_minutes = $age })
        }
    }
    finally {
        $reader.Dispose()
        $command.Dispose()
    }
    $module.Result.databases = $rows
}
catch [System.Data.SqlClient.SqlException] {
    $module.Result.connect_error = "SQL Server error $($_.Exception.Number): $($_.Exception.Message)"
}
finally {
    $connection.Dispose()
}
$module.ExitJson()
