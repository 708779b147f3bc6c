"""The collection's own PowerShell passes pscheck (and the check would fail on a bad file)."""

import shutil
from pathlib import Path

from tools.pscheck import DEFAULT_PATHS, REPO, check_paths


def test_repo_powershell_is_clean():
    count, findings = check_paths([REPO / p for p in DEFAULT_PATHS])
    assert findings == [], "\n".join(map(str, findings))
    assert count == len([p for d in DEFAULT_PATHS for p in (REPO / d).rglob("*") if p.suffix in (".ps1", ".psm1")])


def test_repo_check_fails_when_a_bad_file_is_added(tmp_path: Path):
    copy = tmp_path / "plugins"
    shutil.copytree(REPO / "plugins", copy)
    (copy / "modules").mkdir(exist_ok=True)
    (copy / "modules" / "broken.ps1").write_text("#AnsibleRequires -CSharpUtil Ansible.Basic\n$x = @{ a = \n")
    _checked, findings = check_paths([copy], root=tmp_path)
    assert any(f.path.endswith("broken.ps1") and f.rule == "syntax" for f in findings)
