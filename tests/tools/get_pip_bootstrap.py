"""Offline stand-in for ansible-test's pip bootstrap script (`get-pip.py`).

ansible-test creates a fresh virtual environment for each sanity test and bootstraps pip in it by
running `~/.ansible/test/cache/get_pip_<version>.py` (for ansible-core 2.19: `get_pip_24_2.py`). When
that file is missing it downloads it from ci-files.testing.ansible.com, which fails on an air-gapped
machine ("Name or service not known"). ansible-test's quiet_pip.py runs the cached file with runpy as
`__main__`, with arguments like:

    --disable-pip-version-check pip==24.2 --no-setuptools --no-wheel

This script does what get-pip.py does, with what the machine already has:
1. drops `--no-setuptools` / `--no-wheel` (pip's own `install` does not know them);
2. `python -m ensurepip --upgrade --default-pip` (pip from the Python installation itself), then
   `python -m pip install --upgrade <the remaining arguments>` in a subprocess, so the machine's pip
   configuration (index, find-links, CA bundle) applies;
3. uninstalls setuptools / wheel if they were asked to be absent (ensurepip may bring setuptools).

`tests/tools/sanity.py` installs it at the path ansible-test looks for. Not part of the collection.
"""

from __future__ import annotations

import subprocess
import sys

ABSENCE_FLAGS = {"--no-setuptools": "setuptools", "--no-wheel": "wheel"}


def split_arguments(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split get-pip's arguments into pip-install arguments and the packages that must be absent."""
    install_args = [a for a in argv if a not in ABSENCE_FLAGS]
    absent = [ABSENCE_FLAGS[a] for a in argv if a in ABSENCE_FLAGS]
    return install_args, absent


def commands(python: str, argv: list[str]) -> list[list[str]]:
    """The commands that bootstrap pip for `python` as get-pip.py would with these arguments."""
    install_args, absent = split_arguments(argv)
    steps = [
        [python, "-m", "ensurepip", "--upgrade", "--default-pip"],
        [python, "-m", "pip", "install", "--upgrade", *install_args],
    ]
    if absent:
        steps.append([python, "-m", "pip", "uninstall", "--yes", "--disable-pip-version-check", *absent])
    return steps


def main(argv: list[str]) -> int:
    for command in commands(sys.executable, argv):
        result = subprocess.run(command, check=False)
        if result.returncode != 0:
            print(f"get_pip bootstrap: {' '.join(command)} failed with {result.returncode}", file=sys.stderr)
            return result.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
