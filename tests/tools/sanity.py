"""`make sanity`: ansible-test sanity, offline, in an ansible_collections tree built for the run.

ansible-test needs the collection at `.../ansible_collections/configmgr/sql_upgrade`. This script:

1. copies the git-tracked and untracked-but-not-ignored files (`git ls-files -co --exclude-standard`)
   into a temporary `.../ansible_collections/configmgr/sql_upgrade`, and ansible.windows from
   `.venv/collections` beside it. The tree must lie outside this git work tree: inside it, ansible-test
   would ask git for the file list, and git ignores `.build/`. It is one folder per work tree under the
   system's temporary directory (`configmgr-sql_upgrade-sanity-<hash of the repository path>`), wiped at
   the start of a run and left in place afterwards, so its tests/output/ can be read;
2. installs the offline pip bootstrap (tests/tools/get_pip_bootstrap.py) at
   `~/.ansible/test/cache/get_pip_<pip version>.py`, where ansible-test looks before it tries to
   download get-pip.py from the internet (see docs/development.md);
3. runs ansible-test twice, because pwsh cannot be installed here:
   - every test except validate-modules and pslint (pslint needs pwsh: it is skipped by name);
   - validate-modules with the `.ps1` modules excluded (validate-modules aborts on a `.ps1` without
     pwsh; their `.py` documentation stubs are still validated).

Both runs always happen; the exit status is non-zero if either failed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
REPO_ROOT = TOOLS.parent.parent
WINDOWS_SRC = REPO_ROOT / ".venv" / "collections" / "ansible_collections" / "ansible" / "windows"
BOOTSTRAP_SRC = TOOLS / "get_pip_bootstrap.py"
BOOTSTRAP_MARKER = "Offline stand-in for ansible-test's pip bootstrap script"
PS1_MODULE = re.compile(r"plugins/modules/.*\.ps1")
DEFAULT_PIP_VERSION = "24.2"  # what ansible-core 2.19's ansible-test installs in its sanity venvs

PSLINT_NOTE = (
    "NOTE: sanity test 'pslint' is SKIPPED: it runs PSScriptAnalyzer under pwsh (PowerShell 7), which cannot be "
    "installed on this machine. .ps1 files are parsed and checked by `make pscheck` instead."
)
PS1_NOTE = (
    "NOTE: validate-modules runs with plugins/modules/*.ps1 excluded: comparing a .ps1 argument spec with its "
    "documentation needs pwsh. The .py documentation stubs are validated; `make pscheck` compares the specs."
)


def tracked_files(repo: Path) -> list[str]:
    """Files git would put in a clean checkout plus new files not ignored (paths relative to repo)."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo, check=True, capture_output=True,
    ).stdout.decode()
    # A tracked file deleted in the work tree is still listed by --cached: skip it.
    return sorted({p for p in out.split("\0") if p and (repo / p).is_file()})


def copy_files(repo: Path, files: list[str], dest: Path) -> None:
    """Copy `files` from repo into dest (symlinks are copied as links, as git stores them)."""
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / rel, target, follow_symlinks=False)


def ansible_test_pip_version(ansible_test_pkg: Path) -> str:
    """The pip version ansible-test bootstraps in its venvs (`pip='24.2'` in python_requirements.py)."""
    source = ansible_test_pkg / "_internal" / "python_requirements.py"
    match = re.search(r"pip='(\d+(?:\.\d+)*)'", source.read_text()) if source.is_file() else None
    return match.group(1) if match else DEFAULT_PIP_VERSION


def bootstrap_path(pip_version: str, home: Path) -> Path:
    """Where ansible-test looks for a cached get-pip script (ansible_test/_util/target/setup/requirements.py)."""
    return home / ".ansible" / "test" / "cache" / f"get_pip_{pip_version.replace('.', '_')}.py"


