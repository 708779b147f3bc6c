"""Static checks for the collection's PowerShell (`.ps1` / `.psm1`), standing in for what pwsh would catch.

Usage: python tests/tools/pscheck.py [PATH ...]     (default: plugins/ and roles/ of the repository)
Exit status 0 when clean, 1 when any finding, 2 on bad usage. One finding per line:
    FILE:LINE:COLUMN: RULE: message

Rules
- syntax:     the file parses with tree-sitter-powershell 0.26.4 without ERROR or MISSING nodes.
              The grammar rejects a few valid forms (TOOLING.md): `-cin`/`-iin`/`-cnotin`/`-inotin`,
              a size suffix right of an operator (`$x -lt 10GB`), bracketed generic arguments
              (`[List[[string]]]`), `[Flags()] enum`, a one-line `switch` with `default`, a script that is
              only a `param()` block. There is no allow-list: the collection's code avoids those forms
              (write `10 * 1024 * 1024 * 1024`, `[List[string]]`, `-notcontains` ...).
- wmi-free:   a file whose first 30 lines hold the comment `# configmgr:wmi-free` runs while winmgmt is
              stopped and disabled (KB 256202 steps 3-7); any WMI/CIM use from pscontract.wmi_rules fails.
- wmi-free-requires: what a wmi-free file loads with `#AnsibleRequires` / `#Requires -Module` must be
              WMI-free too: this collection's `.psm1` utils carry the marker (and so are checked above),
              its `.cs` utils name no WMI/MI namespace in code nor in a `//AssemblyReference -Name|-Type`
              header line (Ansible's AddType compiles against those), and a util from elsewhere must be one of
              KNOWN_WMI_FREE_UTILS (read and found WMI-free: the SCM API, CreateProcess, HttpWebRequest).
              Any other way of loading code is refused by name, read from the parse tree (comments and
              strings do not count): Import-Module, `using module`, dot-sourcing (`. $path`, `. .\\x.ps1`),
              running a `.ps1` file, Add-Type -Path / -LiteralPath, Add-Type -AssemblyName /
              -ReferencedAssemblies naming System.Management or Microsoft.Management.Infrastructure (or naming
              assemblies through a variable), [Reflection.Assembly]::Load*(). Load utils through
              #AnsibleRequires so the check can follow them.
- requires:   a module (`plugins/modules/*.ps1`) carries `#AnsibleRequires -CSharpUtil Ansible.Basic`.
- strict:     a module calls `Set-StrictMode -Version ...`.
- eap:        a module sets `$ErrorActionPreference = 'Stop'`.
- alias:      no built-in alias (`%`, `?`, `gci`, `sc` = Set-Content!, ...) anywhere: write the full name
              (`sc.exe` for the service control tool).
- iex:        no `Invoke-Expression` / `iex` anywhere: parameters are data, never code.
- spec:       (command line only) each module's Ansible.Basic spec equals its `.py` DOCUMENTATION and the
              result keys it sets are in RETURN: see tests/tools/psspec.py and pscontract.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import tree_sitter  # noqa: E402

from pscontract import module_file_problems  # noqa: E402
from pscontract.wmi_rules import (  # noqa: E402
    FIX,
    WMI_FREE_MARKER,
    find_wmi_uses,
    node_text,
    parse_powershell,
    position,
    walk,
)

Node = tree_sitter.Node
REPO = Path(__file__).resolve().parents[2]
DEFAULT_PATHS = ("plugins", "roles", "tests/integration")
MARKER_LINES = 30

# Built-in aliases of Windows PowerShell 5.1 (`Get-Alias` on Windows Server 2019), lower case.
# `sc` is Set-Content there, not the service control tool: a classic trap, write `sc.exe`.
ALIASES = frozenset("""
% ? ac asnp cat cd chdir clc clear clhy cli clp cls clv cnsn compare copy cp cpi cpp curl cvpa dbp del diff
dir dnsn ebp echo epal epcsv epsn erase etsn exsn fc fhx fl foreach ft fw gal gbp gc gcb gci gcm gcs gdr ghy
gi gjb gl gm gmo gp gps gpv group gsn gsnp gsv gu gv gwmi h history icm iex ihy ii ipal ipcsv ipmo ipsn irm
ise iwmi iwr kill lp ls man md measure mi mount move mp mv nal ndr ni nmo npssc nsn nv ogv oh popd ps pushd
pwd r rbp rcjb rcsn rd rdr ren ri rjb rm rmdir rmo rni rnp rp rsn rsnp rujb rv rvpa rwmi sajb sal saps sasv
sbp sc select set shcm si sl sleep sls sort sp spjb spps spsv start sujb sv swmi tee trcm type wget where wjb
write gcim gcls icim scim ncim rcim ncms gcms rcms gcai
""".split())
IEX = frozenset({"invoke-expression", "iex", "microsoft.powershell.utility\\invoke-expression"})
REQUIRES_RE = re.compile(r"^#AnsibleRequires\s+-CSharpUtil\s+Ansible\.Basic\b", re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    column: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.rule}: {self.message}"


def ps_files(paths: Iterable[Path]) -> list[Path]:
    """Every .ps1/.psm1 under `paths` (files given directly are taken as they are), sorted."""
    found: set[Path] = set()
    for path in paths:
        if path.is_file():
            found.add(path)
        elif path.is_dir():
            found.update(p for p in path.rglob("*") if p.suffix.lower() in (".ps1", ".psm1") and p.is_file())
    return sorted(found)


def is_wmi_free(source: str) -> bool:
    head = source.splitlines()[:MARKER_LINES]
    return any(line.strip().lower() == WMI_FREE_MARKER for line in head)


def is_module(path: Path) -> bool:
    return path.suffix.lower() == ".ps1" and path.parent.name == "modules" and path.parent.parent.name == "plugins"


def syntax_findings(path: str, source: str) -> list[Finding]:
    out: list[Finding] = []
    for node in walk(parse_powershell(source).root_node):
        if node.is_error or node.is_missing:
            line, col = position(node)
            kind = "missing" if node.is_missing else "syntax error at"
            text = node.type if node.is_missing else node_text(node).splitlines()[0][:60] if node_text(node) else ""
            out.append(Finding(path, line, col, "syntax", f"{kind} {text!r} (tree-sitter-powershell rejects this)"))
    return out


def wmi_findings(path: str, source: str) -> list[Finding]:
    if not is_wmi_free(source):
        return []
    return [Finding(path, u.line, u.column, "wmi-free",
                    f"{u.command} needs WMI/CIM ({u.reason}) but this file is marked '{WMI_FREE_MARKER}': {FIX}")
            for u in find_wmi_uses(source)]


# Utils from outside this collection that a wmi-free file may load, each read and found free of WMI/CIM.
KNOWN_WMI_FREE_UTILS = {
    "ansible.basic": "ansible-core's module wrapper (argument parsing, JSON out)",
    "ansible_collections.ansible.windows.plugins.module_utils.scmanager": "advapi32 Service Control Manager API",
    "ansible_collections.ansible.windows.plugins.module_utils.process": "CreateProcess / CreateProcessAsUser",
    "ansible_collections.ansible.windows.plugins.module_utils.webrequest": "System.Net.HttpWebRequest",
}
UTILS_DIR = REPO / "plugins" / "module_utils"
OWN_UTIL_PREFIX = "ansible_collections.configmgr.sql_upgrade.plugins.module_utils."
REQUIRE_RE = re.compile(r"^#(?:AnsibleRequires\s+-(CSharpUtil|PowerShell)|Requires\s+-Module)\s+(\S+)", re.I | re.M)
# .NET WMI (System.Management, not System.Management.Automation) and the MI/CIM client API.
CS_WMI_RE = re.compile(r"\bSystem\.Management\b(?!\.Automation)|\bMicrosoft\.Management\.Infrastructure\b|"
                       r"\bManagement(?:Object|Class|Scope)\w*\b")


# Ansible's C# util header: Ansible.ModuleUtils.AddType's own pattern (it scans the whole file, `//` included),
# `//AssemblyReference -Name System.Management.dll [-CLR Core|Framework]` or `-Type Some.Type.Name`.
CS_ASSEMBLY_REF_RE = re.compile(r"//\s*AssemblyReference\s+-(?:Name|Type)\s+([\w.]*)(?:\s+-CLR\s+(?:Core|Framework))?")
LOAD_FIX = "load utils through #AnsibleRequires so the check can follow them"


def requires_findings(path: str, source: str, utils_dir: Path) -> list[Finding]:
    """In a wmi-free file, everything it loads must be WMI-free as well (see the module docstring)."""
    if not is_wmi_free(source):
        return []
    out: list[Finding] = []
    for match in REQUIRE_RE.finditer(source):
        kind, name = (match.group(1) or "module").lower(), match.group(2)
        line = source.count("\n", 0, match.start()) + 1
        if name.lower() in KNOWN_WMI_FREE_UTILS:
            continue
        if not name.lower().startswith(OWN_UTIL_PREFIX):
            out.append(Finding(path, line, 1, "wmi-free-requires",
                               f"{name} is not known to be WMI-free: read it, then add it to KNOWN_WMI_FREE_UTILS"))
            continue
        util = utils_dir / (name[len(OWN_UTIL_PREFIX):] + (".cs" if kind == "csharputil" else ".psm1"))
        if not util.is_file():
            out.append(Finding(path, line, 1, "wmi-free-requires", f"{name}: no such util {util.name}"))
        elif util.suffix == ".psm1" and not is_wmi_free(util.read_text(encoding="utf-8-sig")):
            out.append(Finding(path, line, 1, "wmi-free-requires",
                               f"{util.name} is loaded in the WMI-free window but lacks '{WMI_FREE_MARKER}'"))
        elif util.suffix == ".cs":
            out.extend(Finding(path, line, 1, "wmi-free-requires", f"{util.name}:{cs_line} {what}: {FIX}")
                       for cs_line, what in cs_wmi_uses(util.read_text(encoding="utf-8-sig")))
    return out + [Finding(path, line, col, "wmi-free-requires", f"{what}, which this check cannot follow: {LOAD_FIX}")
                  for line, col, what in unfollowed_loads(source)]


def cs_wmi_uses(text: str) -> list[tuple[int, str]]:
    """(line, what) for each WMI use in C# util `text`: code outside `//` comments naming a WMI/MI namespace,
    and `//AssemblyReference` header lines (a comment to C#, but Ansible's AddType compiles against them)."""
    found: list[tuple[int, str]] = []
    for cs_line, line_text in enumerate(text.splitlines(), 1):
        code = line_text.split("//", 1)[0]
        if CS_WMI_RE.search(code):
            found.append((cs_line, f"uses WMI ({code.strip()})"))
        for ref in CS_ASSEMBLY_REF_RE.finditer(line_text):
            if CS_WMI_RE.search(ref.group(1)):
                found.append((cs_line, f"references a WMI assembly ({ref.group(0).strip()})"))
    return found


# Add-Type's parameters (Windows PowerShell 5.1, plus the common ones) and aliases, to resolve `-Pat` or `-AN`
# as PowerShell's binder does: an alias exactly, else the one parameter the name is a prefix of.
_ADD_TYPE_PARAMS = ("typedefinition", "name", "memberdefinition", "namespace", "usingnamespace", "path",
                    "literalpath", "assemblyname", "language", "referencedassemblies", "codedomprovider",
                    "compilerparameters", "outputassembly", "outputtype", "passthru", "ignorewarnings", "verbose",
                    "debug", "erroraction", "warningaction", "informationaction", "errorvariable",
                    "warningvariable", "informationvariable", "outvariable", "outbuffer", "pipelinevariable")
_ADD_TYPE_SWITCHES = frozenset({"passthru", "ignorewarnings", "verbose", "debug"})
_ADD_TYPE_ALIASES = {"an": "assemblyname", "ra": "referencedassemblies", "pspath": "literalpath",
                     "lp": "literalpath", "oa": "outputassembly", "ot": "outputtype"}
_IMPORT_MODULE = frozenset({"import-module", "ipmo"})
_SCRIPT_SUFFIXES = (".ps1", ".psm1")


def _add_type_param(text: str) -> str:
    name = text.lstrip("-").rstrip(":").lower()
    if name in _ADD_TYPE_ALIASES:
        return _ADD_TYPE_ALIASES[name]
    candidates = [p for p in _ADD_TYPE_PARAMS if p.startswith(name)]
    return candidates[0] if len(candidates) == 1 and name else ""


def _literal_names(value: Node) -> list[str] | None:
    """The names a literal argument (bare word, string, list of them, `@(...)` of them) gives; None if any part
    is an expression the check cannot evaluate (a variable, a sub-expression, an interpolated string)."""
    names: list[str] = []
    for node in walk(value):
        if node.type in ("variable", "sub_expression", "invokation_expression", "member_access"):
            return None
        if node.type == "generic_token":
            names.append(node_text(node))
        elif node.type == "string_literal":
            names.append(node_text(node)[1:-1])
    return names


def _add_type_loads(elements: Node) -> Iterator[tuple[Node, str]]:
    """Add-Type arguments that load code: -Path / -LiteralPath, and -AssemblyName / -ReferencedAssemblies naming
    System.Management or Microsoft.Management.Infrastructure (or naming assemblies through an expression)."""
    param_node: Node | None = None
    for element in elements.named_children:
        if element.type == "command_argument_sep":
            continue
        if element.type == "command_parameter":
            text = node_text(element)
            is_switch = _add_type_param(text) in _ADD_TYPE_SWITCHES and not text.endswith(":")
            param_node = None if is_switch else element
            continue
        param = _add_type_param(node_text(param_node)) if param_node is not None else ""
        at = param_node if param_node is not None else element
        shown = f"Add-Type {node_text(at).rstrip(':')} {node_text(element)}"
        param_node = None
        if param in ("path", "literalpath"):
            yield at, f"{shown} compiles or loads code from a file"
        elif param in ("assemblyname", "referencedassemblies"):
            names = _literal_names(element)
            if names is None:
                yield at, f"{shown} names assemblies through an expression"
            elif any(CS_WMI_RE.search(n) for n in names):
                yield at, f"{shown} loads a WMI assembly"


def unfollowed_loads(source: str) -> list[tuple[int, int, str]]:
    """(line, column, what) for each way `source` loads code other than `#AnsibleRequires` / `#Requires`:
    Import-Module, `using module`, dot-sourcing or running a script file, Add-Type -Path and WMI assemblies,
    [System.Reflection.Assembly]::Load*. Read from the parse tree: comments and strings do not count."""
    found: list[tuple[int, int, str]] = []
    for node in walk(parse_powershell(source).root_node):
        if node.type == "invokation_expression":
            found.extend(_assembly_load(node))
        elif node.type == "command":
            found.extend((*position(at), what) for at, what in _command_loads(node))
    return found


def _assembly_load(node: Node) -> list[tuple[int, int, str]]:
    kind = next((c for c in node.named_children if c.type == "type_literal"), None)
    member = next((c for c in node.named_children if c.type == "member_name"), None)
    if kind is None or member is None:
        return []
    type_name = node_text(kind).strip("[]").replace(" ", "").lower()
    if type_name in ("reflection.assembly", "system.reflection.assembly") and \
            node_text(member).lower().startswith(("load", "unsafeload")):
        return [(*position(node), f"{node_text(kind)}::{node_text(member)}() loads an assembly")]
    return []


def _command_loads(command: Node) -> list[tuple[Node, str]]:
    children = command.named_children
    operator = next((c for c in children if c.type == "command_invokation_operator"), None)
    name_expr = next((c for c in children if c.type == "command_name_expr"), None)
    name_node = next((c for c in children if c.type == "command_name"), None)
    elements = next((c for c in children if c.type == "command_elements"), None)
    if name_expr is not None:
        if any(c.type == "script_block_expression" for c in name_expr.named_children):
            return []  # `. { ... }` / `& { ... }`: the code is right here and is checked
        text = node_text(name_expr)
        if operator is not None and node_text(operator) == ".":
            return [(command, f"dot-sourcing '. {text}' runs a script in this scope")]
        if text.strip("'\"").lower().endswith(_SCRIPT_SUFFIXES):
            return [(command, f"'{node_text(command)}' runs a script file")]
        return []
    if name_node is None:
        return []
    name = node_text(name_node)
    bare = name.rsplit("\\", 1)[-1].lower()
    if operator is not None and node_text(operator) == ".":
        return [(command, f"dot-sourcing '. {name}' runs a script in this scope")]
    if bare in _IMPORT_MODULE:
        return [(name_node, f"{name} loads a module")]
    if bare == "using" and elements is not None:
        words = [c for c in elements.named_children if c.type != "command_argument_sep"]
        if words and node_text(words[0]).lower() == "module":
            return [(name_node, f"'{node_text(command)}' loads a module")]
        return []
    if bare.endswith(_SCRIPT_SUFFIXES):
        return [(name_node, f"'{name}' runs a script file")]
    if bare == "add-type" and elements is not None:
        return list(_add_type_loads(elements))
    return []


def _commands(source: str) -> Iterator[tuple[str, int, int, str]]:
    """(lower-case command name, line, column, args text) for every command with a literal name."""
    for node in walk(parse_powershell(source).root_node):
        if node.type != "command":
            continue
        name = next((c for c in node.named_children if c.type == "command_name"), None)
        if name is None:
            continue
        args = next((node_text(c) for c in node.named_children if c.type == "command_elements"), "")
        line, col = position(name)
        yield node_text(name).lower(), line, col, args


def style_findings(path: str, source: str) -> list[Finding]:
    out: list[Finding] = []
    for name, line, col, _args in _commands(source):
        if name in IEX:
            out.append(Finding(path, line, col, "iex", f"'{name}' runs text as code; pass data as data"))
        elif name in ALIASES:
            hint = " (in Windows PowerShell 'sc' is Set-Content; use sc.exe)" if name == "sc" else ""
            out.append(Finding(path, line, col, "alias", f"alias '{name}': write the full command name{hint}"))
    return out


# A custom date or time format given to ToString() alone: its ':' and '/' are the session culture's separators
# (Microsoft Learn, "Custom date and time format strings": "The ':' custom format specifier ... the time separator
# ... of the current culture"), so a host in a culture whose time separator is '.' writes 01.15.00 where a
# reader (ParseExact, Task Scheduler's StartBoundary) expects 01:15:00. Issue 26: the watchdog's start boundary.
_CULTURE_FORMAT = re.compile(r"""\.ToString\(\s*(['"])([^'"]*(?:yyyy|HH|mm|ss|dd)[^'"]*)\1\s*\)""")


def culture_findings(path: str, source: str) -> list[Finding]:
    out: list[Finding] = []
    for number, line in enumerate(source.splitlines(), 1):
        code = line.split("#", 1)[0] if not line.lstrip().startswith("#") else ""
        for match in _CULTURE_FORMAT.finditer(code):
            out.append(Finding(path, number, match.start() + 1, "culture",
                               f"date format '{match.group(2)}' in the session's culture: pass "
                               "[System.Globalization.CultureInfo]::InvariantCulture as ToString's second argument"))
    return out


def module_findings(path: str, source: str) -> list[Finding]:
    """House rules for an Ansible module executor."""
    tree = parse_powershell(source)
    nodes = list(walk(tree.root_node))
    out: list[Finding] = []
    if not any(n.type == "comment" and REQUIRES_RE.match(node_text(n)) for n in nodes):
        out.append(Finding(path, 1, 1, "requires", "missing '#AnsibleRequires -CSharpUtil Ansible.Basic'"))
    if not any(name == "set-strictmode" and re.search(r"-version\b", args, re.I)
               for name, _line, _col, args in _commands(source)):
        out.append(Finding(path, 1, 1, "strict", "missing 'Set-StrictMode -Version 2.0' (or later)"))
    if not any(_is_eap_stop(n) for n in nodes if n.type == "assignment_expression"):
        out.append(Finding(path, 1, 1, "eap", "missing \"$ErrorActionPreference = 'Stop'\""))
    return out


def _is_eap_stop(node: Node) -> bool:
    text = re.sub(r"\s+", " ", node_text(node)).lower()
    return text in ("$erroractionpreference = 'stop'", '$erroractionpreference = "stop"')


def check_source(path: str, source: str, module: bool, utils_dir: Path = UTILS_DIR) -> list[Finding]:
    findings = syntax_findings(path, source) + wmi_findings(path, source) + style_findings(path, source)
    findings += culture_findings(path, source)
    findings += requires_findings(path, source, utils_dir)
    if module:
        findings += module_findings(path, source)
    return sorted(findings, key=lambda f: (f.path, f.line, f.column, f.rule))


def check_file(path: Path, root: Path = REPO) -> list[Finding]:
    try:
        shown = str(path.resolve().relative_to(root))
    except ValueError:
        shown = str(path)
    source = path.read_text(encoding="utf-8-sig")
    return check_source(shown, source, is_module(path))


def check_paths(paths: Iterable[Path], root: Path = REPO) -> tuple[int, list[Finding]]:
    """(number of files checked, findings)."""
    files = ps_files(paths)
    return len(files), [f for p in files for f in check_file(p, root)]


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    paths = [Path(a) for a in argv] or [REPO / p for p in DEFAULT_PATHS]
    missing = [str(p) for p in paths if not p.exists() and argv]
    if missing:
        print(f"pscheck: no such path: {', '.join(missing)}", file=sys.stderr)
        return 2
    count, findings = check_paths(paths)
    for finding in findings:
        print(finding)
    print(f"pscheck: {count} PowerShell file(s), {len(findings)} finding(s)")
    spec_problems = [p for ps1 in ps_files(paths) if is_module(ps1) for p in module_file_problems(ps1)]
    for problem in spec_problems:
        print(f"spec: {problem}")
    print(f"pscheck: spec = docs for {sum(is_module(p) for p in ps_files(paths))} module(s), "
          f"{len(spec_problems)} problem(s)")
    return 1 if findings or spec_problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
