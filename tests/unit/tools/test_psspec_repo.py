"""spec = docs over the collection's own .ps1 modules (whatever exist), and the CLI's exit status."""

from pathlib import Path

from tools.psspec import main

from pscontract import REPO, module_file_problems, module_paths

MODULES = sorted((REPO / "plugins" / "modules").glob("*.ps1"))


def test_every_repo_module_matches_its_documentation():
    problems = [p for ps1 in MODULES for p in module_file_problems(ps1)]
    assert problems == [], "\n".join(problems)


def test_every_repo_module_has_a_doc_stub():
    assert [m.name for m in MODULES if not m.with_suffix(".py").is_file()] == []


def test_cli_passes_a_good_pair_and_fails_a_broken_one(tmp_path: Path, capsys):
    ps1, py = module_paths("ansible.windows.win_ping")
    assert main([str(ps1)]) == 0
    broken = tmp_path / "win_ping.ps1"
    broken.write_text(ps1.read_text(encoding="utf-8-sig").replace('default = "pong"', 'default = "ping"'))
    (tmp_path / "win_ping.py").write_text(py.read_text(encoding="utf-8"))
    assert main([str(broken)]) == 1
    assert "win_ping: option data: default: spec says 'ping', docs say 'pong'" in capsys.readouterr().out