def install_bootstrap(dest: Path, source: Path = BOOTSTRAP_SRC) -> str:
    """Install our bootstrap at dest; never overwrite a real get-pip.py someone cached there."""
    wanted = source.read_text()
    if dest.is_file():
        current = dest.read_text(errors="replace")
        if current == wanted:
            return f"pip bootstrap: {dest} is up to date"
        if BOOTSTRAP_MARKER not in current:
            return f"pip bootstrap: {dest} exists and is not ours (a downloaded get-pip.py?): left as it is"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    tmp.write_text(wanted)
    tmp.replace(dest)
    return f"pip bootstrap: installed {source.relative_to(REPO_ROOT)} as {dest}"


def sanity_commands(ansible_test: str, python_version: str, files: list[str]) -> list[tuple[str, list[str]]]:
    """The two ansible-test runs that together cover every sanity test that can run without pwsh."""
    base = [ansible_test, "sanity", "--python", python_version, "--requirements", "--color", "no"]
    validate = [*base, "--test", "validate-modules"]
    # ansible-test rejects an --exclude pattern that matches no target ("Target pattern not matched").
    if any(PS1_MODULE.fullmatch(f) for f in files):
        validate += ["--exclude", PS1_MODULE.pattern]
    return [
        ("all tests except validate-modules and pslint",
         [*base, "--skip-test", "validate-modules", "--skip-test", "pslint"]),
        ("validate-modules without the .ps1 modules", validate),
    ]


def sanity_root(repo: Path, tmp: Path) -> Path:
    """A folder outside the work tree, stable for this work tree (so runs do not pile up)."""
    digest = hashlib.sha256(str(repo).encode()).hexdigest()[:10]
    return tmp / f"configmgr-sql_upgrade-sanity-{digest}"


def build_tree(root: Path, files: list[str]) -> Path:
    """root/ansible_collections/configmgr/sql_upgrade with `files`, and ansible.windows beside it."""
    collection = root / "ansible_collections" / "configmgr" / "sql_upgrade"
    copy_files(REPO_ROOT, files, collection)
    shutil.copytree(WINDOWS_SRC, root / "ansible_collections" / "ansible" / "windows")
    return collection


def main() -> int:
    venv_bin = Path(sys.executable).parent
    ansible_test = venv_bin / "ansible-test"
    if not ansible_test.exists():
        print(f"sanity: {ansible_test} not found; run `make venv`", file=sys.stderr)
        return 2
    if not WINDOWS_SRC.is_dir():
        print(f"sanity: ansible.windows not found at {WINDOWS_SRC}; run `make venv`", file=sys.stderr)
        return 2

    files = tracked_files(REPO_ROOT)
    root = sanity_root(REPO_ROOT, Path(tempfile.gettempdir()))
    if root.exists():
        shutil.rmtree(root)
    collection = build_tree(root, files)
    print(f"sanity: copied {len(files)} files into {collection}")

    spec = importlib.util.find_spec("ansible_test")
    if spec is None or spec.origin is None:
        print("sanity: the ansible_test package is not importable; run `make venv`", file=sys.stderr)
        return 2
    pip_version = ansible_test_pip_version(Path(spec.origin).parent)
    print(install_bootstrap(bootstrap_path(pip_version, Path.home())))

    env = dict(os.environ, PATH=f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)  # ansible-test sets its own, from the tree above
    python_version = f"{sys.version_info.major}.{sys.version_info.minor}"
    print(PSLINT_NOTE)
    print(PS1_NOTE)
    failed: list[str] = []
    for title, command in sanity_commands(str(ansible_test), python_version, files):
        print(f"=== ansible-test sanity: {title}\n$ {' '.join(command)}", flush=True)
        if subprocess.run(command, cwd=collection, env=env, check=False).returncode != 0:
            failed.append(title)
    print(PSLINT_NOTE)
    if failed:
        print(f"sanity: FAILED: {'; '.join(failed)} (results in {collection / 'tests' / 'output'})")
        return 1
    print("sanity: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
