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
