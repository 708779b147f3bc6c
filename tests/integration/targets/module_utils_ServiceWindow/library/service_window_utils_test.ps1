#!powershell
# configmgr:wmi-free

# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

#AnsibleRequires -CSharpUtil Ansible.Basic
#AnsibleRequires -CSharpUtil ansible_collections.ansible.windows.plugins.module_utils.SCManager
#AnsibleRequires -CSharpUtil ansible_collections.configmgr.sql_upgrade.plugins.module_utils.ServiceControl
#AnsibleRequires -CSharpUtil ansible_collections.configmgr.sql_upgrade.plugins.module_utils.ProcessSnapshot
#AnsibleRequires -CSharpUtil ansible_collections.configmgr.sql_upgrade.plugins.module_utils.TcpConnections
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._Journal
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._ServiceTable
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._ServiceOps
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._Processes
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._Firewall
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._NetworkFacts
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._Watchdog
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._Apply
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._NativeCommand

# Lab test of the host-side helpers of the service window. What it proves on a real server, and the twin
# cannot: the journal folder's protected ACL, the atomic replace, each operation of Invoke-ServiceOp against
# the Service Control Manager, and the Toolhelp32 process snapshot. It creates its own service (a stopped,
# demand-start service that is never started) and its own process, and removes both.

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

$spec = @{
    options = @{}
    supports_check_mode = $false
}
$module = [Ansible.Basic.AnsibleModule]::Create($args, $spec)

$failures = [System.Collections.Generic.List[string]]@()
$checks = [System.Collections.Generic.List[string]]@()

Function Test-That {
    param ([string]$Name, [bool]$Condition, [string]$Seen)
    $checks.Add($Name)
    if (-not $Condition) {
        $failures.Add("${Name}: $Seen")
    }
}

# --- journal: protected folder ACL, atomic replace ----------------------------------------------------------
$folder = Join-Path -Path $env:TEMP -ChildPath ('configmgr-utils-' + [System.Guid]::NewGuid().ToString('N'))
$journal = Join-Path -Path $folder -ChildPath 'journal.json'
try {
    Write-JournalText -Path $journal -Text '{"first": 1}'
    Write-JournalText -Path $journal -Text '{"second": 2}'
    Test-That 'Write-JournalText replaces the file' ((Read-JournalText -Path $journal) -eq '{"second": 2}') (Read-JournalText -Path $journal)
    Test-That 'Write-JournalText leaves no temp file' (-not (Test-Path -LiteralPath ($journal + '.tmp'))) 'journal.json.tmp exists'
    $acl = Get-Acl -LiteralPath $folder
    Test-That 'journal folder ACL is protected' $acl.AreAccessRulesProtected 'inherits rules'
    $sids = @($acl.Access | ForEach-Object -Process {
            $_.IdentityReference.Translate([System.Security.Principal.SecurityIdentifier]).Value
        } | Sort-Object -Unique)
    Test-That 'journal folder grants only SYSTEM and Administrators' (($sids -join ',') -eq 'S-1-5-18,S-1-5-32-544') ($sids -join ',')
    $owner = (New-Object -TypeName System.Security.Principal.NTAccount -ArgumentList $acl.Owner).Translate(
        [System.Security.Principal.SecurityIdentifier]).Value
    Test-That 'journal folder is owned by Administrators' ($owner -eq 'S-1-5-32-544') $owner
    Test-That 'Read-JournalText returns null without a file' ($null -eq (Read-JournalText -Path (Join-Path -Path $folder -ChildPath 'none.json'))) 'not null'
    $fileAcl = Get-Acl -LiteralPath $journal
    Test-That 'the journal file has a protected ACL of its own' $fileAcl.AreAccessRulesProtected 'inherits rules'
    Test-That 'a journal written by the module is trusted' ((Get-JournalTrustProblem -Path $journal) -eq '') (Get-JournalTrustProblem -Path $journal)
    # A planted temp file that BUILTIN\Users may write: refused, and the next write replaces it anyway.
    $tmp = $journal + '.tmp'
    [System.IO.File]::WriteAllText($tmp, '{}')
    $tmpAcl = Get-Acl -LiteralPath $tmp
    $users = New-Object -TypeName System.Security.Principal.SecurityIdentifier -ArgumentList 'S-1-5-32-545'
    $tmpAcl.AddAccessRule((New-Object -TypeName System.Security.AccessControl.FileSystemAccessRule -ArgumentList @(
                $users, [System.Security.AccessControl.FileSystemRights]::Modify, [System.Security.AccessControl.AccessControlType]::Allow)))
    Set-Acl -LiteralPath $tmp -AclObject $tmpAcl
    $problem = Get-JournalTrustProblem -Path $journal
    Test-That 'a temp file Users may write is reported' ($problem -like '*S-1-5-32-545*') $problem
    Write-JournalText -Path $journal -Text '{"third": 3}'
    Test-That 'the next write deletes the planted temp file' (-not (Test-Path -LiteralPath $tmp)) 'journal.json.tmp exists'
    Test-That 'after it the journal is trusted again' ((Get-JournalTrustProblem -Path $journal) -eq '') (Get-JournalTrustProblem -Path $journal)
}
finally {
    Remove-Item -LiteralPath $folder -Recurse -Force -ErrorAction SilentlyContinue
}

