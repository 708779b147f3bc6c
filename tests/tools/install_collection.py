"""Extract one collection from the `ansible` wheel into a collections folder, without Galaxy.

Galaxy cannot be reached here, but the `ansible` package on PyPI bundles every collection of the
Ansible community package. `make venv` downloads that one wheel with `pip download --no-deps` and
runs this script to copy only `ansible_collections/<namespace>/<name>/` out of it.

    python tests/tools/install_collection.py WHEEL ansible.windows DEST_COLLECTIONS_DIR

The copy is atomic (extract into a temporary sibling folder, then rename), so an interrupted run never
leaves half a collection behind.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath


def member_prefix(fqcn: str) -> str:
    """The path prefix of a collection inside the wheel, e.g. 'ansible_collections/ansible/windows/'."""
    parts = fqcn.split(".")
    if len(parts) != 2 or not all(p.isidentifier() for p in parts):
        raise ValueError(f"not a collection name (namespace.name): {fqcn!r}")
    return f"ansible_collections/{parts[0]}/{parts[1]}/"


def collection_members(names: list[str], prefix: str) -> list[str]:
    """The wheel's file entries below `prefix`; refuses entries that would escape the destination."""
    members = [n for n in names if n.startswith(prefix) and not n.endswith("/")]
    for name in members:
        if ".." in PurePosixPath(name).parts:
            raise ValueError(f"unsafe path in wheel: {name!r}")
    return members


def install(wheel: Path, fqcn: str, dest: Path) -> int:
    """Extract the collection into dest/ansible_collections/NS/NAME; return the number of files."""
    prefix = member_prefix(fqcn)
    target = dest / prefix
    with zipfile.ZipFile(wheel) as zf:
        members = collection_members(zf.namelist(), prefix)
        if not members:
            raise SystemExit(f"{wheel.name} does not contain {fqcn} ({prefix})")
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}-") as tmp:
            zf.extractall(tmp, members)
            if target.exists():
                shutil.rmtree(target)
            (Path(tmp) / prefix).rename(target)
    return len(members)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path)
    parser.add_argument("collection", help="namespace.name, e.g. ansible.windows")
    parser.add_argument("dest", type=Path, help="collections folder (ansible_collections/ goes inside)")
    args = parser.parse_args(argv)
    count = install(args.wheel, args.collection, args.dest)
    print(f"installed {args.collection} ({count} files) into {args.dest / member_prefix(args.collection)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
