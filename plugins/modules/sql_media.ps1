#!powershell

# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

#AnsibleRequires -CSharpUtil Ansible.Basic
#AnsibleRequires -PowerShell ansible_collections.ansible.windows.plugins.module_utils.WebRequest

# Thin executor of sql_media (KB 256202 step 1). The action plugin (plugins/action/sql_media.py) decides; this
# script reads and moves bytes:
#   _phase=gather   dest as found (its marker, the hashes of the files its manifest lists, setup.exe's version,
#                   a product key in the media), the chunks already in dest.partial\chunks, the volume's free
#                   space; with _prepare, creates dest.partial\chunks for the controller's chunks.
#   _phase=stage    puts the source in dest.partial\files (joins the controller's chunks, downloads the URL, or
#                   copies from the share with the given credentials) and returns each file's SHA-256. A pull
#                   from a URL or a share stops after _slice seconds with Result.pending (bytes so far, of all),
#                   so the controller can print its progress; _resume goes on from the bytes already in
#                   dest.partial\files (a range request to the web server, an offset into the share's file).
#   _phase=commit   extracts an ISO (Mount-DiskImage: runs before the window, while WMI runs), writes the marker,
#                   moves the media to dest, removes dest.partial.
#   _phase=discard  removes dest.partial (media that did not hash right never reaches dest).
# Not WMI-free (Mount-DiskImage is CIM): step 1 runs before step 3.

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

$spec = @{
    options = @{
        dest = @{ type = 'str'; required = $true }
        src = @{ type = 'str' }
        url = @{ type = 'str' }
        url_username = @{ type = 'str' }
        url_password = @{ type = 'str'; no_log = $true }
        validate_certs = @{ type = 'bool'; default = $true }
        share_path = @{ type = 'str' }
        share_user = @{ type = 'str' }
        share_password = @{ type = 'str'; no_log = $true }
        checksum = @{ type = 'str' }
        checksum_file = @{ type = 'str' }
        chunk_size_mib = @{ type = 'int'; default = 64 }
        force = @{ type = 'bool'; default = $false }
        _phase = @{ type = 'str'; default = 'gather'; choices = @('gather', 'stage', 'commit', 'discard') }
        _prepare = @{ type = 'bool'; default = $false }
        _source = @{ type = 'str'; choices = @('controller', 'url', 'share') }
        _files = @{
            type = 'list'; elements = 'dict'; default = @()
            options = @{
                name = @{ type = 'str'; required = $true }
                chunks = @{ type = 'list'; elements = 'str'; default = @() }
            }
        }
        _file_name = @{ type = 'str' }
        _space_needed = @{ type = 'int'; default = 0 }
        _iso = @{ type = 'bool'; default = $false }
        _marker = @{ type = 'str' }
        _slice = @{ type = 'int'; default = 0 }
        _resume = @{ type = 'bool'; default = $false }
    }
    supports_check_mode = $true
}

$module = [Ansible.Basic.AnsibleModule]::Create($args, $spec)
$dest = $module.Params.dest
$partial = $dest + '.partial'
$chunkDir = Join-Path -Path $partial -ChildPath 'chunks'
$filesDir = Join-Path -Path $partial -ChildPath 'files'
$mediaDir = Join-Path -Path $partial -ChildPath 'media'
$markerDir = Join-Path -Path $dest -ChildPath '.configmgr_sql_upgrade'

Function Get-Sha256 {
    param ([Parameter(Mandatory = $true)][string]$Path)
    (Get-FileHash -LiteralPath $Path -Algorithm SHA256).Hash.ToLowerInvariant()
}