# --- service operations on a service of our own --------------------------------------------------------------
$serviceName = 'configmgrUtilsTest' + [System.Guid]::NewGuid().ToString('N').Substring(0, 8)
$binary = Join-Path -Path $env:SystemRoot -ChildPath 'System32\svchost.exe'
$null = New-Service -Name $serviceName -BinaryPathName $binary -StartupType Manual -DisplayName 'configmgr.sql_upgrade utils test'
try {
    Invoke-ServiceOp -Op @{ op = 'set_mode'; name = $serviceName; start_mode = 'disabled' } -TimeoutSeconds 30
    $table = @(Get-ServiceTable | Where-Object -FilterScript { $_.name -eq $serviceName })
    Test-That 'set_mode disabled, read back by Get-ServiceTable' ($table.Count -eq 1 -and $table[0].start_mode -eq 'disabled') ($table | ConvertTo-Json -Compress)
    Invoke-ServiceOp -Op @{ op = 'set_mode'; name = $serviceName; start_mode = 'delayed' } -TimeoutSeconds 30
    $table = @(Get-ServiceTable | Where-Object -FilterScript { $_.name -eq $serviceName })
    Test-That 'set_mode delayed, read back as delayed' ($table[0].start_mode -eq 'delayed') $table[0].start_mode
    Invoke-ServiceOp -Op @{ op = 'stop'; name = $serviceName } -TimeoutSeconds 30
    Test-That 'stop of a stopped service is done' ($table[0].state -eq 'stopped') $table[0].state
    Invoke-ServiceOp -Op @{ op = 'expect_stopped'; name = $serviceName; seconds = 1 } -TimeoutSeconds 30
    $checks.Add('expect_stopped on a stopped service passes')
    $threw = $false
    try {
        Invoke-ServiceOp -Op @{ op = 'set_mode'; name = $serviceName; start_mode = 'boot' } -TimeoutSeconds 30
    }
    catch {
        $threw = $true
    }
    Test-That 'set_mode refuses boot' $threw 'no error'
}
finally {
    $null = & "$env:SystemRoot\System32\sc.exe" delete $serviceName
}

# --- services the module cannot change (issue: tamper-protected agents), staged with a service DACL ----------
# Service SDDL rights: CC query config, DC change config, LC query status, WP stop, RP start, SD delete, RC
# read control, WD write DAC. A deny ACE for BUILTIN\Administrators (BA) is what a tamper-protected agent's
# answer looks like to the module: ERROR_ACCESS_DENIED. The owner keeps WRITE_DAC, so the test can undo it.
$open = 'D:(A;;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;BA)(A;;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;SY)'
$cases = @(
    @{ suffix = 'Prot'; sddl = 'D:(D;;DCWP;;;BA)(A;;CCLCSWRPLOCRSDRCWD;;;BA)(A;;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;SY)'
        expect = @{ can_change = $false; config_readable = $true } }
    @{ suffix = 'NoCfg'; sddl = 'D:(D;;CC;;;BA)(A;;LCSWRPWPLOCRSDRCWD;;;BA)(A;;CCDCLCSWRPWPDTLOCRSDRCWDWO;;;SY)'
        expect = @{ can_change = $false; config_readable = $false } }
)
foreach ($case in $cases) {
    $limited = 'configmgrUtils' + $case.suffix + [System.Guid]::NewGuid().ToString('N').Substring(0, 6)
    $null = New-Service -Name $limited -BinaryPathName $binary -StartupType Manual -DisplayName 'configmgr.sql_upgrade utils test'
    try {
        $null = & "$env:SystemRoot\System32\sc.exe" sdset $limited $case.sddl
        $unreadable = New-Object -TypeName System.Collections.Generic.List[Object]
        $row = @(Get-ServiceTable -Unreadable $unreadable | Where-Object -FilterScript { $_.name -eq $limited })
        $seen = $row | ConvertTo-Json -Compress
        Test-That "$($case.suffix): the gather still lists the service" ($row.Count -eq 1) $seen
        Test-That "$($case.suffix): can_change" ($row[0].can_change -eq $case.expect.can_change) $seen
        Test-That "$($case.suffix): config_readable" ($row[0].config_readable -eq $case.expect.config_readable) $seen
        Test-That "$($case.suffix): start mode (registry when the SCM refuses)" ($row[0].start_mode -eq 'manual') $seen
    }
    finally {
        $null = & "$env:SystemRoot\System32\sc.exe" sdset $limited $open
        $null = & "$env:SystemRoot\System32\sc.exe" delete $limited
    }
}

