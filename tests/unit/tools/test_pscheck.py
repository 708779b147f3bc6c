"""tests/tools/pscheck.py on small fixtures."""

from pathlib import Path

from tools.pscheck import check_paths, check_source, main

GOOD_MODULE = """#!powershell
#AnsibleRequires -CSharpUtil Ansible.Basic
# configmgr:wmi-free

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

$spec = @{ options = @{ name = @{ type = 'str'; required = $true } }; supports_check_mode = $true }
$module = [Ansible.Basic.AnsibleModule]::Create($args, $spec)
$svc = [System.ServiceProcess.ServiceController]::new($module.Params.name)
$module.Result.state = $svc.Status.ToString()
$module.ExitJson()
"""


GOOD_DOC = '''DOCUMENTATION = """
module: good
short_description: A fixture.
options:
  name:
    description: A service.
    type: str
    required: true
"""
RETURN = """
state:
  description: Its state.
  returned: success
  type: str
"""
'''


def rules(findings):
    return [(f.rule, f.line, f.column) for f in findings]


def test_good_module_is_clean():
    assert check_source("m.ps1", GOOD_MODULE, module=True) == []


def test_syntax_error_reported_with_line_and_column():
    source = "$a = 1\nif ($a -eq 1 {\n    Write-Output -InputObject 'x'\n"
    findings = check_source("bad.ps1", source, module=False)
    assert findings and all(f.rule == "syntax" for f in findings)
    assert (findings[0].line, findings[0].column) >= (2, 1)
    assert str(findings[0]).startswith(f"bad.ps1:{findings[0].line}:{findings[0].column}: syntax:")


def test_grammar_gap_is_reported_not_hidden():
    findings = check_source("gap.ps1", "$free = 5\nif ($free -lt 10GB) { exit 1 }\n", module=False)
    assert [f.rule for f in findings] and {f.rule for f in findings} == {"syntax"}
    assert findings[0].line == 2


def test_wmi_use_in_marked_file_fails():
    source = GOOD_MODULE.replace("$module.ExitJson()", "$os = Get-CimInstance -ClassName Win32_OperatingSystem\n"
                                 "$module.ExitJson()")
    findings = check_source("m.ps1", source, module=True)
    assert rules(findings) == [("wmi-free", 12, 7)]
    assert "Get-CimInstance" in findings[0].message and "sc.exe" in findings[0].message


def test_wmi_use_in_unmarked_file_passes():
    source = GOOD_MODULE.replace("# configmgr:wmi-free\n", "").replace(
        "$module.ExitJson()", "$os = Get-CimInstance -ClassName Win32_OperatingSystem\n$module.ExitJson()")
    assert check_source("m.ps1", source, module=True) == []


def test_wmi_names_in_comments_and_strings_do_not_count_in_marked_file():
    source = GOOD_MODULE.replace("$module.ExitJson()", "# Get-CimInstance is not allowed here\n"
                                 "$module.Warn('do not call Get-WmiObject or New-NetFirewallRule')\n"
                                 "$module.ExitJson()")
    assert check_source("m.ps1", source, module=True) == []


def test_cdxml_and_type_literals_fail_in_marked_file():
    source = GOOD_MODULE.replace("$module.ExitJson()", "New-NetFirewallRule -Name x\n$w = [wmiclass]'Win32_Process'\n"
                                 "Mount-DiskImage -ImagePath $module.Params.name\n$module.ExitJson()")
    findings = check_source("m.ps1", source, module=True)
    assert [f.rule for f in findings] == ["wmi-free"] * 3
    assert [f.line for f in findings] == [12, 13, 14]


def test_house_rules_on_modules():
    bare = "#!powershell\n$x = 1\n"
    assert sorted(f.rule for f in check_source("m.ps1", bare, module=True)) == ["eap", "requires", "strict"]
    assert check_source("util.psm1", bare, module=False) == []


def test_aliases_and_invoke_expression():
    source = GOOD_MODULE.replace("$module.ExitJson()", "$x = gci C:\\\nsc stop foo\n"
                                 "$y = $x | Where-Object { $_ } | % { $_ }\n"
                                 "Invoke-Expression -Command $module.Params.name\n$module.ExitJson()")
    findings = check_source("m.ps1", source, module=True)
    assert rules(findings) == [("alias", 12, 6), ("alias", 13, 1), ("alias", 14, 33), ("iex", 15, 1)]
    assert "Set-Content" in findings[1].message


