# configmgr:wmi-free
# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# KB steps 4 and 6: the firewall (net_isolate's rules and profiles; the watchdog copies its restore handlers).
#AnsibleRequires -PowerShell ansible_collections.configmgr.sql_upgrade.plugins.module_utils._NativeCommand

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

# Windows Firewall through its COM API (HNetCfg.FwPolicy2, HNetCfg.FWRule; netfw.h) and netsh advfirewall,
# never the NetSecurity cmdlets (CIM). Constants: NET_FW_PROFILE2_DOMAIN 1, _PRIVATE 2, _PUBLIC 4, _ALL
# 0x7FFFFFFF; NET_FW_RULE_DIR_IN 1, _OUT 2; NET_FW_ACTION_BLOCK 0; NET_FW_IP_PROTOCOL_TCP 6, _UDP 17, _ANY 256.

$script:IsolationGroup = 'configmgr.sql_upgrade'

Function Get-FirewallProfileBit {
    <#
    .SYNOPSIS
    NET_FW_PROFILE2_DOMAIN 1, _PRIVATE 2, _PUBLIC 4 (netfw.h), by this collection's names of the profiles.
    #>
    [OutputType([int])]
    param ([Parameter(Mandatory = $true)][ValidateSet('domain', 'private', 'public')][string]$ProfileName)
    @{ domain = 1; private = 2; public = 4 }[$ProfileName]
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
    foreach ($name in @('domain', 'private', 'public')) {
        $bit = Get-FirewallProfileBit -ProfileName $name
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
    if ([bool]$policy.FirewallEnabled((Get-FirewallProfileBit -ProfileName $ProfileName)) -eq $Enabled) {
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

Function Invoke-SetProfileOp {
    <#
    .SYNOPSIS
    Turn a firewall profile on or off.
    The handler of the operation 'set_profile' (Invoke-ServiceOp's contract: -Op -TimeoutSeconds -EndHung; it sets
    $Op['result'] and throws naming what failed).
    #>
    param (
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Op,
        [Parameter(Mandatory = $true)][int]$TimeoutSeconds,
        [switch]$EndHung
    )
    $name = [string]$Op['name']
    $Op['result'] = Set-FirewallProfileState -ProfileName $name -Enabled ([bool]$Op['enabled'])
}

Function Invoke-AddRuleOp {
    <#
    .SYNOPSIS
    Add one of this collection's isolation rules.
    The handler of the operation 'add_rule' (Invoke-ServiceOp's contract: -Op -TimeoutSeconds -EndHung; it sets
    $Op['result'] and throws naming what failed).
    #>
    param (
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Op,
        [Parameter(Mandatory = $true)][int]$TimeoutSeconds,
        [switch]$EndHung
    )
    $name = [string]$Op['name']
    $Op['result'] = Add-IsolationRule -Op $Op
}

Function Invoke-RemoveRuleOp {
    <#
    .SYNOPSIS
    Remove one of this collection's isolation rules.
    The handler of the operation 'remove_rule' (Invoke-ServiceOp's contract: -Op -TimeoutSeconds -EndHung; it sets
    $Op['result'] and throws naming what failed).
    #>
    param (
        [Parameter(Mandatory = $true)][System.Collections.IDictionary]$Op,
        [Parameter(Mandatory = $true)][int]$TimeoutSeconds,
        [switch]$EndHung
    )
    $name = [string]$Op['name']
    $Op['result'] = Remove-IsolationRule -Name $name
}

Export-ModuleMember -Function @(
    'Get-FirewallProfileBit',
    'Set-FirewallProfileState',
    'Remove-IsolationRule',
    'Get-FirewallState',
    'Invoke-SetProfileOp',
    'Invoke-AddRuleOp',
    'Invoke-RemoveRuleOp'
)