# --- a service hung in STOP_PENDING (end_hung_services): a service of our own whose OnStop never returns --------
# Compiled here (PowerShell 5.1's Add-Type writes an .exe with -OutputType WindowsApplication); ServiceBase reports
# STOP_PENDING before it calls OnStop, which blocks for ever, so the SCM shows the service stopping until its
# process ends. Proves Stop-HungServiceProcess against the real SCM: the current process id, Process.Kill of a
# LocalSystem service process from this session, and the SCM recording the service Stopped.
$hung = 'configmgrUtilsHung' + [System.Guid]::NewGuid().ToString('N').Substring(0, 6)
$hungDir = Join-Path -Path $env:ProgramData -ChildPath ('configmgr-utils-' + [System.Guid]::NewGuid().ToString('N'))
$hungExe = Join-Path -Path $hungDir -ChildPath 'hung.exe'
$source = @'
using System.ServiceProcess;
using System.Threading;
public class HungOnStop : ServiceBase
{
    public HungOnStop() { ServiceName = "__NAME__"; CanStop = true; }
    protected override void OnStop() { Thread.Sleep(Timeout.Infinite); }
    public static void Main() { ServiceBase.Run(new HungOnStop()); }
}
'@
$null = New-Item -Path $hungDir -ItemType Directory -Force
try {
    $source = $source.Replace('__NAME__', $hung)
    Add-Type -TypeDefinition $source -ReferencedAssemblies 'System.ServiceProcess' -OutputAssembly $hungExe -OutputType WindowsApplication
    $null = New-Service -Name $hung -BinaryPathName ('"' + $hungExe + '"') -StartupType Manual -DisplayName 'configmgr.sql_upgrade utils test (hangs on stop)'
    Start-Service -Name $hung
    $op = @{ op = 'stop'; name = $hung }
    $threw = $false
    try {
        Invoke-ServiceOp -Op $op -TimeoutSeconds 5
    }
    catch {
        $threw = $true
    }
    $state = (Get-Service -Name $hung).Status
    Test-That 'a stop that times out throws without EndHung and leaves the service StopPending' ($threw -and $state -eq 'StopPending') "threw $threw, $state"
    # Slices (Invoke-PlanLocked puts _slice and _waited on the operation): a stop still pending when its slice
    # ends returns 'stopping' with the whole wait so far; the next slice resumes it within the same timeout.
    $op = @{ op = 'stop'; name = $hung; _slice = 2; _waited = 1 }
    Invoke-ServiceOp -Op $op -TimeoutSeconds 60
    Test-That 'a stop still pending at the end of its slice returns stopping with the time waited' ($op['result'] -eq 'stopping' -and [int]$op['_waited'] -ge 3) "$($op['result']), $($op['_waited'])"
    $op = @{ op = 'stop'; name = $hung; _slice = 30; _waited = 55 }
    Invoke-ServiceOp -Op $op -TimeoutSeconds 60 -EndHung
    $state = (Get-Service -Name $hung).Status
    # 55 of 60 s were spent in earlier slices: the timeout falls within this slice, and EndHung acts on it.
    Test-That 'with EndHung the hung service own process is ended and the service is Stopped' ($op['result'] -eq 'ended_hung' -and [int]$op['process_id'] -gt 0 -and $state -eq 'Stopped') "$($op['result']), $($op['process_id']), $state"
    Test-That 'Stop-HungServiceProcess does nothing to a stopped service' ((Stop-HungServiceProcess -Name $hung) -eq 0) 'not 0'
}
finally {
    $null = & "$env:SystemRoot\System32\sc.exe" delete $hung
    Remove-Item -LiteralPath $hungDir -Recurse -Force -ErrorAction SilentlyContinue
}