Function Get-RelativeFile {
    <#
    .SYNOPSIS
    Every file below Root as its relative path (the marker folder left out).
    #>
    param ([Parameter(Mandatory = $true)][string]$Root)
    $full = (Get-Item -LiteralPath $Root).FullName.TrimEnd('\') + '\'
    foreach ($file in Get-ChildItem -LiteralPath $Root -Recurse -Force -File) {
        $relative = $file.FullName.Substring($full.Length)
        if (-not $relative.StartsWith('.configmgr_sql_upgrade\', [System.StringComparison]::OrdinalIgnoreCase)) {
            @{ name = $relative; path = $file.FullName; size = $file.Length }
        }
    }
}

Function Get-MediaFact {
    <#
    .SYNOPSIS
    setup.exe's ProductVersion (its version resource) and whether x64\DefaultSetup.ini carries a product key
    (PID=); the key itself is never returned.
    #>
    param ([Parameter(Mandatory = $true)][string]$Root)
    $fact = @{ setup_version = $null; product_key_in_media = $false }
    $setup = Join-Path -Path $Root -ChildPath 'setup.exe'
    if (Test-Path -LiteralPath $setup -PathType Leaf) {
        $fact.setup_version = [System.Diagnostics.FileVersionInfo]::GetVersionInfo($setup).ProductVersion
    }
    $ini = Join-Path -Path $Root -ChildPath 'x64\DefaultSetup.ini'
    if (Test-Path -LiteralPath $ini -PathType Leaf) {
        foreach ($line in [System.IO.File]::ReadAllLines($ini)) {
            if ($line -match '^\s*PID\s*=\s*"?[0-9A-Za-z]{5}(-[0-9A-Za-z]{5}){4}"?\s*$') {
                $fact.product_key_in_media = $true
            }
        }
    }
    return $fact
}

Function Get-FreeByte {
    param ([Parameter(Mandatory = $true)][string]$Path)
    $root = [System.IO.Path]::GetPathRoot($Path)
    return (New-Object -TypeName System.IO.DriveInfo -ArgumentList $root).AvailableFreeSpace
}

Function Assert-FreeSpace {
    param ([Parameter(Mandatory = $true)][long]$Needed)
    $free = Get-FreeByte -Path $dest
    if ($free -lt $Needed) {
        $module.FailJson("the volume of $dest has $([long]($free / 1048576)) MiB free and the media needs " +
            "$([long]($Needed / 1048576)) MiB; nothing was copied. Free space or choose another dest")
    }
}

Function Copy-StreamSlice {
    <#
    .SYNOPSIS
    Copy From to To until From ends ($true) or the time Until has passed ($false); counts the bytes in
    $script:pulled.
    #>
    [OutputType([bool])]
    param (
        [Parameter(Mandatory = $true)][System.IO.Stream]$From,
        [Parameter(Mandatory = $true)][System.IO.Stream]$To,
        [Parameter(Mandatory = $true)][System.DateTime]$Until
    )
    $buffer = New-Object -TypeName 'byte[]' -ArgumentList 1048576
    while ($true) {
        $count = $From.Read($buffer, 0, $buffer.Length)
        if ($count -le 0) {
            return $true
        }
        $To.Write($buffer, 0, $count)
        $script:pulled += $count
        if ([System.DateTime]::UtcNow -gt $Until) {
            return $false
        }
    }
}

Function Remove-Partial {
    if (Test-Path -LiteralPath $partial) {
        Remove-Item -LiteralPath $partial -Recurse -Force
    }
}

if ($module.Params._phase -eq 'gather') {
    $module.Result.dest_exists = Test-Path -LiteralPath $dest -PathType Container
    $module.Result.dest_empty = $true
    $module.Result.marker_text = $null
    $module.Result.manifest_text = $null
    $module.Result.staged_hashes = @{}
    $module.Result.setup_version = $null
    $module.Result.product_key_in_media = $false
    if ($module.Result.dest_exists) {
        $module.Result.dest_empty = $null -eq (Get-ChildItem -LiteralPath $dest -Force | Select-Object -First 1)
        $source = Join-Path -Path $markerDir -ChildPath 'source.json'
        $manifest = Join-Path -Path $markerDir -ChildPath 'files.sha256'
        if (Test-Path -LiteralPath $source -PathType Leaf) {
            $module.Result.marker_text = [System.IO.File]::ReadAllText($source)
        }
        if (Test-Path -LiteralPath $manifest -PathType Leaf) {
            $module.Result.manifest_text = [System.IO.File]::ReadAllText($manifest)
            # Hash what the manifest names as it is on disk now: the controller compares.
            $hashes = @{}
            foreach ($file in Get-RelativeFile -Root $dest) {
                $hashes[$file.name] = Get-Sha256 -Path $file.path
            }
            $module.Result.staged_hashes = $hashes
        }
        $fact = Get-MediaFact -Root $dest
        $module.Result.setup_version = $fact.setup_version
        $module.Result.product_key_in_media = $fact.product_key_in_media
    }
    $chunks = @{}
    if (Test-Path -LiteralPath $chunkDir -PathType Container) {
        foreach ($chunk in Get-ChildItem -LiteralPath $chunkDir -Filter '*.part' -File) {
            $chunks[$chunk.Name] = @{ size = $chunk.Length; sha256 = Get-Sha256 -Path $chunk.FullName }
        }
    }
    $module.Result.partial_chunks = $chunks
    $module.Result.free_bytes = if (Test-Path -LiteralPath ([System.IO.Path]::GetPathRoot($dest))) { Get-FreeByte -Path $dest } else { $null }
    if ($module.Params._prepare -and -not $module.CheckMode) {
        $null = New-Item -Path $chunkDir -ItemType Directory -Force
        $module.Result.changed = $true
    }
    $module.ExitJson()
}

if ($module.CheckMode) {
    # The action plugin sends no change in check mode.
    $module.ExitJson()
}

if ($module.Params._phase -eq 'discard') {
    Remove-Partial
    $module.Result.changed = $true
    $module.ExitJson()
}

if ($module.Params._phase -eq 'stage') {
    $resume = $module.Params._resume -and $module.Params._source -ne 'controller'
    if ((Test-Path -LiteralPath $filesDir) -and -not $resume) {
        Remove-Item -LiteralPath $filesDir -Recurse -Force
    }
    $null = New-Item -Path $filesDir -ItemType Directory -Force
    $module.Result.changed = $true
    $source = $module.Params._source
    $begun = [System.DateTime]::UtcNow
    $until = if ($module.Params._slice -gt 0) { $begun.AddSeconds($module.Params._slice) } else { [System.DateTime]::MaxValue }
    $script:pulled = [long]0
    if ($source -eq 'controller') {
        # Join the chunks the controller put in dest.partial\chunks, in its order.
        foreach ($file in $module.Params._files) {
            $target = Join-Path -Path $filesDir -ChildPath $file.name
            $null = New-Item -Path (Split-Path -Path $target -Parent) -ItemType Directory -Force
            $out = [System.IO.File]::Create($target)
            try {
                foreach ($name in $file.chunks) {
                    $in = [System.IO.File]::OpenRead((Join-Path -Path $chunkDir -ChildPath $name))
                    try {
                        $in.CopyTo($out)
                    }
                    finally {
                        $in.Dispose()
                    }
                }
                $out.Flush($true)
            }
            finally {
                $out.Dispose()
            }
        }
        Remove-Item -LiteralPath $chunkDir -Recurse -Force
    }
    elseif ($source -eq 'url') {
        # ansible.windows' WebRequest util (proxy, certificates, redirects as win_get_url has them).
        $request = Get-AnsibleWindowsWebRequest -Uri $module.Params.url -UrlUsername $module.Params.url_username `
            -UrlPassword $module.Params.url_password -ValidateCerts $module.Params.validate_certs -UrlTimeout 60
        $target = Join-Path -Path $filesDir -ChildPath $module.Params._file_name
        $offset = [long]0
        if ($resume -and (Test-Path -LiteralPath $target -PathType Leaf)) {
            $offset = (Get-Item -LiteralPath $target).Length
        }
        if ($offset -gt 0 -and $request -is [System.Net.HttpWebRequest]) {
            $request.AddRange($offset)  # Range: bytes=<offset>- (RFC 9110 section 14); 206 answers with the rest
        }
        Invoke-AnsibleWindowsWebRequest -Module $module -Request $request -Script {
            param ([System.Net.WebResponse]$Response, [System.IO.Stream]$Stream)
            $http = $Response -is [System.Net.HttpWebResponse]
            # A 200 to a range request is the whole file again: start over.
            $start = if ($http -and [int]$Response.StatusCode -eq 206) { $offset } else { [long]0 }
            $total = if ($Response.ContentLength -ge 0) { $start + $Response.ContentLength } else { [long]-1 }
            if ($start -eq 0 -and $Response.ContentLength -gt 0) {
                Assert-FreeSpace -Needed ($Response.ContentLength * $module.Params._space_needed)
            }
            # Slices only where the server can resume (Accept-Ranges: bytes) and the size is known.
            $ranges = $http -and $total -gt 0 -and [string]$Response.Headers['Accept-Ranges'] -eq 'bytes'
            $mode = if ($start -gt 0) { [System.IO.FileMode]::Append } else { [System.IO.FileMode]::Create }
            $out = New-Object -TypeName System.IO.FileStream -ArgumentList @($target, $mode, [System.IO.FileAccess]::Write)
            try {
                $ended = Copy-StreamSlice -From $Stream -To $out -Until $(if ($ranges) { $until } else { [System.DateTime]::MaxValue })
                $out.Flush($true)
                if (-not $ended -and $out.Length -lt $total) {
                    $module.Result.pending = @{ bytes_done = $out.Length; bytes_total = $total }
                }
            }
            finally {
                $out.Dispose()
            }
        }
    }
    else {
        # No double hop: the share is reached with the credentials given, as a drive of this session only.
        $path = $module.Params.share_path
        $parts = $path.TrimStart('\').Split('\')
        $root = '\\' + $parts[0] + '\' + $parts[1]
        $driveArgs = @{ Name = 'CfgMgrSqlMedia'; PSProvider = 'FileSystem'; Root = $root; Scope = 'Script' }
        if ($module.Params.share_user) {
            $secure = ConvertTo-SecureString -String ([string]$module.Params.share_password) -AsPlainText -Force
            $driveArgs.Credential = New-Object -TypeName System.Management.Automation.PSCredential -ArgumentList @(
                $module.Params.share_user, $secure)
        }
        $null = New-PSDrive @driveArgs
        try {
            $inside = 'CfgMgrSqlMedia:\' + (($parts | Select-Object -Skip 2) -join '\')
            $item = Get-Item -LiteralPath $inside
            # FileInfo.FullName is the UNC path: the drive's credentials hold for the session's SMB connection.
            $files = if ($item.PSIsContainer) {
                @(Get-ChildItem -LiteralPath $inside -Recurse -File | Sort-Object -Property FullName)
            }
            else {
                @($item)
            }
            $size = [long]0
            foreach ($file in $files) {
                $size += $file.Length
            }
            if (-not $resume) {
                Assert-FreeSpace -Needed ($size * $module.Params._space_needed)
            }
            $doneBytes = [long]0
            foreach ($file in $files) {
                $relative = if ($item.PSIsContainer) { $file.FullName.Substring($item.FullName.TrimEnd('\').Length + 1) } else { $file.Name }
                $target = Join-Path -Path $filesDir -ChildPath $relative
                $null = New-Item -Path (Split-Path -Path $target -Parent) -ItemType Directory -Force
                $have = if (Test-Path -LiteralPath $target -PathType Leaf) { (Get-Item -LiteralPath $target).Length } else { [long]0 }
                if ($have -gt $file.Length) {
                    $have = [long]0  # not a part of this file: copy it again
                }
                if ($have -lt $file.Length) {
                    if ([System.DateTime]::UtcNow -gt $until) {
                        $module.Result.pending = @{ bytes_done = $doneBytes; bytes_total = $size }
                        break
                    }
                    $in = [System.IO.File]::OpenRead($file.FullName)
                    $out = New-Object -TypeName System.IO.FileStream -ArgumentList @($target, [System.IO.FileMode]::OpenOrCreate, [System.IO.FileAccess]::Write)
                    try {
                        $null = $in.Seek($have, [System.IO.SeekOrigin]::Begin)
                        $out.SetLength($have)
                        $null = $out.Seek($have, [System.IO.SeekOrigin]::Begin)
                        $ended = Copy-StreamSlice -From $in -To $out -Until $until
                        $out.Flush($true)
                        $have = $out.Length
                    }
                    finally {
                        $out.Dispose()
                        $in.Dispose()
                    }
                    if (-not $ended) {
                        $module.Result.pending = @{ bytes_done = $doneBytes + $have; bytes_total = $size }
                        break
                    }
                }
                $doneBytes += $have
            }
        }
        finally {
            Remove-PSDrive -Name 'CfgMgrSqlMedia' -Scope 'Script'
        }
    }
    if ($module.Result.ContainsKey('pending')) {
        # The next slice goes on from here; the hashes are taken once every byte is in.
        $module.Result.pending.seconds = [System.Math]::Round(([System.DateTime]::UtcNow - $begun).TotalSeconds, 1)
        $module.Result.pending.bytes_pulled = $script:pulled
        $module.ExitJson()
    }
    $hashes = @{}
    $total = [long]0
    foreach ($file in Get-RelativeFile -Root $filesDir) {
        $hashes[$file.name] = Get-Sha256 -Path $file.path
        $total += $file.size
    }
    $module.Result.hashes = $hashes
    $module.Result.bytes = $total
    $module.ExitJson()
}

# commit: media (extracted when an ISO) to dest, with its marker.
$module.Result.changed = $true
if (Test-Path -LiteralPath $mediaDir) {
    Remove-Item -LiteralPath $mediaDir -Recurse -Force
}
if ($module.Params._iso) {
    $image = @(Get-ChildItem -LiteralPath $filesDir -File)[0].FullName
    $mounted = Mount-DiskImage -ImagePath $image -StorageType ISO -PassThru
    try {
        $letter = ($mounted | Get-Volume).DriveLetter
        $null = New-Item -Path $mediaDir -ItemType Directory -Force
        Copy-Item -Path ("$($letter):\*") -Destination $mediaDir -Recurse -Force
    }
    finally {
        $null = Dismount-DiskImage -ImagePath $image
    }
    Remove-Item -LiteralPath $filesDir -Recurse -Force
}
else {
    Rename-Item -LiteralPath $filesDir -NewName 'media'
}
# Files copied from an ISO keep its read-only attribute: clear it, or setup's own copies and a later cleanup fail.
foreach ($file in Get-ChildItem -LiteralPath $mediaDir -Recurse -File) {
    $file.Attributes = $file.Attributes -band (-bnot [System.IO.FileAttributes]::ReadOnly)
}
$fact = Get-MediaFact -Root $mediaDir
if ($null -eq $fact.setup_version) {
    Remove-Partial
    $module.FailJson("the source holds no setup.exe with a version at its top: it is not SQL Server media; nothing was staged in $dest")
}
$lines = [System.Collections.Generic.List[string]]@()
foreach ($file in Get-RelativeFile -Root $mediaDir) {
    $lines.Add("$(Get-Sha256 -Path $file.path)  $($file.name)")
}
$marker = Join-Path -Path $mediaDir -ChildPath '.configmgr_sql_upgrade'
$null = New-Item -Path $marker -ItemType Directory -Force
$utf8 = New-Object -TypeName System.Text.UTF8Encoding -ArgumentList $false
[System.IO.File]::WriteAllText((Join-Path -Path $marker -ChildPath 'files.sha256'), (($lines -join "`n") + "`n"), $utf8)
[System.IO.File]::WriteAllText((Join-Path -Path $marker -ChildPath 'source.json'), $module.Params._marker, $utf8)
if (Test-Path -LiteralPath $dest) {
    # Media of this collection that no longer matched (the controller decided to replace it).
    Remove-Item -LiteralPath $dest -Recurse -Force
}
[System.IO.Directory]::Move($mediaDir, $dest)
Remove-Partial
$module.Result.setup_version = $fact.setup_version
$module.Result.product_key_in_media = $fact.product_key_in_media
$module.Result.files = $lines.Count
$module.ExitJson()
