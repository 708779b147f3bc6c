"""The one list of PowerShell commands and forms that need WMI/CIM (winmgmt).

docs/design.md §3 ("The WMI-free window"): between KB 256202 step 3 (winmgmt stopped and disabled) and step 7
nothing may touch WMI/CIM. Two readers use this module and nothing else:

- the static check (tests/tools/pscheck.py) runs `find_wmi_uses` on every `.ps1` marked with
  `WMI_FREE_MARKER` and fails on any hit;
- the twin's emulation calls `find_wmi_uses` (or `is_wmi_command`) on raw scripts it is sent and makes
  `host.wmi.require(...)` fail while winmgmt is disabled.

Matching works on the tree-sitter-powershell parse tree, so a name inside a comment or inside a plain string
is not a use; code inside `$( ... )` in an expandable string is (PowerShell runs it). Names are
case-insensitive, as PowerShell's command and type resolution is.

This module also holds the small parse helpers (`parse_powershell`, `node_text`, `walk`, `unwrap`) that the
spec extractor (tools/pscontract/) shares, so that both read PowerShell the same way.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import tree_sitter
import tree_sitter_powershell

# The marker comment a WMI-free executor carries in its first 30 lines (see docs in pscheck.py).
WMI_FREE_MARKER = "# configmgr:wmi-free"

# --- Commands ---------------------------------------------------------------------------------------------
# Each entry: exact command name or fnmatch pattern (case-insensitive) -> why it needs winmgmt.

_CIM_WMI_CMDLETS = {
    # CimCmdlets and Microsoft.PowerShell.Management's WMI cmdlets talk to winmgmt directly (DCOM/MI API);
    # with winmgmt disabled they fail with "The service cannot be started ... disabled" (0x80070422).
    "Get-CimInstance": "CimCmdlets: queries winmgmt",
    "Get-CimAssociatedInstance": "CimCmdlets: queries winmgmt",
    "Get-CimClass": "CimCmdlets: queries winmgmt",
    "Invoke-CimMethod": "CimCmdlets: calls a WMI method",
    "Set-CimInstance": "CimCmdlets: writes through winmgmt",
    "New-CimInstance": "CimCmdlets: writes through winmgmt",
    "Remove-CimInstance": "CimCmdlets: writes through winmgmt",
    "Register-CimIndicationEvent": "CimCmdlets: WMI event subscription",
    "New-CimSession": "CimCmdlets: opens a WMI (MI) session",
    "Get-CimSession": "CimCmdlets: WMI (MI) sessions",
    "Remove-CimSession": "CimCmdlets: WMI (MI) sessions",
    "Get-WmiObject": "WMI cmdlet (System.Management)",
    "Invoke-WmiMethod": "WMI cmdlet (System.Management)",
    "Set-WmiInstance": "WMI cmdlet (System.Management)",
    "Remove-WmiObject": "WMI cmdlet (System.Management)",
    "Register-WmiEvent": "WMI cmdlet (System.Management)",
    # Built-in aliases of the above (Windows PowerShell 5.1 `Get-Alias`): the same commands.
    "gcim": "alias of Get-CimInstance",
    "gcai": "alias of Get-CimAssociatedInstance",
    "gcls": "alias of Get-CimClass",
    "icim": "alias of Invoke-CimMethod",
    "scim": "alias of Set-CimInstance",
    "ncim": "alias of New-CimInstance",
    "rcim": "alias of Remove-CimInstance",
    "ncms": "alias of New-CimSession",
    "gcms": "alias of Get-CimSession",
    "rcms": "alias of Remove-CimSession",
    "gwmi": "alias of Get-WmiObject",
    "iwmi": "alias of Invoke-WmiMethod",
    "swmi": "alias of Set-WmiInstance",
    "rwmi": "alias of Remove-WmiObject",
    # The WMI command-line tool is a WMI client like any other.
    "wmic": "WMI command-line client",
    "wmic.exe": "WMI command-line client",
}

_WMI_BACKED_CMDLETS = {
    # Windows PowerShell 5.1 cmdlets whose implementation is a WMI call (documented on each cmdlet's page):
    "Get-ComputerInfo": "reads Win32_* classes through CIM",
    "Get-HotFix": "reads Win32_QuickFixEngineering",
    "Restart-Computer": "calls Win32_OperatingSystem.Win32Shutdown (use shutdown.exe)",
    "Stop-Computer": "calls Win32_OperatingSystem.Win32Shutdown (use shutdown.exe)",
    "Rename-Computer": "calls Win32_ComputerSystem.Rename",
    "Add-Computer": "calls Win32_ComputerSystem.JoinDomainOrWorkgroup",
    "Remove-Computer": "calls Win32_ComputerSystem.UnjoinDomainOrWorkgroup",
    "Test-Connection": "uses Win32_PingStatus in Windows PowerShell 5.1 (use ping.exe)",
    "Test-NetConnection": "NetTCPIP script module over CIM classes (Find-NetRoute)",
}

# CDXML modules: their cmdlets are generated from CIM classes (cmdletization) and every call is a CIM
# operation against winmgmt, e.g. NetSecurity = MSFT_NetFirewallRule in root/StandardCimv2.
_CDXML_PATTERNS = {
    "*-NetFirewall*": "NetSecurity (CDXML over root/StandardCimv2 MSFT_NetFirewall*); use netsh advfirewall",
    "*-NetIPsec*": "NetSecurity (CDXML over root/StandardCimv2); use netsh",
    "*-NetGPO": "NetSecurity (CDXML over root/StandardCimv2)",
    "*-NetAdapter*": "NetAdapter (CDXML over root/StandardCimv2 MSFT_NetAdapter*); use netsh interface",
    "*-NetIPAddress": "NetTCPIP (CDXML over root/StandardCimv2 MSFT_NetIPAddress); use netsh interface ip",
    "*-NetIPInterface": "NetTCPIP (CDXML over root/StandardCimv2)",
    "*-NetIPConfiguration": "NetTCPIP (script over CDXML cmdlets)",
    "*-NetIPv4Protocol": "NetTCPIP (CDXML over root/StandardCimv2)",
    "*-NetIPv6Protocol": "NetTCPIP (CDXML over root/StandardCimv2)",
    "*-NetRoute": "NetTCPIP (CDXML over root/StandardCimv2); use route.exe / netsh",
    "Find-NetRoute": "NetTCPIP (CDXML over root/StandardCimv2)",
    "*-NetNeighbor": "NetTCPIP (CDXML over root/StandardCimv2)",
    "*-NetTCPConnection": "NetTCPIP (CDXML over root/StandardCimv2); use netstat.exe",
    "*-NetTCPSetting": "NetTCPIP (CDXML over root/StandardCimv2)",
    "*-NetUDPEndpoint": "NetTCPIP (CDXML over root/StandardCimv2)",
    "*-NetUDPSetting": "NetTCPIP (CDXML over root/StandardCimv2)",
    "*-NetPrefixPolicy": "NetTCPIP (CDXML over root/StandardCimv2)",
    "*-NetTransportFilter": "NetTCPIP (CDXML over root/StandardCimv2)",
    "*-NetCompartment": "NetTCPIP (CDXML over root/StandardCimv2)",
    "*-NetConnectionProfile": "NetConnection (CDXML over root/StandardCimv2)",
    "*-NetLbfo*": "NetLbfo (CDXML over root/StandardCimv2)",
    "*-NetNat*": "NetNat (CDXML over root/StandardCimv2)",
    "*-NetQos*": "NetQos (CDXML over root/StandardCimv2)",
    "*-DnsClient*": "DnsClient (CDXML over root/StandardCimv2 MSFT_DnsClient*)",
    "*-Disk": "Storage (CDXML over root/Microsoft/Windows/Storage MSFT_Disk)",
    "Initialize-Disk": "Storage (CDXML over root/Microsoft/Windows/Storage)",
    "*-DiskImage": "Storage (CDXML MSFT_DiskImage): Mount-DiskImage needs winmgmt; stage media as files",
    "*-Volume": "Storage (CDXML over root/Microsoft/Windows/Storage MSFT_Volume)",
    "*-Partition*": "Storage (CDXML over root/Microsoft/Windows/Storage MSFT_Partition)",
    "*-PhysicalDisk*": "Storage (CDXML over root/Microsoft/Windows/Storage)",
    "*-VirtualDisk*": "Storage (CDXML over root/Microsoft/Windows/Storage)",
    "*-StoragePool*": "Storage (CDXML over root/Microsoft/Windows/Storage)",
    "*-StorageSubSystem*": "Storage (CDXML over root/Microsoft/Windows/Storage)",
    "*-StorageJob": "Storage (CDXML over root/Microsoft/Windows/Storage)",
    "*-BitLocker*": "BitLocker (CIM Win32_EncryptableVolume)",
    "*-ScheduledTask*": "ScheduledTasks (CDXML over root/Microsoft/Windows/TaskScheduler); use schtasks.exe",
    "*-ClusteredScheduledTask": "ScheduledTasks (CDXML over root/Microsoft/Windows/TaskScheduler)",
    "*-Smb*": "SmbShare (CDXML over root/Microsoft/Windows/SMB MSFT_Smb*); use net share",
    "*-Printer*": "PrintManagement (CDXML over root/StandardCimv2 MSFT_Printer)",
    "*-WindowsFeature": "ServerManager (CIM MSFT_ServerManager* in root/Microsoft/Windows/ServerManager)",
}

# --- Types and COM objects ----------------------------------------------------------------------------------
# Type accelerators of Windows PowerShell: [wmi] = ManagementObject, [wmiclass] = ManagementClass,
# [wmisearcher] = ManagementObjectSearcher, [ciminstance]/[cimclass]/[cimsession]/[cimtype]/[cimconverter]
# = Microsoft.Management.Infrastructure.*.
_TYPE_ACCELERATORS = {"wmi", "wmiclass", "wmisearcher", "ciminstance", "cimclass", "cimsession"}
# System.Management is the .NET WMI client; System.Management.Automation is PowerShell itself (not WMI).
# Microsoft.Management.Infrastructure is the MI (CIM) client API.
_TYPE_NAMESPACES = ("system.management.", "management.", "microsoft.management.infrastructure.")
_NOT_WMI_NAMESPACES = ("system.management.automation", "management.automation")
# New-Object -ComObject WbemScripting.SWbemLocator etc.: the scripting API of WMI.
_COM_PREFIXES = ("wbemscripting.",)

FIX = "use the SCM (.NET ServiceController, sc.exe), netsh, schtasks.exe or shutdown.exe instead"


@dataclass(frozen=True)
class WmiUse:
    """One WMI/CIM use: the command or type as written, 1-based line and column, and why it needs WMI."""

    command: str
    line: int
    column: int
    reason: str = ""


# --- Parse helpers shared with tools/pscontract/ ----------------------------------------------------------------


@lru_cache(maxsize=1)
def _parser() -> tree_sitter.Parser:
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))


def parse_powershell(source: str) -> tree_sitter.Tree:
    """Parse PowerShell source text with tree-sitter-powershell."""
    return _parser().parse(source.encode("utf-8"))


def node_text(node: tree_sitter.Node) -> str:
    return (node.text or b"").decode("utf-8", errors="replace")


def position(node: tree_sitter.Node) -> tuple[int, int]:
    """1-based (line, column) of a node; column counts characters of the line, as editors do."""
    row, col_bytes = node.start_point
    line_start = node.start_byte - col_bytes
    return row + 1, _char_col(node, line_start, col_bytes)


def _char_col(node: tree_sitter.Node, line_start: int, col_bytes: int) -> int:
    root = node
    while root.parent is not None:
        root = root.parent
    src = root.text or b""
    return len(src[line_start:line_start + col_bytes].decode("utf-8", errors="replace")) + 1


def walk(node: tree_sitter.Node) -> Iterator[tree_sitter.Node]:
    """Every node below and including `node`, in document order (iterative: deep trees are common)."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))