# --- start and stop of a real, harmless service (SNMP Trap: demand start, stopped by default) -----------------
$trap = Get-Service -Name 'SNMPTRAP' -ErrorAction SilentlyContinue
if ($null -ne $trap -and $trap.Status -eq 'Stopped' -and $trap.StartType -ne 'Disabled') {
    try {
        Invoke-ServiceOp -Op @{ op = 'start'; name = 'SNMPTRAP' } -TimeoutSeconds 60
        Test-That 'start waits for Running' ((Get-Service -Name 'SNMPTRAP').Status -eq 'Running') (Get-Service -Name 'SNMPTRAP').Status
        Invoke-ServiceOp -Op @{ op = 'stop'; name = 'SNMPTRAP' } -TimeoutSeconds 60
        Test-That 'stop waits for Stopped' ((Get-Service -Name 'SNMPTRAP').Status -eq 'Stopped') (Get-Service -Name 'SNMPTRAP').Status
    }
    finally {
        Stop-Service -Name 'SNMPTRAP' -ErrorAction SilentlyContinue
    }
}
else {
    $module.Warn('SNMPTRAP is not a stopped demand-start service here: start/stop of a running service not exercised')
}

# --- Toolhelp32 snapshot and end_process ---------------------------------------------------------------------
$child = Start-Process -FilePath "$env:SystemRoot\System32\PING.EXE" -ArgumentList @('-n', '600', '127.0.0.1') -WindowStyle Hidden -PassThru
try {
    $snapshot = @(Get-ProcessSnapshot)
    $seen = @($snapshot | Where-Object -FilterScript { $_.process_id -eq $child.Id })
    Test-That 'the snapshot lists a new process by image name without .exe' ($seen.Count -eq 1 -and $seen[0].name -eq 'PING') ($seen | ConvertTo-Json -Compress)
    Test-That 'the snapshot gives the creator as parent' ($seen[0].parent_process_id -eq $PID) "$($seen[0].parent_process_id) vs $PID"
    Test-That 'the snapshot gives a creation time' ($seen[0].created -gt 0) "$($seen[0].created)"
    $op = @{ op = 'end_process'; name = 'PING'; process_id = $child.Id; created = $seen[0].created }
    $reused = @{ op = 'end_process'; name = 'PING'; process_id = $child.Id; created = ($seen[0].created + 1) }
    Invoke-ServiceOp -Op $reused -TimeoutSeconds 30
    Test-That 'end_process leaves a process whose creation time differs' ($reused['result'] -eq 'gone' -and -not $child.HasExited) $reused['result']
    Invoke-ServiceOp -Op $op -TimeoutSeconds 30
    Test-That 'end_process ends the same process' ($op['result'] -eq 'ended') $op['result']
    Invoke-ServiceOp -Op $op -TimeoutSeconds 30
    Test-That 'end_process of an exited process is gone' ($op['result'] -eq 'gone') $op['result']
}
finally {
    if (-not $child.HasExited) {
        $child.Kill()
    }
}

