"""The contract of one module: its spec, DOCUMENTATION, RETURN, result keys and, for this collection's
executors, the executor protocol; by path or by fully-qualified module name (the twin's seam).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from pscontract.docs import compare_spec_docs, load_docs
from pscontract.errors import ArgumentError, SpecError
from pscontract.extract import code_keys, extract_spec, result_keys, supports_diff
from pscontract.paths import REPO, collection_roots
from pscontract.results import COMMON_RESULT_KEYS, check_result
from pscontract.validate import validate_args

# ---------------------------------------------------------------------------------------------------------
# The contract of one module
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModuleContract:
    name: str
    spec: dict[str, Any]
    documentation: dict[str, Any]
    returns: dict[str, Any]
    result_keys: frozenset[str]
    supports_diff: bool
    tolerated_keys: frozenset[str] = frozenset()
    #: RETURN keys marked `returned: always` that the executor never sends (other collections only, see
    #: NOT_FROM_THE_EXECUTOR): their absence from an executor's result is not a problem.
    optional_keys: frozenset[str] = frozenset()
    #: This collection's executors: phase -> documented executor result (the executor protocol,
    #: plugins/plugin_utils/_window/protocol.py). Their RETURN documents what the action plugin returns.
    executor_results: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def validate_args(self, args: Mapping[str, Any], module_name: str | None = None,
                      env: Mapping[str, str] | None = None) -> dict[str, Any]:
        return validate_args(self.spec, args, module_name or self.name, env)

    def check_result(self, result: Mapping[str, Any], phase: str | None = None) -> list[str]:
        """A module result against RETURN; for an executor of this collection, against the protocol of the phase
        it answers (its RETURN is the action plugin's result)."""
        if self.executor_results:
            if phase not in self.executor_results:
                return [f"{self.name}: _phase {phase!r} is not part of the executor protocol "
                        f"({', '.join(sorted(self.executor_results))})"]
            return check_result(self.executor_results[phase], result, self.name, False)
        return check_result(self.returns, result, self.name, self.supports_diff, self.tolerated_keys,
                            self.optional_keys)


def load_module_contract(ps1_path: str | Path, py_path: str | Path | None = None) -> ModuleContract:
    """The module's contract from its `.ps1` and `.py` (default: the `.py` beside the `.ps1`), cached."""
    ps1 = Path(ps1_path).resolve()
    py = Path(py_path).resolve() if py_path is not None else ps1.with_suffix(".py")
    return _load_contract(ps1, py, ps1.stat().st_mtime_ns, py.stat().st_mtime_ns)


@lru_cache(maxsize=128)
def _load_contract(ps1: Path, py: Path, _ps1_mtime: int, _py_mtime: int) -> ModuleContract:
    source = ps1.read_text(encoding="utf-8-sig")
    documentation, returns = load_docs(py)
    own = ps1.is_relative_to(REPO / "plugins")
    return ModuleContract(name=ps1.stem, spec=extract_spec(source, str(ps1)), documentation=documentation,
                          returns=returns, result_keys=frozenset(result_keys(source)),
                          supports_diff=supports_diff(source),
                          tolerated_keys=frozenset() if own else code_keys(source),
                          optional_keys=frozenset() if own else NOT_FROM_THE_EXECUTOR.get(ps1.stem, frozenset()),
                          executor_results=_executor_results(ps1.stem) if own else {})


# Other collections' RETURN entries marked `returned: always` that their executor does not send, each with why.
# win_command: `stdout_lines` / `stderr_lines` are added on the controller (ActionBase._execute_module splits
# stdout and stderr into lines when the module did not), and win_command.ps1 sets `msg` only when it skips
# (creates / removes) or fails; its RETURN's `msg` entry (type bool, "changed") was copied from another module.
NOT_FROM_THE_EXECUTOR: dict[str, frozenset[str]] = {
    "win_command": frozenset({"msg", "stdout_lines", "stderr_lines"}),
}


def _executor_results(module: str) -> Mapping[str, Mapping[str, Any]]:
    """The executor protocol of one of this collection's modules (empty when it has none), read from
    plugins/plugin_utils/_window/protocol.py by path (it imports nothing of the collection)."""
    return _protocol().RESULTS.get(module, {})


@lru_cache(maxsize=1)
def _protocol() -> Any:
    path = REPO / "plugins" / "plugin_utils" / "_window" / "protocol.py"
    loaded = importlib.util.spec_from_file_location("_configmgr_executor_protocol", path)
    if loaded is None or loaded.loader is None:
        raise SpecError(f"the executor protocol {path} cannot be loaded")
    protocol = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(protocol)
    return protocol


def contract_problems(contract: ModuleContract) -> list[str]:
    """spec = docs, and every result key the `.ps1` sets is documented in RETURN."""
    problems = compare_spec_docs(contract.spec, contract.documentation, contract.name)
    protocol_keys = {k for doc in contract.executor_results.values() for k in doc}
    undocumented = sorted(k for k in contract.result_keys
                          if k not in contract.returns and k not in protocol_keys and k not in COMMON_RESULT_KEYS)
    where = "neither RETURN nor the executor protocol documents" if protocol_keys else "RETURN does not document"
    problems += [f"{contract.name}: the .ps1 sets result key {k!r}, which {where}" for k in undocumented]
    return problems


# ---------------------------------------------------------------------------------------------------------
# By fully-qualified module name (the emulation layer's seam)
# ---------------------------------------------------------------------------------------------------------


def module_paths(fqcn: str) -> tuple[Path, Path]:
    """(.ps1, .py) of a module named `namespace.collection.name`; configmgr.sql_upgrade is this repository."""
    parts = fqcn.split(".")
    if len(parts) != 3:
        raise SpecError(f"{fqcn}: expected namespace.collection.module")
    namespace, collection, name = parts
    if (namespace, collection) == ("configmgr", "sql_upgrade"):
        base = REPO / "plugins" / "modules"
        return base / f"{name}.ps1", base / f"{name}.py"
    for root in collection_roots():
        base = root / "ansible_collections" / namespace / collection / "plugins" / "modules"
        if (base / f"{name}.ps1").is_file():
            return base / f"{name}.ps1", base / f"{name}.py"
    raise SpecError(f"{fqcn}: no {name}.ps1 in any collection path ({', '.join(map(str, collection_roots()[:3]))}"
                    " ...)")


def contract_for(fqcn: str) -> ModuleContract:
    ps1, py = module_paths(fqcn)
    return load_module_contract(ps1, py)


def validate_module_args(fqcn: str, params: Mapping[str, Any]) -> tuple[bool, Any]:
    """(True, validated params) or (False, Ansible.Basic's message). `params` may include `_ansible_*` keys;
    the module name in messages is the short name Ansible sends as `_ansible_module_name` by default."""
    contract = contract_for(fqcn)
    try:
        return True, validate_args(contract.spec, params, fqcn.rsplit(".", 1)[-1])
    except ArgumentError as error:
        return False, error.msg


def check_module_result(fqcn: str, result: Mapping[str, Any], phase: str | None = None) -> list[str]:
    """Problems of a module result against that module's RETURN, or for this collection's executors against
    the executor protocol of `phase` (empty list = conforms)."""
    return contract_for(fqcn).check_result(result, phase)


def module_file_problems(ps1: Path, py: Path | None = None) -> list[str]:
    """spec = docs for one `.ps1` module file: a missing `.py`, an unreadable spec or docs, every mismatch."""
    py = py if py is not None else ps1.with_suffix(".py")
    if not py.is_file():
        return [f"{ps1.stem}: {ps1} has no documentation stub {py.name} beside it"]
    try:
        return contract_problems(load_module_contract(ps1, py))
    except (SpecError, yaml.YAMLError, SyntaxError) as error:
        return [f"{ps1.stem}: {error}"]