def unwrap(node: tree_sitter.Node) -> tree_sitter.Node:
    """Descend through the grammar's single-child wrapper chain (pipeline > ... > unary_expression)."""
    while len(node.named_children) == 1 and node.type not in _KEEP_TYPES:
        child = node.named_children[0]
        if (child.start_byte, child.end_byte) != (node.start_byte, node.end_byte):
            break
        node = child
    return node


# Nodes whose single child is not the whole meaning: keep them so callers can see what they are.
_KEEP_TYPES = {"array_expression", "hash_literal_expression", "sub_expression", "expression_with_unary_operator",
               "string_literal", "variable", "parenthesized_expression", "script_block_expression"}


# --- Matching -----------------------------------------------------------------------------------------------


def wmi_command_reason(name: str) -> str | None:
    """Why command `name` needs WMI, or None. Module-qualified names (`CimCmdlets\\Get-CimInstance`) count."""
    bare = name.strip().rsplit("\\", 1)[-1].lower()
    for table in (_CIM_WMI_CMDLETS, _WMI_BACKED_CMDLETS):
        for command, why in table.items():
            if bare == command.lower():
                return why
    for pattern, why in _CDXML_PATTERNS.items():
        if fnmatch.fnmatchcase(bare, pattern.lower()):
            return why
    return None