# --- net_isolate's helpers: native commands, the firewall's COM API, the task, the TCP table -----------------
$native = Invoke-NativeCommand -FilePath 'schtasks.exe' -ArgumentList @('/Query', '/TN', '\configmgr.sql_upgrade\no such task')
Test-That 'a native command writing to stderr does not terminate and returns its exit code' ($native.rc -ne 0) "rc $($native.rc)"
$state = Get-FirewallState
Test-That 'Get-FirewallState reads the three profiles' ((@($state.profiles.Keys) | Sort-Object) -join ',' -eq 'domain,private,public') ($state | ConvertTo-Json -Compress -Depth 4)
# A rule that blocks only TEST-NET-1 (192.0.2.0/24, documentation addresses): harmless on any network.
$ruleName = 'configmgr.sql_upgrade isolation (lab test)'
$add = @{ op = 'add_rule'; name = $ruleName; direction = 'out'; protocol = 'tcp'; remote_addresses = @('192.0.2.1', '192.0.2.10-192.0.2.20'); remote_ports = @('1-52', '54-65535') }
try {
    Invoke-ServiceOp -Op $add -TimeoutSeconds 30
    $read = (Get-FirewallState).rules[$ruleName]
    Test-That 'add_rule creates a block rule on every profile, read back as planned' ($null -ne $read -and $read.action -eq 'block' -and $read.profiles -eq 'all' -and $read.enabled) ($read | ConvertTo-Json -Compress)
    Test-That 'a single IPv4 address comes back with its mask' (@($read.remote_addresses) -contains '192.0.2.1/255.255.255.255') ($read.remote_addresses -join ',')
    Test-That 'the remote ports come back as given' (($read.remote_ports -join ',') -eq '1-52,54-65535') ($read.remote_ports -join ',')
}
finally {
    $remove = @{ op = 'remove_rule'; name = $ruleName }
    Invoke-ServiceOp -Op $remove -TimeoutSeconds 30
}
Test-That 'remove_rule removes it' (-not (Get-FirewallState).rules.ContainsKey($ruleName)) $remove['result']
$refused = $false
try {
    Invoke-ServiceOp -Op @{ op = 'remove_rule'; name = 'Windows Remote Management (HTTP-In)' } -TimeoutSeconds 30
}
catch {
    $refused = $true
}
Test-That 'remove_rule refuses a rule that is not the collection''s' $refused 'removed it'
$peers = @(Get-ConnectedPeer -Port 5985) + @(Get-ConnectedPeer -Port 5986)
Test-That 'GetExtendedTcpTable shows the controller connected to WinRM' ($peers.Count -ge 1) 'no peer'
$domain = Get-DomainFact
Test-That 'Get-DomainFact names the connection account' ([bool]$domain.account) ($domain | ConvertTo-Json -Compress)
$task = '\configmgr.sql_upgrade\lab test watchdog'
$journalFolder = Join-Path -Path $env:TEMP -ChildPath ('configmgr-task-' + [System.Guid]::NewGuid().ToString('N'))
try {
    $null = Register-Watchdog -Name $task -Minutes 60 -JournalPath (Join-Path -Path $journalFolder -ChildPath 'journal.json')
    $found = Get-WatchdogTask -Name $task
    Test-That 'Register-Watchdog registers a task with a time trigger an hour ahead' ($null -ne $found -and -not $found.expired -and [datetime]$found.fires -gt (Get-Date).AddMinutes(55)) ($found | ConvertTo-Json -Compress)
    Test-That 'the watchdog script is written beside the journal' (Test-Path -LiteralPath (Join-Path -Path $journalFolder -ChildPath 'watchdog.ps1')) 'no watchdog.ps1'
    # The script is composed from the text of functions in several utils (Get-WatchdogScriptText finds each with
    # Get-Command from inside _Watchdog): PowerShell's own parser must read it whole, defining every function the
    # watchdog runs the journal's undo with.
    $scriptText = [System.IO.File]::ReadAllText((Join-Path -Path $journalFolder -ChildPath 'watchdog.ps1'))
    $tokens = $null
    $parseErrors = $null
    $ast = [System.Management.Automation.Language.Parser]::ParseInput($scriptText, [ref]$tokens, [ref]$parseErrors)
    Test-That 'the watchdog script parses' (@($parseErrors).Count -eq 0) (@($parseErrors) -join '; ')
    $defined = @($ast.FindAll({ param($node) $node -is [System.Management.Automation.Language.FunctionDefinitionAst] }, $true) |
            ForEach-Object -Process { $_.Name })
    $needed = @('Invoke-ServiceWindowWatchdog', 'Test-UndoOp', 'Invoke-WatchdogServiceOp', 'Invoke-RemoveRuleOp',
        'Invoke-SetProfileOp', 'Remove-IsolationRule', 'Set-FirewallProfileState', 'Get-FirewallProfileBit',
        'Invoke-NativeCommand')
    $missing = @($needed | Where-Object -FilterScript { $defined -notcontains $_ })
    Test-That 'the watchdog script defines every function it runs' ($missing.Count -eq 0) ($missing -join ', ')
}
finally {
    Invoke-ServiceOp -Op @{ op = 'remove_watchdog'; name = $task } -TimeoutSeconds 30
    Remove-Item -LiteralPath $journalFolder -Recurse -Force -ErrorAction SilentlyContinue
}
Test-That 'remove_watchdog deletes the task' ($null -eq (Get-WatchdogTask -Name $task)) 'still registered'

$module.Result.checks = $checks
$module.Result.failures = $failures
$module.ExitJson()
