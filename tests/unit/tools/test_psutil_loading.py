"""Each executor loads only the private PowerShell utils it uses, and everything it (or a util it loads) calls is in
what it loads: the `#AnsibleRequires -PowerShell` graph read from the files, as Ansible's module_manifest follows it
(a util's own requires are loaded with it). Without pwsh this is the check that a split util is not missing at run
time on a real server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
UTILS = REPO / "plugins" / "module_utils"
MODULES = REPO / "plugins" / "modules"
OWN = "ansible_collections.configmgr.sql_upgrade.plugins.module_utils."
REQUIRES = re.compile(r"^#AnsibleRequires -PowerShell " + re.escape(OWN) + r"(\w+)\s*$", re.M)
DEFINES = re.compile(r"^Function ([A-Za-z]+-[A-Za-z]+) \{", re.M)
CALL = re.compile(r"(?<![\w$:-])([A-Z][a-z]+-[A-Z][A-Za-z]+)\b")


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8-sig")


def own_functions() -> dict[str, str]:
    """function name -> the util (file stem) that defines it."""
    return {name: util.stem for util in UTILS.glob("*.psm1") for name in DEFINES.findall(text(util))}


def loaded(requires: list[str]) -> set[str]:
    """The utils a file loads: its requires and theirs, transitively."""
    seen: set[str] = set()
    todo = list(requires)
    while todo:
        util = todo.pop()
        if util not in seen:
            seen.add(util)
            todo += REQUIRES.findall(text(UTILS / f"{util}.psm1"))
    return seen


def called(source: str) -> set[str]:
    # Code only: comments and comment-based help name functions they do not call.
    code = re.sub(r"<#.*?#>", "", source, flags=re.S)
    code = "\n".join(line.split("#", 1)[0] if not line.lstrip().startswith("#") else "" for line in code.splitlines())
    # Single-quoted strings are text (the apply engine's table names its handlers; the second test checks those).
    return set(CALL.findall(re.sub(r"'[^']*'", "''", code)))


LAB = REPO / "tests" / "integration" / "targets"
FILES = sorted([*MODULES.glob("*.ps1"), *UTILS.glob("*.psm1"), *LAB.glob("*/library/*.ps1")])


def exported(util: str) -> set[str]:
    """Export-ModuleMember's list: only these are visible outside the util (Ansible imports each util as a module)."""
    source = text(UTILS / f"{util}.psm1")
    block = source[source.index("Export-ModuleMember"):]
    return set(re.findall(r"'([\w-]+)'", block))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_own_function_called_is_loaded(path: Path) -> None:
    functions = own_functions()
    source = text(path)
    utils = loaded(REQUIRES.findall(source)) | ({path.stem} if path.suffix == ".psm1" else set())
    missing = sorted(f"{name} (in {functions[name]}.psm1)" for name in called(source)
                     if name in functions and functions[name] not in utils)
    assert missing == [], f"{path.name} calls what it does not load: {missing}"
    hidden = sorted(f"{name} (in {functions[name]}.psm1)" for name in called(source)
                    if name in functions and functions[name] != path.stem and name not in exported(functions[name]))
    assert hidden == [], f"{path.name} calls functions their util does not export: {hidden}"


def test_an_op_handler_is_loaded_by_every_executor_whose_plans_use_it() -> None:
    from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window import ops

    apply_src = text(UTILS / "_Apply.psm1")
    table = dict(re.findall(r"^    (\w+) = '([\w-]+)'$", apply_src, re.M))
    assert set(table) == set(ops.OPS)  # one handler per operation of the vocabulary
    functions = own_functions()
    for module, kinds in ops.MODULE_OPS.items():
        utils = loaded(REQUIRES.findall(text(MODULES / f"{module}.ps1")))
        assert "_Apply" in utils
        missing = [kind for kind in kinds if functions[table[kind]] not in utils]
        assert missing == [], f"{module} plans {missing} but does not load their handlers"


def test_executors_load_only_what_they_use() -> None:
    """No util is loaded that neither the executor nor another loaded util calls (an op handler counts as used by
    the executors whose plans have its operation)."""
    from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window import ops

    functions = own_functions()
    table = dict(re.findall(r"^    (\w+) = '([\w-]+)'$", text(UTILS / "_Apply.psm1"), re.M))
    for path in MODULES.glob("*.ps1"):
        utils = loaded(REQUIRES.findall(text(path)))
        used = {functions[n] for n in called(text(path)) if n in functions}
        used |= {functions[n] for util in utils for n in called(text(UTILS / f"{util}.psm1")) if n in functions}
        used |= {functions[table[k]] for k in ops.MODULE_OPS.get(path.stem, ())}
        assert utils <= used, f"{path.name} loads {sorted(utils - used)} without using them"


def test_the_watchdog_script_holds_only_functions_its_util_can_read() -> None:
    """watchdog.ps1 is written from the text of $script:WatchdogFunctions (Get-Command, from inside _Watchdog): each is
    _Watchdog's own or exported by a util it loads, and together they define everything the script calls."""
    source = text(UTILS / "_Watchdog.psm1")
    block = source[source.index("$script:WatchdogFunctions = @("):]
    names = re.findall(r"'([\w-]+)'", block[:block.index(")")])
    functions = own_functions()
    utils = loaded(REQUIRES.findall(source))
    for name in names:
        util = functions[name]
        assert util == "_Watchdog" or (util in utils and name in exported(util)), name
    # Everything those functions call that is this collection's is in the script too (it runs on its own).
    bodies = [re.search(rf"^Function {re.escape(n)} \{{.*?^\}}", text(UTILS / f"{functions[n]}.psm1"), re.S | re.M)
              for n in names]
    calls = set().union(*(called(m.group(0)) for m in bodies if m))
    assert sorted(c for c in calls if c in functions and c not in names) == []
