# configmgr:wmi-free
# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# The on-host journal of the service window (KB 256202 steps 2 to 7): where it lives, its protected folder,
# atomic writes, the lock of one apply at a time, the hash the controller's compare-and-swap sends, and the host's
# clock as the journal records it. The text is data: the controller validates it
# (plugins/plugin_utils/_window/journal.py); nothing here interprets it. No WMI.

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

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

Function Get-HostTime {
    [OutputType([string])]
    param ()
    # Invariant culture: ':' in a custom format is the culture's time separator otherwise.
    [System.DateTime]::UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", [System.Globalization.CultureInfo]::InvariantCulture)
}

Export-ModuleMember -Function @(
    'Get-JournalPath',
    'Read-JournalText',
    'Write-JournalText',
    'Get-JournalTrustProblem',
    'Open-JournalLock',
    'Get-JournalHash',
    'Get-HostTime'
)
