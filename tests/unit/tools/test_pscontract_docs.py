"""spec = docs: the extracted .ps1 spec against the .py DOCUMENTATION / RETURN, on real and broken pairs."""

import shutil
from pathlib import Path

import pytest

from pscontract import (
    SpecError,
    compare_spec_docs,
    load_docs,
    module_file_problems,
    module_paths,
)


@pytest.fixture
def win_service(tmp_path: Path) -> tuple[Path, Path]:
    ps1, py = module_paths("ansible.windows.win_service")
    return Path(shutil.copy(ps1, tmp_path)), Path(shutil.copy(py, tmp_path))


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8-sig")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.mark.parametrize("name", ["win_ping", "win_service", "win_service_info", "win_stat", "win_file"])
def test_ansible_windows_pairs_match(name):
    assert module_file_problems(*module_paths(f"ansible.windows.{name}")) == []


def test_unbroken_copy_matches(win_service):
    assert module_file_problems(*win_service) == []


def test_type_changed_in_ps1(win_service):
    ps1, py = win_service
    edit(ps1, "desktop_interact = @{ type = 'bool'", "desktop_interact = @{ type = 'str'")
    assert module_file_problems(ps1, py) == [
        "win_service: option desktop_interact: type: spec says 'str', docs say 'bool'"]


def test_choice_removed_in_ps1(win_service):
    ps1, py = win_service
    edit(ps1, "choices = 'started', 'stopped', 'restarted', 'absent', 'paused'",
         "choices = 'started', 'stopped', 'restarted', 'absent'")
    assert module_file_problems(ps1, py) == [
        "win_service: option state: choices: spec says ['absent', 'restarted', 'started', 'stopped'], docs say "
        "['absent', 'paused', 'restarted', 'started', 'stopped']"]


def test_default_changed_in_docs(win_service):
    ps1, py = win_service
    edit(py, "    choices: [ add, remove, set ]\n    default: set",
         "    choices: [ add, remove, set ]\n    default: add")
    assert module_file_problems(ps1, py) == [
        "win_service: option dependency_action: default: spec says 'set', docs say 'add'"]


def test_return_key_renamed_in_docs(win_service):
    ps1, py = win_service
    edit(py, "\ndepended_by:", "\ndependents:")
    assert module_file_problems(ps1, py) == [
        "win_service: the .ps1 sets result key 'depended_by', which RETURN does not document"]


def test_option_missing_required_and_alias(win_service):
    ps1, py = win_service
    edit(ps1, "name = @{ type = 'str'; required = $true }", "name = @{ type = 'str' }")
    edit(ps1, "load_order_group = @{ type = 'str' }\n", "")
    edit(ps1, "aliases = , 'delay'", "aliases = , 'delay_msec'")
    problems = module_file_problems(ps1, py)
    assert "win_service: option name: required: spec says False, docs say True" in problems
    assert "win_service: option load_order_group: in DOCUMENTATION but not in the .ps1 spec" in problems
    assert ("win_service: option failure_actions.delay_ms: aliases: spec says ['delay_msec'], docs say "
            "['delay']") in problems


def test_missing_py_is_a_problem(win_service, tmp_path):
    ps1, py = win_service
    py.unlink()
    assert module_file_problems(ps1) == [f"win_service: {ps1} has no documentation stub win_service.py beside it"]


def test_unreadable_spec_is_a_problem(win_service):
    ps1, py = win_service
    edit(ps1, "default = 'set'", "default = $env:DEFAULT_ACTION")
    (problem,) = module_file_problems(ps1, py)
    assert "win_service.ps1:14:" in problem and "variable" in problem


def test_check_mode_attribute_compared():
    spec = {"options": {}, "supports_check_mode": False}
    docs = {"options": {}, "attributes": {"check_mode": {"support": "full"}}}
    assert compare_spec_docs(spec, docs, "m") == [
        "m: supports_check_mode: spec says False, docs attributes.check_mode.support says 'full'"]


def test_elements_and_suboptions_compared():
    spec = {"options": {"items": {"type": "list", "elements": "dict",
                                  "options": {"k": {"type": "int", "default": 3}}}}}
    docs = {"options": {"items": {"type": "list", "elements": "str",
                                  "suboptions": {"k": {"type": "int", "default": 4}}}}}
    assert compare_spec_docs(spec, docs, "m") == [
        "m: option items: elements: spec says 'dict', docs say 'str'",
        "m: option items.k: default: spec says 3, docs say 4"]


def test_doc_fragment_resolved(tmp_path):
    fragments = tmp_path / "doc_fragments"
    fragments.mkdir()
    (fragments / "common.py").write_text(
        "class ModuleDocFragment:\n    DOCUMENTATION = r'''\noptions:\n  timeout:\n    type: int\n"
        "    default: 120\n'''\n")
    module = tmp_path / "m.py"
    module.write_text("DOCUMENTATION = r'''\nmodule: m\nextends_documentation_fragment:\n"
                      "- configmgr.sql_upgrade.common\noptions:\n  name:\n    type: str\n'''\nRETURN = r'''\n'''\n")
    doc, returns = load_docs(module, {"configmgr.sql_upgrade": fragments})
    assert doc["options"] == {"name": {"type": "str"}, "timeout": {"type": "int", "default": 120}}
    assert returns == {}
    with pytest.raises(SpecError, match="collection other.coll is not known"):
        module.write_text("DOCUMENTATION = '''\nextends_documentation_fragment: other.coll.x\n'''\n")
        load_docs(module, {"configmgr.sql_upgrade": fragments})
