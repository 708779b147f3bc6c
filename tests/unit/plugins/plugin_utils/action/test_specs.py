"""Each module's options are declared once, in _action/specs.py; the executor's Ansible.Basic spec (its public
options) and the `.py` DOCUMENTATION are held to that declaration here, so a drift on either side fails by name."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.checks import DOMAIN_CHECKS, validate
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.specs import ACTION_ONLY, SPECS
from pscontract import compare_spec_docs, load_docs, load_module_contract, module_paths

MODULES = sorted(SPECS)
#: The modules with an executor on the host (the others are an action plugin alone, as win_reboot is).
EXECUTORS = sorted(set(SPECS) - set(ACTION_ONLY))


def as_docs(spec: dict[str, Any]) -> dict[str, Any]:
    """An argument_spec in DOCUMENTATION's shape (suboptions), for pscontract's comparison."""
    return {name: {**{k: v for k, v in option.items() if k != "options"},
                   **({"suboptions": as_docs(option["options"])} if "options" in option else {})}
            for name, option in spec.items()}


def test_every_module_has_a_spec_and_its_domain_checks() -> None:
    folder = module_paths("configmgr.sql_upgrade.x")[0].parent
    assert EXECUTORS == sorted(p.stem for p in folder.glob("*.ps1"))
    assert MODULES == sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__")
    assert set(DOMAIN_CHECKS) == set(SPECS)
    assert all((folder.parent / "action" / f"{name}.py").is_file() for name in ACTION_ONLY)


@pytest.mark.parametrize("module", EXECUTORS)
def test_the_executor_spec_declares_the_same_options(module: str) -> None:
    ps1, _py = module_paths(f"configmgr.sql_upgrade.{module}")
    executor = load_module_contract(ps1).spec
    public = {name: opt for name, opt in executor["options"].items() if not name.startswith("_")}
    spec = SPECS[module]["argument_spec"]
    problems = compare_spec_docs({"options": public}, {"options": as_docs(spec)}, module)
    problems += [f"{module}: option {name}: no_log differs" for name in spec
                 if bool(spec[name].get("no_log")) != bool(public.get(name, {}).get("no_log"))]
    assert problems == []


@pytest.mark.parametrize("module", MODULES)
def test_the_documentation_declares_the_same_options(module: str) -> None:
    _ps1, py = module_paths(f"configmgr.sql_upgrade.{module}")
    documentation, _returns = load_docs(py)
    assert compare_spec_docs({"options": SPECS[module]["argument_spec"], "supports_check_mode": True}, documentation,
                             module) == []


@pytest.mark.parametrize("module", MODULES)
def test_the_defaults_validate(module: str) -> None:
    """A task with only its required options passes the spec and the domain checks (the defaults are valid)."""
    required = {"target_version": "15.0.2000.5", "media_path": "C:\\SQLMedia", "dest": "C:\\SQLMedia\\SQL2019"}
    args = {n: required[n] for n, o in SPECS[module]["argument_spec"].items() if o.get("required")}
    if module == "sql_media":
        args["url"] = "https://media.example/SQLServer2019.iso"
    assert validate(module, args)


def test_a_drift_is_named() -> None:
    """The comparison the tests above rely on names the option and the field that differ."""
    spec = {"timeout": {"type": "int", "default": 120}}
    assert compare_spec_docs({"options": {"timeout": {"type": "int", "default": 60}}}, {"options": as_docs(spec)},
                             "m") == ["m: option timeout: default: spec says 60, docs say 120"]