def test_cli_exit_codes_and_output(tmp_path: Path, capsys):
    modules = tmp_path / "plugins" / "modules"
    modules.mkdir(parents=True)
    (modules / "good.ps1").write_text(GOOD_MODULE)
    (modules / "good.py").write_text(GOOD_DOC)
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "1 PowerShell file(s), 0 finding(s)" in out and "spec = docs for 1 module(s), 0 problem(s)" in out
    (modules / "bad.ps1").write_text(GOOD_MODULE.replace("Set-StrictMode -Version 2.0\n", "").replace(
        "$module.ExitJson()", "Get-WmiObject -Class Win32_Service\n$module.ExitJson()"))
    assert main([str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "bad.ps1:1:1: strict:" in out and "bad.ps1:11:1: wmi-free: Get-WmiObject" in out
    assert "spec: bad: " in out and "has no documentation stub bad.py" in out
    count, findings = check_paths([tmp_path])
    assert count == 2 and len(findings) == 2
    assert main([str(tmp_path / "nope")]) == 2


# Valid PowerShell that tree-sitter-powershell 0.26.4 rejects (TOOLING.md, plus forms found in the ansible.windows
# corpus): pscheck reports them as syntax findings, so the collection's code must avoid them.
GRAMMAR_GAPS = [
    "$a = 1\nif ($a -cin @(1, 2)) { exit 0 }\n",
    "$free = 5\nif ($free -lt 10GB) { exit 1 }\n",
    "$f = [Func[[Object], [UInt32]]] { [UInt32]$args[0] }\n",
    "$l = [System.Collections.Generic.List`1[String]]@()\n",
    "$m = [System.Net.WebRequestMethods+Ftp]::GetDateTimestamp\n",
    ":outer foreach ($i in 1..3) { foreach ($j in 1..3) { break outer } }\n",
]


def test_known_grammar_gaps_are_reported():
    for source in GRAMMAR_GAPS:
        findings = check_source("gap.ps1", source, module=False)
        assert findings and {f.rule for f in findings} == {"syntax"}, source


def test_supported_forms_parse_clean():
    source = """using namespace System.Collections.Generic
param([string]$Name)
$list = [List[string]]::new()
$size = 10 * 1024 * 1024 * 1024
$here = @'
Get-CimInstance inside a here-string
'@
try { $x = ${env:ProgramFiles(x86)} } finally { $list.Clear() }
$splat = @{ Name = 'x' }
Get-Service @splat
"""
    assert [f for f in check_source("ok.ps1", source, module=False) if f.rule == "syntax"] == []


OWN = "ansible_collections.configmgr.sql_upgrade.plugins.module_utils"


def requiring(*lines: str) -> str:
    return GOOD_MODULE.replace("# configmgr:wmi-free\n", "# configmgr:wmi-free\n" + "".join(f"{x}\n" for x in lines))


def test_wmi_free_file_may_load_only_wmi_free_utils(tmp_path: Path):
    (tmp_path / "Clean.cs").write_text("using System.Management.Automation;\n// System.Management is WMI\n")
    (tmp_path / "Wmi.cs").write_text("using System;\nusing System.Management;\n")
    (tmp_path / "Marked.psm1").write_text("# configmgr:wmi-free\nFunction Get-X { 1 }\n")
    (tmp_path / "Unmarked.psm1").write_text("Function Get-Y { Get-CimInstance -ClassName Win32_Service }\n")
    clean = requiring(f"#AnsibleRequires -CSharpUtil {OWN}.Clean", f"#AnsibleRequires -PowerShell {OWN}.Marked",
                      "#AnsibleRequires -CSharpUtil ansible_collections.ansible.windows.plugins.module_utils.SCManager")
    assert check_source("m.ps1", clean, module=True, utils_dir=tmp_path) == []

    bad = requiring(f"#AnsibleRequires -CSharpUtil {OWN}.Wmi", f"#AnsibleRequires -PowerShell {OWN}.Unmarked",
                    "#Requires -Module Ansible.ModuleUtils.SomethingElse", f"#AnsibleRequires -PowerShell {OWN}.Gone")
    findings = [f for f in check_source("m.ps1", bad, module=True, utils_dir=tmp_path) if f.rule == "wmi-free-requires"]
    messages = [f.message for f in findings]
    assert len(findings) == 4, messages
    assert "Wmi.cs:2 uses WMI (using System.Management;)" in messages[0]
    assert "Unmarked.psm1 is loaded in the WMI-free window" in messages[1]
    assert "Ansible.ModuleUtils.SomethingElse is not known to be WMI-free" in messages[2]
    assert "no such util Gone.psm1" in messages[3]
    # The same requires in a file that does not run in the window are not this rule's business.
    unmarked = bad.replace("# configmgr:wmi-free\n", "")
    assert [f for f in check_source("m.ps1", unmarked, module=True, utils_dir=tmp_path)
            if f.rule == "wmi-free-requires"] == []


# Ways of loading code other than #AnsibleRequires, each refused by name in a marked file (file:line:col).
UNFOLLOWED_LOADS = [
    ("Import-Module -Name Foo", 1, "Import-Module loads a module"),
    ("Microsoft.PowerShell.Core\\Import-Module Foo", 1, "Import-Module loads a module"),
    ("using module .\\Foo.psm1", 1, "'using module .\\Foo.psm1' loads a module"),
    (". $helpers", 1, "dot-sourcing '. $helpers'"),
    (". .\\x.ps1", 1, "dot-sourcing '. .\\x.ps1'"),
    ("& .\\x.ps1 -Name a", 1, "'& .\\x.ps1 -Name a' runs a script file"),
    ("Add-Type -Path C:\\x.dll", 10, "Add-Type -Path C:\\x.dll compiles or loads code from a file"),
    ("Add-Type -LiteralPath C:\\x.cs -PassThru", 10, "Add-Type -LiteralPath C:\\x.cs compiles"),
    ("Add-Type -PassThru -AssemblyName 'System.ServiceProcess', 'System.Management'", 20, "loads a WMI assembly"),
    ("Add-Type -AN:System.Management", 10, "Add-Type -AN System.Management loads a WMI assembly"),
    ("Add-Type -TypeDefinition $c -ReferencedAssemblies @('System.Management.dll')", 29, "loads a WMI assembly"),
    ("Add-Type -TypeDefinition $c -RA 'System.Data', \"Microsoft.Management.Infrastructure\"", 29,
     "loads a WMI assembly"),
    ("Add-Type -TypeDefinition $c -ReferencedAssemblies $refs", 29, "names assemblies through an expression"),
    ("[Reflection.Assembly]::LoadWithPartialName('System.Management')", 1, "LoadWithPartialName() loads"),
]


def test_marked_file_refuses_loading_code_the_check_cannot_follow():
    for statement, column, what in UNFOLLOWED_LOADS:
        source = requiring(statement)  # the statement lands on line 4
        findings = check_source("m.ps1", source, module=True)
        assert rules(findings) == [("wmi-free-requires", 4, column)], statement
        assert what in findings[0].message, (statement, findings[0].message)
        assert findings[0].message.endswith("load utils through #AnsibleRequires so the check can follow them")
        assert str(findings[0]).startswith(f"m.ps1:4:{column}: wmi-free-requires: ")
        unmarked = source.replace("# configmgr:wmi-free\n", "")
        assert [f for f in check_source("m.ps1", unmarked, module=True) if f.rule == "wmi-free-requires"] == []


def test_loads_that_the_check_can_follow_or_that_load_no_wmi_pass_in_marked_file():
    source = requiring(
        "# Import-Module Foo; . .\\x.ps1; Add-Type -AssemblyName System.Management",
        "$why = 'never Import-Module Foo or . .\\x.ps1 or Add-Type -Path x.dll here'",
        "using namespace System.Text",
        "Add-Type -AssemblyName System.ServiceProcess",
        "Add-Type -TypeDefinition $c -ReferencedAssemblies 'System.Data.dll', 'System.Management.Automation.dll'",
        ". { $inline = 1 }",
        "& sc.exe query winmgmt",
        "$me = [Reflection.Assembly]::GetExecutingAssembly()",
    )
    assert check_source("m.ps1", source, module=True) == []


def test_cs_util_assembly_reference_header_is_seen(tmp_path: Path):
    # Ansible.ModuleUtils.AddType reads `//AssemblyReference -Name X.dll|-Type T [-CLR Core|Framework]` from the
    # util's text, so to C# it is a comment but it makes the compiler reference (and load) that assembly.
    (tmp_path / "Ref.cs").write_text("using System;\n//AssemblyReference -Name System.Management.dll -CLR Framework\n"
                                     "//AssemblyReference -Type System.Management.Automation.PSObject -CLR Core\n")
    (tmp_path / "RefType.cs").write_text("// header\n// AssemblyReference -Type "
                                         "Microsoft.Management.Infrastructure.CimInstance\n")
    (tmp_path / "Fine.cs").write_text("//AssemblyReference -Name System.Web.Extensions.dll -CLR Framework\n"
                                      "//AssemblyReference -Type System.Management.Automation.PSObject -CLR Core\n"
                                      "// not a header: System.Management.dll is WMI\n")
    source = requiring(f"#AnsibleRequires -CSharpUtil {OWN}.Ref", f"#AnsibleRequires -CSharpUtil {OWN}.RefType",
                       f"#AnsibleRequires -CSharpUtil {OWN}.Fine")
    findings = check_source("m.ps1", source, module=True, utils_dir=tmp_path)
    assert rules(findings) == [("wmi-free-requires", 4, 1), ("wmi-free-requires", 5, 1)]
    assert "Ref.cs:2 references a WMI assembly (//AssemblyReference -Name System.Management.dll -CLR Framework)" \
        in findings[0].message
    assert "RefType.cs:2 references a WMI assembly" in findings[1].message


def test_repository_is_clean():
    count, findings = check_paths([Path(__file__).resolve().parents[3] / p for p in ("plugins", "roles")])
    assert count >= 3 and findings == []


def test_a_date_format_in_the_sessions_culture_is_found() -> None:
    """Issue 26: ':' in a custom date format is the culture's time separator; a host whose culture writes '.'
    would give Task Scheduler or ParseExact a time they cannot read."""
    from pscheck import culture_findings
    bad = "$fires = (Get-Date).AddMinutes(5).ToString('yyyy-MM-ddTHH:mm:ss')\n"
    good = ("$fires = (Get-Date).ToString(\"yyyy-MM-dd'T'HH:mm:sszzz\", "
            "[System.Globalization.CultureInfo]::InvariantCulture)\n$hex = $b.ToString('x2')\n# .ToString('HH:mm')\n")
    assert [f.rule for f in culture_findings("x.ps1", bad)] == ["culture"]
    assert culture_findings("x.ps1", good) == []