def is_wmi_command(name: str) -> bool:
    return wmi_command_reason(name) is not None


def wmi_type_reason(type_name: str) -> str | None:
    """Why a .NET type (as written in `[...]` or to New-Object) needs WMI, or None."""
    name = type_name.strip().strip("[]").strip().lower()
    if name in _TYPE_ACCELERATORS:
        return f"[{name}] is a WMI/CIM type accelerator"
    if name.startswith(_NOT_WMI_NAMESPACES):
        return None
    if name.startswith(_TYPE_NAMESPACES):
        return "System.Management / MI types are WMI clients"
    return None


def wmi_com_reason(prog_id: str) -> str | None:
    if prog_id.strip().strip("'\"").lower().startswith(_COM_PREFIXES):
        return "WbemScripting COM objects are the WMI scripting API"
    return None


def find_wmi_uses(source: str) -> list[WmiUse]:
    """Every WMI/CIM use in PowerShell `source`, in document order."""
    uses: list[WmiUse] = []
    for node in walk(parse_powershell(source).root_node):
        if node.type == "command":
            uses.extend(_command_uses(node))
        elif node.type == "type_literal":
            uses.extend(_type_use(node))
    return uses


def _use(node: tree_sitter.Node, text: str, reason: str) -> WmiUse:
    line, column = position(node)
    return WmiUse(text, line, column, reason)


