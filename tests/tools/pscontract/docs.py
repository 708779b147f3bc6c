"""DOCUMENTATION and RETURN of a module's `.py`, read with `ast` (no import), doc fragments resolved; and
the comparison of a spec with its DOCUMENTATION (spec = docs: the part of ansible-test's validate-modules
that needs pwsh).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from pscontract.errors import SpecError
from pscontract.extract import Delegate, _as_list
from pscontract.paths import REPO, collection_roots
from pscontract.validate import _net_str, _to_bool


def _module_strings(path: Path, names: tuple[str, ...]) -> dict[str, str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and \
                isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id in names:
                    found[target.id] = node.value.value
    return found


def _fragment_dirs() -> dict[str, Path]:
    """Doc fragment folders: this collection, ansible-core's, and every collection in collection_roots()."""
    import importlib.util
    dirs: dict[str, Path] = {}
    for root in reversed(collection_roots()):
        for folder in sorted(root.glob("ansible_collections/*/*/plugins/doc_fragments")):
            dirs[f"{folder.parents[2].name}.{folder.parents[1].name}"] = folder
    dirs["configmgr.sql_upgrade"] = REPO / "plugins" / "doc_fragments"
    found = importlib.util.find_spec("ansible")
    if found is not None and found.submodule_search_locations:
        dirs["ansible.builtin"] = Path(list(found.submodule_search_locations)[0]) / "plugins" / "doc_fragments"
    return dirs


def _fragment(name: str, dirs: Mapping[str, Path]) -> dict[str, Any]:
    """A doc fragment by name: `ns.coll.FILE[.ATTR]`, or bare `FILE[.ATTR]` (ansible.builtin)."""
    parts = name.split(".")
    collection = "ansible.builtin" if len(parts) <= 2 else ".".join(parts[:2])
    rest = parts if len(parts) <= 2 else parts[2:]
    if collection not in dirs:
        raise SpecError(f"doc fragment {name}: collection {collection} is not known here "
                        f"(searched: {', '.join(sorted(dirs))})")
    path = dirs[collection] / f"{rest[0]}.py"
    if not path.is_file():
        raise SpecError(f"doc fragment {name}: {path} not found")
    attr = rest[1].upper() if len(rest) > 1 else "DOCUMENTATION"
    text = _module_strings(path, (attr,)).get(attr)
    if text is None:
        raise SpecError(f"doc fragment {name}: {path} has no {attr}")
    return yaml.safe_load(text) or {}


def _merge_fragment(doc: dict[str, Any], fragment: dict[str, Any]) -> None:
    for key, value in fragment.items():
        if key not in doc:
            doc[key] = value
        elif isinstance(doc[key], dict) and isinstance(value, dict):
            _merge_fragment(doc[key], value)
        elif isinstance(doc[key], list) and isinstance(value, list):
            doc[key] = doc[key] + value


def load_docs(py_path: Path, fragment_dirs: Mapping[str, Path] | None = None) -> tuple[dict[str, Any], dict]:
    """(DOCUMENTATION, RETURN) of a module's `.py`, fragments merged; RETURN is {} when absent."""
    strings = _module_strings(py_path, ("DOCUMENTATION", "RETURN"))
    if "DOCUMENTATION" not in strings:
        raise SpecError(f"{py_path}: no DOCUMENTATION string")
    doc = yaml.safe_load(strings["DOCUMENTATION"]) or {}
    fragments = doc.pop("extends_documentation_fragment", None) or []
    dirs = fragment_dirs if fragment_dirs is not None else _fragment_dirs()
    for name in [fragments] if isinstance(fragments, str) else fragments:
        _merge_fragment(doc, _fragment(name, dirs))
    returns = yaml.safe_load(strings.get("RETURN") or "") or {}
    return doc, returns


# ---------------------------------------------------------------------------------------------------------
# spec = docs
# ---------------------------------------------------------------------------------------------------------


def _spec_type(option: Mapping[str, Any], key: str = "type") -> str | None:
    kind = option.get(key, "str" if key == "type" else None)
    if isinstance(kind, Delegate):
        return "raw"  # as ansible-test's ps_argspec.ps1 reports a delegate type to validate-modules
    return kind


def _norm_default(value: Any, kind: str | None) -> Any:
    if value is None:
        return None
    if kind == "bool":
        return _to_bool(value) if isinstance(value, str | bool | int) else value
    if kind == "list" and not isinstance(value, list):
        return [value]
    if kind in ("str", "path") and not isinstance(value, str):
        return value
    return value


def compare_spec_docs(spec: Mapping[str, Any], documentation: Mapping[str, Any], module: str) -> list[str]:
    """Every difference between the extracted spec and DOCUMENTATION, as messages."""
    problems = _compare_options(spec.get("options") or {}, documentation.get("options") or {}, module, [],
                                legacy=bool(spec.get("legacy")))
    check = (documentation.get("attributes") or {}).get("check_mode")
    if isinstance(check, dict) and "support" in check:
        documented = check["support"] in ("full", "partial")
        actual = bool(spec.get("supports_check_mode", False))
        if documented != actual:
            problems.append(f"{module}: supports_check_mode: spec says {actual}, docs attributes.check_mode."
                            f"support says {check['support']!r}")
    return problems


def _compare_options(spec_opts: Mapping[str, Any], doc_opts: Mapping[str, Any], module: str,
                     path: list[str], legacy: bool) -> list[str]:
    problems: list[str] = []
    for name in sorted(set(spec_opts) | set(doc_opts)):
        where = ".".join([*path, name])
        if name.startswith("_"):
            continue  # internal options (e.g. win_file's _original_basename) are not documented
        if name not in doc_opts:
            problems.append(f"{module}: option {where}: in the .ps1 spec but not in DOCUMENTATION")
            continue
        if name not in spec_opts:
            problems.append(f"{module}: option {where}: in DOCUMENTATION but not in the .ps1 spec")
            continue
        problems += _compare_option(spec_opts[name], doc_opts[name] or {}, module, [*path, name], legacy)
    return problems


def _compare_option(opt: Mapping[str, Any], doc: Mapping[str, Any], module: str, path: list[str],
                    legacy: bool) -> list[str]:
    where = ".".join(path)
    out: list[str] = []

    def differ(field_: str, spec_value: Any, doc_value: Any) -> None:
        if spec_value != doc_value:
            out.append(f"{module}: option {where}: {field_}: spec says {spec_value!r}, docs say {doc_value!r}")

    kind = _spec_type(opt)
    doc_kind = doc.get("type", "str")
    if not (legacy and kind == "raw"):
        differ("type", kind, doc_kind)
    differ("required", bool(opt.get("required", False)), bool(doc.get("required", False)))
    differ("default", _norm_default(opt.get("default"), doc_kind), _norm_default(doc.get("default"), doc_kind))
    differ("choices", _sorted_str(opt.get("choices")), _sorted_str(doc.get("choices")))
    differ("aliases", _sorted_str(opt.get("aliases")), _sorted_str(doc.get("aliases")))
    if (kind == "list" or doc_kind == "list") and not legacy:  # Get-AnsibleParam has no elements
        differ("elements", _spec_type(opt, "elements"), doc.get("elements"))
    sub_spec, sub_doc = opt.get("options") or {}, doc.get("suboptions") or {}
    if sub_spec or sub_doc:
        out += _compare_options(sub_spec, sub_doc, module, path, legacy)
    return out


def _sorted_str(values: Any) -> list[str]:
    if values is None:
        return []
    return sorted(_net_str(v) for v in _as_list(values))
