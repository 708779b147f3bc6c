#!powershell
# configmgr:wmi-free

# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

#AnsibleRequires -CSharpUtil Ansible.Basic

# Thin executor of sql_single_user_check (the gate before KB 256202 step 5). The action plugin
# (plugins/action/sql_single_user_check.py) calls it with _phase=read, once per poll: the instances from the
# registry, the instance's service state from the Service Control Manager, and, over its own
# System.Data.SqlClient connection (closed before it returns), the sessions, the databases, the version and
# edition. It decides nothing (which sessions block is the controller's). No WMI. The instance name and the
# login reach SQL Server only through SqlConnectionStringBuilder, never as query text; the queries take no
# input at all.

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

$spec = @{
    options = @{
        instance = @{ type = 'str'; default = 'MSSQLSERVER' }
        login_user = @{ type = 'str' }
        login_password = @{ type = 'str'; no_log = $true }
        allowed_programs = @{ type = 'list'; elements = 'str'; default = @() }
        wait_timeout = @{ type = 'int'; default = 0 }
        poll_interval = @{ type = 'int'; default = 5 }
        fail_when_blocked = @{ type = 'bool'; default = $true }
        _phase = @{ type = 'str'; default = 'read'; choices = @('read') }
    }
    supports_check_mode = $true
}

$module = [Ansible.Basic.AnsibleModule]::Create($args, $spec)
$instance = $module.Params.instance

# The instances SQL Server setup registered (value names of ...\Instance Names\SQL).
$namesKey = 'HKLM:\SOFTWARE\Microsoft\Microsoft SQL Server\Instance Names\SQL'
$instances = @()
if (Test-Path -LiteralPath $namesKey) {
    $instances = @((Get-Item -LiteralPath $namesKey).GetValueNames())
}
$module.Result.instances = $instances
$serviceName = if ($instance -eq 'MSSQLSERVER') { 'MSSQLSERVER' } else { 'MSSQL$' + $instance }
$state = 'missing'
$service = Get-Service -Name $serviceName -ErrorAction SilentlyContinue
if ($null -ne $service) {
    $state = @{ Running = 'running'; Stopped = 'stopped'; StartPending = 'start_pending'; StopPending = 'stop_pending';
        Paused = 'paused'; ContinuePending = 'continue_pending'; PausePending = 'pause_pending' }[[string]$service.Status]
}
$module.Result.instance = @{ name = $instance; service = $serviceName; service_state = $state; version = $null; edition = $null }
$module.Result.connected = $false
$module.Result.connect_error = $null
$module.Result.sessions = @()
$module.Result.databases = @()
if (@($instances) -notcontains $instance -or $state -ne 'running') {
    $module.ExitJson()
}

$builder = New-Object -TypeName System.Data.SqlClient.SqlConnectionStringBuilder
$builder['Data Source'] = if ($instance -eq 'MSSQLSERVER') { '.' } else { ".\$instance" }
$builder['Application Name'] = 'configmgr.sql_upgrade sql_single_user_check'
$builder['Pooling'] = $false
$builder['Connect Timeout'] = 15
if ($module.Params.login_user) {
    $builder['User ID'] = $module.Params.login_user
    $builder['Password'] = [string]$module.Params.login_password
}
else {
    $builder['Integrated Security'] = $true
}

Function Read-Row {
    <#
    .SYNOPSIS
    Every row of one query (no parameters, no input) as hashtables, column names as keys.
    #>
    param ([Parameter(Mandatory = $true)][System.Data.SqlClient.SqlConnection]$Connection, [Parameter(Mandatory = $true)][string]$Query)
    $command = $Connection.CreateCommand()
    $command.CommandText = $Query
    $command.CommandTimeout = 30
    $reader = $command.ExecuteReader()
    $rows = [System.Collections.Generic.List[Object]]@()
    try {
        while ($reader.Read()) {
            $row = @{}
            for ($i = 0; $i -lt $reader.FieldCount; $i++) {
                $value = $reader.GetValue($i)
                if ($value -is [System.DBNull]) {
                    $value = $null
                }
                $row[$reader.GetName($i)] = $value
            }
            $rows.Add($row)
        }
    }
    finally {
        $reader.Dispose()
        $command.Dispose()
    }
    return , $rows
}

$connection = New-Object -TypeName System.Data.SqlClient.SqlConnection -ArgumentList $builder.ConnectionString
try {
    $connection.Open()
    $module.Result.connected = $true
    $server = (Read-Row -Connection $connection -Query "SELECT CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128)) AS version, CAST(SERVERPROPERTY('Edition') AS nvarchar(128)) AS edition")[0]
    $module.Result.instance.version = $server.version
    $module.Result.instance.edition = $server.edition
    # What this login may see: without VIEW SERVER STATE, sys.dm_exec_sessions returns its own session only
    # (Microsoft Learn, sys.dm_exec_sessions, Permissions), and the gate would call a busy instance ready.
    $rights = (Read-Row -Connection $connection -Query ("SELECT SUSER_SNAME() AS login, " +
            "CAST(IS_SRVROLEMEMBER('sysadmin') AS int) AS sysadmin, " +
            "CAST(HAS_PERMS_BY_NAME(NULL, NULL, 'VIEW SERVER STATE') AS int) AS view_server_state"))[0]
    $module.Result.permissions = @{ login = [string]$rights.login; sysadmin = ([int]$rights.sysadmin -eq 1)
        view_server_state = ([int]$rights.view_server_state -eq 1) }
    $module.Result.sessions = @(Read-Row -Connection $connection -Query (
            'SELECT session_id, login_name, host_name, program_name, host_process_id, status ' +
            'FROM sys.dm_exec_sessions WHERE is_user_process = 1 AND session_id <> @@SPID ORDER BY session_id'))
    $module.Result.databases = @(Read-Row -Connection $connection -Query (
            'SELECT name, state_desc AS state, user_access_desc AS user_access FROM sys.databases ORDER BY name'))
}
catch [System.Data.SqlClient.SqlException] {
    # 18461: single-user mode, another client holds the connection; 18456: login failed; -1/2/53: not reachable.
    $module.Result.connect_error = "SQL Server error $($_.Exception.Number): $($_.Exception.Message)"
}
finally {
    $connection.Dispose()
}
$module.ExitJson()
