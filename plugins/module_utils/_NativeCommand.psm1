# configmgr:wmi-free
# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Console programs (netsh, schtasks, nltest, sc) run with their arguments as data, for the other utils; and the one
# way this collection registers a task that runs a script of its own as SYSTEM (the watchdog, setup's runner, the
# readiness probe), so the probe proves exactly what the watchdog will run.

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

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

Function Register-SystemScriptTask {
    <#
    .SYNOPSIS
    Register (or replace: /F) a task that runs Script as SYSTEM with Windows PowerShell 5.1 as
    "powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -File <Script> [Argument]", from task XML
    through schtasks.exe /Create /XML (the ScheduledTasks cmdlets are CIM). Triggers is the XML of the task's
    <Triggers> children ('' for a task that runs only when schtasks.exe /Run says so). The XML file is written
    beside the script and removed. Throws naming the task and schtasks.exe's answer.
    #>
    param (
        [Parameter(Mandatory = $true)][string]$Name,
        [Parameter(Mandatory = $true)][string]$Script,
        [Parameter(Mandatory = $true)][string]$Description,
        [AllowEmptyString()][string]$Triggers = '',
        [AllowEmptyString()][string]$Argument = '',
        [string]$TimeLimit = 'PT72H',
        [switch]$StartWhenAvailable
    )
    $command = [System.Security.SecurityElement]::Escape("$env:SystemRoot\System32\WindowsPowerShell\v1.0\powershell.exe")
    $line = "-NoProfile -NonInteractive -ExecutionPolicy Bypass -File `"$Script`""
    if ($Argument) {
        $line += " $Argument"
    }
    $arguments = [System.Security.SecurityElement]::Escape($line)
    $triggerXml = if ($Triggers) { "<Triggers>$Triggers</Triggers>" } else { '' }
    $available = if ($StartWhenAvailable) { '<StartWhenAvailable>true</StartWhenAvailable>' } else { '' }
    $xml = @"
<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo><Description>$([System.Security.SecurityElement]::Escape($Description))</Description></RegistrationInfo>
  $triggerXml
  <Principals><Principal id="System"><UserId>S-1-5-18</UserId><RunLevel>HighestAvailable</RunLevel></Principal></Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    $available
    <ExecutionTimeLimit>$TimeLimit</ExecutionTimeLimit>
    <Priority>4</Priority>
  </Settings>
  <Actions Context="System"><Exec><Command>$command</Command><Arguments>$arguments</Arguments></Exec></Actions>
</Task>
"@
    $xmlPath = [System.IO.Path]::ChangeExtension($Script, '.xml')
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
}

Export-ModuleMember -Function @(
    'Invoke-NativeCommand',
    'Register-SystemScriptTask'
)