def _type_use(node: tree_sitter.Node) -> list[WmiUse]:
    spec = next((c for c in node.named_children if c.type == "type_spec"), None)
    text = node_text(spec) if spec is not None else node_text(node)
    reason = wmi_type_reason(text)
    return [_use(node, node_text(node), reason)] if reason else []


def _command_name(command: tree_sitter.Node) -> tuple[tree_sitter.Node, str] | None:
    """The node and literal name of a command: `Get-X`, `& 'Get-X'`, `& "Get-X"` (no interpolation)."""
    for child in command.named_children:
        if child.type == "command_name":
            return child, node_text(child)
        if child.type == "command_name_expr":
            inner = unwrap(child)
            if inner.type == "string_literal" and not _has_interpolation(inner):
                return child, node_text(inner)[1:-1]
            return None
    return None


def _has_interpolation(node: tree_sitter.Node) -> bool:
    return any(n.type in ("variable", "sub_expression") for n in walk(node))


def _command_uses(command: tree_sitter.Node) -> list[WmiUse]:
    found = _command_name(command)
    if found is None:
        return []
    name_node, name = found
    reason = wmi_command_reason(name)
    if reason:
        return [_use(name_node, name, reason)]
    if name.lower() in ("new-object", "microsoft.powershell.utility\\new-object"):
        return _new_object_uses(command)
    return []


def _new_object_uses(command: tree_sitter.Node) -> list[WmiUse]:
    """`New-Object [-TypeName] System.Management.X` and `New-Object -ComObject WbemScripting.X`."""
    elements = next((c for c in command.named_children if c.type == "command_elements"), None)
    if elements is None:
        return []
    uses: list[WmiUse] = []
    last_param = ""
    for element in elements.named_children:
        if element.type == "command_argument_sep":
            continue
        if element.type == "command_parameter":
            last_param = node_text(element).lstrip("-").rstrip(":").lower()
            continue
        value = node_text(unwrap(element)).strip("'\"")
        is_com = "comobject".startswith(last_param) and len(last_param) >= 2
        reason = wmi_com_reason(value) if is_com else wmi_type_reason(value)
        if reason:
            uses.append(_use(element, value, reason))
        last_param = ""
    return uses
