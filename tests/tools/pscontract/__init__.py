"""The PowerShell contract checks of this project: what a `.ps1` module promises, read from its code.

Used by `make pscheck` (tests/tools/pscheck.py), the unit tests, and the twin, which imports this package to
accept exactly a module's spec and return exactly what it documents (the twin depends on these checks, not
the other way round). One job per file:

- `wmi_rules.py`  the one list of WMI/CIM commands (static check and the twin's refusal), parse helpers
- `extract.py`    the Ansible.Basic spec and result keys of a `.ps1`, from the tree-sitter parse tree
- `docs.py`       DOCUMENTATION / RETURN of the `.py` (fragments resolved) and spec = docs
- `validate.py`   Ansible.Basic's argument validation, same order and messages
- `results.py`    a result against RETURN (or the executor protocol)
- `contract.py`   one module's contract, by path or fully-qualified name
- `paths.py`      the repository and collection roots
"""

from __future__ import annotations

from pscontract.contract import (
    ModuleContract,
    check_module_result,
    contract_for,
    contract_problems,
    load_module_contract,
    module_file_problems,
    module_paths,
    validate_module_args,
)
from pscontract.docs import compare_spec_docs, load_docs
from pscontract.errors import ArgumentError, CheckModeSkipped, SpecError
from pscontract.extract import Delegate, code_keys, extract_spec, result_keys, supports_diff
from pscontract.paths import REPO, collection_roots
from pscontract.results import COMMON_RESULT_KEYS, check_result
from pscontract.validate import NO_LOG_MASK, ModuleFlags, ansible_flags, invocation, mask_no_log, validate_args

__all__ = [
    "ArgumentError", "COMMON_RESULT_KEYS", "CheckModeSkipped", "Delegate", "ModuleContract", "ModuleFlags",
    "NO_LOG_MASK", "REPO", "SpecError", "ansible_flags", "check_module_result", "check_result", "code_keys",
    "collection_roots", "compare_spec_docs", "contract_for", "contract_problems", "extract_spec", "invocation",
    "load_docs", "load_module_contract", "mask_no_log", "module_file_problems", "module_paths", "result_keys",
    "supports_diff", "validate_args", "validate_module_args",
]
