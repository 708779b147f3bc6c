"""spec = docs: compare each `.ps1` module's Ansible.Basic spec (read from its parse tree) with the `.py`
DOCUMENTATION beside it, and check that every `$module.Result.KEY` it sets is in RETURN.

Usage: python tests/tools/psspec.py [MODULE.ps1 ...]     (default: plugins/modules/*.ps1 of the repository)
Exit status 0 when every module matches, 1 otherwise. The logic lives in pscontract (the twin validates its
emulations against the same extracted spec).
"""

from __future__ import annotations

import sys
from pathlib import Path

from pscontract import REPO, module_file_problems  # noqa: E402


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    modules = [Path(a) for a in argv] or sorted((REPO / "plugins" / "modules").glob("*.ps1"))
    problems = [p for ps1 in modules for p in module_file_problems(ps1)]
    for problem in problems:
        print(problem)
    print(f"psspec: {len(modules)} module(s), {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
