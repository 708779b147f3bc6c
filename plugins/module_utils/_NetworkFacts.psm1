# configmgr:wmi-free
# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# What net_isolate reads to keep the controller and the domain reachable through an isolation: the connections to
# the WinRM listener (TcpConnections.cs, the IP Helper API) and the domain's controllers (nltest).
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._NativeCommand
#AnsibleRequires -CSharpUtil ansible_collections.configmgr.sql_upgrade.plugins.module_utils.TcpConnections

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

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

Export-ModuleMember -Function @(
    'Get-ConnectedPeer',
    'Get-DomainFact'
)
