# configmgr:wmi-free
# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Console programs (netsh, schtasks, nltest, sc) run with their arguments as data, for the other utils.

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

Export-ModuleMember -Function @(
    'Invoke-NativeCommand'
)
