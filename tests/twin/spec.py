"""A module's contract read from its code: the Ansible.Basic argument spec of the `.ps1`, the DOCUMENTATION and
RETURN of the `.py`, and the checks that tie them together (DESIGN.md "spec = docs", "twin = spec").

- `extract_spec(source, filename)`: the literal `$spec = @{ ... }` given to `[Ansible.Basic.AnsibleModule]::
  Create($args, $spec)`, as Python. Anything not literal raises `SpecError` (file:line:col and construct).
  Two statically readable forms of ansible.windows are also understood, so the twin can use the modules it
  emulates: a `type = $var` where `$var = [Func[[Object], [UInt32]]] { ... }` (a converter delegate,
  win_service), and a legacy `Parse-Args` / `Get-AnsibleParam` module (win_file; `legacy: True` in the spec).
- `load_docs(py_path)`: DOCUMENTATION and RETURN, read with `ast` (no import), doc fragments resolved.
- `compare_spec_docs(spec, documentation, module)`: mismatches, each naming module, option, field and values.
- `result_keys(source)`: the `$module.Result.KEY` names a `.ps1` sets (checked against RETURN).
- `validate_args(spec, args, module_name)`: what Ansible.Basic.cs (ansible-core 2.19) does to the arguments:
  same order of checks, same messages; raises `ArgumentError(msg)`.
- `check_result(return_doc, result, module_name)`: a result against RETURN.
- `load_module_contract(ps1_path, py_path)`: all of it, cached.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import tree_sitter
import yaml

from twin.wmi_rules import node_text, parse_powershell, position, unwrap, walk

Node = tree_sitter.Node


class SpecError(Exception):
    """The spec cannot be read statically (or the docs cannot be read)."""


class ArgumentError(Exception):
    """Ansible.Basic refused the arguments; `msg` is its message, `result` the JSON it would print."""

    def __init__(self, msg: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(msg)
        self.msg = msg
        self.result = result if result is not None else {"changed": False, "failed": True, "msg": msg}


class CheckModeSkipped(Exception):
    """Check mode on a module whose spec has no supports_check_mode: Ansible.Basic exits with this result."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result["msg"])
        self.result = result


@dataclass(frozen=True)
class Delegate:
    """`type = $var` where `$var = [Func[[Object], [TARGET]]] { [TARGET]$args[0] }`: a PowerShell cast."""

    variable: str
    target: str


# ---------------------------------------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------------------------------------

# Keys Ansible.Basic.cs accepts in a spec or an option entry (specDefaults); anything else is its
# "argument spec entry contains an invalid key" error.
SPEC_KEYS = ("apply_defaults", "aliases", "choices", "default", "deprecated_aliases", "elements",
             "mutually_exclusive", "no_log", "options", "removed_in_version", "removed_at_date",
             "removed_from_collection", "required", "required_by", "required_if", "required_one_of",
             "required_together", "supports_check_mode", "type")
TYPES = ("bool", "dict", "float", "int", "json", "list", "path", "raw", "sid", "str")
_INT_TARGETS = {"byte": (0, 255), "sbyte": (-128, 127), "int16": (-2**15, 2**15 - 1), "uint16": (0, 2**16 - 1),
                "int32": (-2**31, 2**31 - 1), "int": (-2**31, 2**31 - 1), "uint32": (0, 2**32 - 1),
                "int64": (-2**63, 2**63 - 1), "long": (-2**63, 2**63 - 1), "uint64": (0, 2**64 - 1)}
_DELEGATE_RE = re.compile(
    r"^\s*\$(?P<var>\w+)\s*=\s*\[(?:System\.)?Func\[\[(?:System\.)?Object\]\s*,\s*\[(?:System\.)?(?P<t>\w+)\]\]\]\s*\{",
    re.IGNORECASE | re.MULTILINE)


def _where(filename: str, node: Node) -> str:
    line, col = position(node)
    return f"{filename}:{line}:{col}"


def _fail(filename: str, node: Node, what: str) -> SpecError:
    text = " ".join(node_text(node).split())[:80]
    return SpecError(f"{_where(filename, node)}: {what}: {text!r} (the spec must be a literal)")


def extract_spec(source: str, filename: str = "<ps1>") -> dict[str, Any]:
    """The module's argument spec as Python (see module docstring)."""
    root = parse_powershell(source).root_node
    create = _find_create(root, filename)
    if create is None:
        if _find_command(root, "parse-args") is not None:
            return _legacy_spec(root, filename)
        raise SpecError(f"{filename}: no [Ansible.Basic.AnsibleModule]::Create($args, $spec) call")
    spec_node = _spec_argument(create, filename)
    if spec_node.type == "variable":
        spec_node = _assigned_value(root, node_text(spec_node), filename)
    converter = _Converter(filename, _delegates(source))
    spec = converter.value(spec_node)
    if not isinstance(spec, dict):
        raise _fail(filename, spec_node, "the spec is not a hashtable")
    _check_keys(spec, filename, [])
    return spec


def _find_create(root: Node, filename: str) -> Node | None:
    for node in walk(root):
        if node.type != "invokation_expression":
            continue
        kids = node.named_children
        type_lit = next((c for c in kids if c.type == "type_literal"), None)
        member = next((c for c in kids if c.type == "member_name"), None)
        if type_lit is None or member is None:
            continue
        tname = node_text(type_lit).strip("[] ").lower().removeprefix("system.")
        if tname == "ansible.basic.ansiblemodule" and node_text(member).lower() == "create":
            return node
    return None


def _spec_argument(create: Node, filename: str) -> Node:
    arg_list = next((c for c in create.named_children if c.type == "argument_list"), None)
    args = [] if arg_list is None else [n for n in walk(arg_list) if n.type == "argument_expression"]
    if len(args) == 3:
        raise _fail(filename, args[2], "spec merged with fragments at run time (not statically readable)")
    if len(args) != 2:
        raise _fail(filename, create, "expected Create($args, $spec)")
    return unwrap(args[1])


def _assigned_value(root: Node, variable: str, filename: str) -> Node:
    """The one value assigned to `variable`; any other write to it or into it is dynamic."""
    values: list[Node] = []
    name = variable.lower()
    for node in walk(root):
        if node.type != "assignment_expression":
            continue
        left = node.named_children[0]
        left_text = node_text(left).strip().lower()
        operator = next((c for c in node.named_children if c.type == "assignement_operator"), None)
        if left_text == name and operator is not None and node_text(operator) == "=":
            values.append(unwrap(node.named_children[-1]))
        elif left_text == name or left_text.startswith((name + ".", name + "[")):
            raise _fail(filename, node, f"{variable} is modified at run time")
    if len(values) != 1:
        raise SpecError(f"{filename}: {variable} is assigned {len(values)} times; expected one literal")
    return values[0]


def _delegates(source: str) -> dict[str, Delegate]:
    return {m["var"].lower(): Delegate(m["var"], m["t"]) for m in _DELEGATE_RE.finditer(source)}


def _check_keys(spec: dict[str, Any], filename: str, context: list[str]) -> None:
    for key in spec:
        if key not in SPEC_KEYS:
            where = " -> ".join(context) or "the spec"
            raise SpecError(f"{filename}: {where}: argument spec entry contains an invalid key '{key}', "
                            f"valid keys: {', '.join(SPEC_KEYS)}")
    for key in ("mutually_exclusive", "required_one_of", "required_together", "required_if"):
        groups = spec.get(key)
        if groups is not None and not (isinstance(groups, list) and all(isinstance(g, list) for g in groups)):
            where = " -> ".join(context) or "the spec"
            raise SpecError(f"{filename}: {where}: {key} must be a list of lists, got {groups!r} (PowerShell "
                            f"unrolls @(@('a', 'b')) to @('a', 'b'): write @(, @('a', 'b')))")
    for name, option in (spec.get("options") or {}).items():
        if not isinstance(option, dict):
            raise SpecError(f"{filename}: option {name} is not a hashtable")
        for key in ("type", "elements"):
            kind = option.get(key)
            if kind is not None and not isinstance(kind, Delegate) and kind not in TYPES:
                raise SpecError(f"{filename}: {' -> '.join([*context, name])}: {key} '{kind}' is unsupported. "
                                f"Valid types are: {', '.join(TYPES)}")
        _check_keys(option, filename, [*context, name])


class _Converter:
    """PowerShell literal expression -> Python value, following PowerShell's array rules."""

    def __init__(self, filename: str, delegates: dict[str, Delegate]) -> None:
        self.filename = filename
        self.delegates = delegates

    def value(self, node: Node) -> Any:
        node = unwrap(node)
        kind = node.type
        if kind == "hash_literal_expression":
            return self.hashtable(node)
        if kind == "array_expression":
            return self.array_expression(node)
        if kind == "array_literal_expression":
            return [self.value(c) for c in node.named_children]
        if kind == "expression_with_unary_operator":
            return self.unary(node)
        if kind == "parenthesized_expression":
            return self.value(node.named_children[0])
        if kind == "string_literal":
            return self.string(node)
        if kind in ("integer_literal", "decimal_integer_literal", "hexadecimal_integer_literal", "real_literal"):
            return self.number(node)
        if kind == "variable":
            return self.variable(node)
        raise _fail(self.filename, node, f"not a literal ({kind})")

    def hashtable(self, node: Node) -> dict[str, Any]:
        out: dict[str, Any] = {}
        body = next((c for c in node.named_children if c.type == "hash_literal_body"), None)
        for entry in [] if body is None else [c for c in body.named_children if c.type == "hash_entry"]:
            key = self.key(entry.named_children[0])
            if key.lower() in (k.lower() for k in out):  # PowerShell hashtables are case-insensitive
                raise _fail(self.filename, entry, f"duplicate key {key}")
            out[key] = self.value(entry.named_children[-1])
        return out

    def key(self, node: Node) -> str:
        inner = unwrap(node)
        if inner.type == "simple_name" or node.type == "key_expression" and inner.type != "string_literal":
            return node_text(inner)
        value = self.value(inner)
        if not isinstance(value, str | int):
            raise _fail(self.filename, node, "hashtable key is not a name or string")
        return str(value)

    def array_expression(self, node: Node) -> list[Any]:
        """`@( ... )`: every statement's output, each array unrolled one level (PowerShell pipeline rule)."""
        out: list[Any] = []
        statements = next((c for c in node.named_children if c.type == "statement_list"), None)
        for stmt in [] if statements is None else statements.named_children:
            if stmt.type == "comment":
                continue
            value = self.value(stmt)
            out.extend(value if isinstance(value, list) else [value])
        return out

    def unary(self, node: Node) -> Any:
        operator = node_text(node).lstrip()[:1]
        operand = self.value(node.named_children[0])
        if operator == ",":
            return [operand]
        if operator == "-" and isinstance(operand, int | float) and not isinstance(operand, bool):
            return -operand
        raise _fail(self.filename, node, "operator in the spec")

    def string(self, node: Node) -> str:
        if any(n.type in ("variable", "sub_expression") for n in walk(node)):
            raise _fail(self.filename, node, "string interpolation")
        text = node_text(node)
        inner = unwrap(node) if node.named_children else node
        if inner.type == "verbatim_here_string_characters" or text.startswith("@'"):
            return text[3:-3].replace("\r\n", "\n").removesuffix("\n")
        if text.startswith('@"'):
            return _unescape(text[3:-3].replace("\r\n", "\n").removesuffix("\n"))
        if text.startswith("'"):
            return text[1:-1].replace("''", "'")
        return _unescape(text[1:-1].replace('""', '"'))

    def number(self, node: Node) -> int | float:
        text = node_text(node)
        try:
            if text.lower().startswith("0x"):
                return int(text, 16)
            return int(text) if re.fullmatch(r"\d+", text) else float(text)
        except ValueError:
            raise _fail(self.filename, node, "number with a suffix") from None

    def variable(self, node: Node) -> Any:
        name = node_text(node).lower()
        constants = {"$true": True, "$false": False, "$null": None}
        if name in constants:
            return constants[name]
        delegate = self.delegates.get(name.lstrip("$"))
        if delegate is not None and delegate.target.lower() in _INT_TARGETS:
            return delegate
        raise _fail(self.filename, node, "variable")


_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "0": "\0", "a": "\a", "b": "\b", "f": "\f", "v": "\v", "e": "\x1b"}


def _unescape(text: str) -> str:
    return re.sub(r"`(.)", lambda m: _ESCAPES.get(m[1], m[1]), text)


def _find_command(root: Node, name: str) -> Node | None:
    for node in walk(root):
        if node.type == "command":
            cmd = next((c for c in node.named_children if c.type == "command_name"), None)
            if cmd is not None and node_text(cmd).lower() == name:
                return node
    return None


# Legacy (Ansible.ModuleUtils.Legacy) modules: Get-AnsibleParam's parameters, in positional order.
_LEGACY_PARAMS = ("obj", "name", "default", "resultobj", "failifempty", "emptyattributefailmessage",
                  "validateset", "validateseterrormessage", "type", "aliases")


def _command_args(command: Node, conv: _Converter, positional: tuple[str, ...]) -> dict[str, Node]:
    """Named and positional arguments of a command, as nodes (parameter names lower-cased)."""
    elements = next((c for c in command.named_children if c.type == "command_elements"), None)
    out: dict[str, Node] = {}
    pending: str | None = None
    position_ = 0
    for element in [] if elements is None else elements.named_children:
        if element.type == "command_argument_sep":
            continue
        if element.type == "command_parameter":
            pending = node_text(element).lstrip("-").rstrip(":").lower()
            continue
        if pending is None:
            while position_ < len(positional) and positional[position_] in out:
                position_ += 1
            if position_ >= len(positional):
                raise _fail(conv.filename, element, "unexpected positional argument")
            pending = positional[position_]
        out[pending] = element
        pending = None
    return out


def _legacy_spec(root: Node, filename: str) -> dict[str, Any]:
    conv = _Converter(filename, {})
    parse_args = _find_command(root, "parse-args")
    assert parse_args is not None
    pa = _command_args(parse_args, conv, ("arguments", "supports_check_mode"))
    supports = conv.value(pa["supports_check_mode"]) if "supports_check_mode" in pa else False
    options: dict[str, Any] = {}
    for node in walk(root):
        cmd = next((c for c in node.named_children if c.type == "command_name"), None) \
            if node.type == "command" else None
        if cmd is None or node_text(cmd).lower() not in ("get-ansibleparam", "get-attr"):
            continue
        args = _command_args(node, conv, _LEGACY_PARAMS)
        name = conv.value(args["name"])
        if not isinstance(name, str) or name.startswith("_ansible_"):
            continue
        option: dict[str, Any] = {"type": conv.value(args["type"]) if "type" in args else "raw"}
        if "default" in args:
            option["default"] = conv.value(args["default"])
        if "failifempty" in args and conv.value(args["failifempty"]):
            option["required"] = True
        if "validateset" in args:
            option["choices"] = _as_list(conv.value(args["validateset"]))
        if "aliases" in args:
            option["aliases"] = _as_list(conv.value(args["aliases"]))
        options[name] = option
    return {"options": options, "supports_check_mode": bool(supports), "legacy": True}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def result_keys(source: str) -> set[str]:
    """Top-level result keys a `.ps1` sets: `$module.Result.KEY = ...` / `$module.Result['KEY'] = ...`."""
    keys: set[str] = set()
    pattern = re.compile(r"^\$module\.result(?:\.(\w+)|\[\s*['\"](\w+)['\"]\s*\])$", re.IGNORECASE)
    for node in walk(parse_powershell(source).root_node):
        if node.type == "assignment_expression":
            match = pattern.match(node_text(node.named_children[0]).strip())
            if match:
                keys.add(match[1] or match[2])
    return keys


def code_keys(source: str) -> frozenset[str]:
    """Every hashtable-literal key and `$module.Result.KEY` in a `.ps1`: what its code can return."""
    keys = set(result_keys(source))
    for node in walk(parse_powershell(source).root_node):
        if node.type == "hash_entry" and node.named_children:
            key = unwrap(node.named_children[0])
            text = node_text(key)
            keys.add(text[1:-1] if key.type == "string_literal" else text)
    return frozenset(keys)


def supports_diff(source: str) -> bool:
    """Does the executor write `$module.Diff`? (Ansible.Basic returns `diff` only then, in diff mode.)"""
    return bool(re.search(r"\$module\.Diff\b", source, re.IGNORECASE))


# ---------------------------------------------------------------------------------------------------------
# Documentation
# ---------------------------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]


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


# ---------------------------------------------------------------------------------------------------------
# twin = spec: Ansible.Basic's argument handling
# ---------------------------------------------------------------------------------------------------------

# passVars of Ansible.Basic.cs (kept in sync with PASS_VARS of module_utils/common/parameters.py).
PASS_VARS = ("check_mode", "debug", "diff", "keep_remote_files", "ignore_unknown_opts", "module_name", "no_log",
             "remote_tmp", "selinux_special_fs", "shell_executable", "socket", "syslog_facility",
             "target_log_info", "tracebacks_for", "tmpdir", "verbosity", "version")
PASS_BOOLS = ("check_mode", "debug", "diff", "keep_remote_files", "ignore_unknown_opts", "no_log")
BOOLEANS_TRUE = ("y", "yes", "on", "1", "true", "t", "1.0")
BOOLEANS_FALSE = ("n", "no", "off", "0", "false", "f", "0.0")
NO_LOG_MASK = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


@dataclass
class ModuleFlags:
    """The `_ansible_*` values Ansible.Basic honours (AnsibleModule properties)."""

    module_name: str
    check_mode: bool = False
    diff: bool = False
    no_log: bool = False
    debug: bool = False
    verbosity: int = 0
    keep_remote_files: bool = False
    ignore_unknown_opts: bool = False
    other: dict[str, Any] = field(default_factory=dict)


def _net_type(value: Any) -> str:
    """The .NET type Ansible's JSON decoding gives a value (for messages)."""
    if isinstance(value, bool):
        return "System.Boolean"
    if isinstance(value, int):
        return "System.Int32" if -2**31 <= value < 2**31 else "System.Int64"
    if isinstance(value, float):
        return "System.Decimal"
    if isinstance(value, str):
        return "System.String"
    if isinstance(value, dict):
        return "System.Collections.Generic.Dictionary`2[System.String,System.Object]"
    if isinstance(value, list):
        return "System.Collections.ArrayList"
    raise TypeError(f"twin: a {type(value).__name__} cannot come from JSON")


def _net_str(value: Any) -> str:
    """value.ToString() as .NET prints it."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        return repr(value).removesuffix(".0") if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, dict | list):
        return _net_type(value)
    return str(value)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = _net_str(value).lower().strip()
    if text in BOOLEANS_TRUE:
        return True
    if text in BOOLEANS_FALSE:
        return False
    raise ValueError(f"The value '{text}' is not a valid boolean. Valid booleans include: "
                     f"{', '.join(BOOLEANS_TRUE + BOOLEANS_FALSE)}")


_FORMAT = "Input string was not in a correct format."


def _to_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and -2**31 <= value < 2**31:
        return value
    text = _net_str(value).strip()
    if not re.fullmatch(r"[+-]?\d+", text):
        raise ValueError(_FORMAT)
    number = int(text)
    if not -2**31 <= number < 2**31:
        raise ValueError("Value was either too large or too small for an Int32.")
    return number


def _to_float(value: Any) -> float:
    if isinstance(value, float):
        return value
    try:
        return float(_net_str(value).strip())
    except ValueError:
        raise ValueError(_FORMAT) from None


def _to_list(value: Any) -> list[Any] | None:
    if value is None:
        return None
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        return [s.strip() for s in value.split(",")]
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    raise ValueError(f"{_net_type(value)} cannot be converted to a list")


def _to_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        if value.startswith("{") and value.endswith("}"):
            return json.loads(value)
        if "=" in value:
            return _key_value_dict(value)
        raise ValueError("string cannot be converted to a dict, must either be a JSON string or in the "
                         "key=value form")
    raise ValueError(f"{_net_type(value)} cannot be converted to a dict")


def _key_value_dict(text: str) -> dict[str, Any]:
    """ParseDict's key=value splitter (quotes, backslash escapes, ',' or ' ' separators)."""
    fields: list[str] = []
    buffer: list[str] = []
    quote: str | None = None
    escape = False
    for char in text:
        if escape:
            buffer.append(char)
            escape = False
        elif char == "\\":
            escape = True
        elif quote is None and char in "'\"":
            quote = char
        elif quote is not None and char == quote:
            quote = None
        elif quote is None and char in ", ":
            if buffer:
                fields.append("".join(buffer))
            buffer = []
        else:
            buffer.append(char)
    if buffer:
        fields.append("".join(buffer))
    out: dict[str, Any] = {}
    for item in dict.fromkeys(fields):
        key, sep, val = item.partition("=")
        if key in out:
            raise ValueError("An item with the same key has already been added.")
        out[key] = val if sep else None
    return out


def _to_json(value: Any) -> str:
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, str):
        return value
    raise ValueError(f"{_net_type(value)} cannot be converted to json")


# .NET Framework Path.GetInvalidPathChars(): '"', '<', '>', '|', NUL and 1-31.
_INVALID_PATH = set('"<>|') | {chr(c) for c in range(32)}


def _to_path(value: Any, env: Mapping[str, str]) -> str:
    text = _net_str(value)
    if text.startswith("\\\\?\\"):
        return text
    lowered = {k.lower(): v for k, v in env.items()}
    text = re.sub(r"%([^%]+)%", lambda m: lowered.get(m[1].lower(), m[0]), text)  # ExpandEnvironmentVariables
    if any(c in _INVALID_PATH for c in text):
        raise ValueError("string value contains invalid path characters, cannot convert to path")
    return text


def _to_sid(value: Any) -> Any:
    raise NotImplementedError("twin: option type 'sid' needs the host's account database (NTAccount.Translate), "
                              "which the twin does not model")


def _delegate(target: str, value: Any) -> int:
    """PowerShell's `[T]$value` for an integer T (numbers round half to even; strings parse)."""
    low, high = _INT_TARGETS[target.lower()]
    shown = _net_str(value)
    try:
        if isinstance(value, bool):
            number = int(value)
        elif isinstance(value, int | float):
            number = round(value)
        else:
            number = int(str(value).strip(), 0) if str(value).strip().lower().startswith("0x") \
                else round(float(str(value).strip()))
    except ValueError:
        raise ValueError(f'Cannot convert value "{shown}" to type "System.{target}". Error: "{_FORMAT}"') from None
    if not low <= number <= high:
        raise ValueError(f'Cannot convert value "{shown}" to type "System.{target}". Error: "Value was either '
                         f'too large or too small for a {target}."')
    return number


def _convert(kind: Any, value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(kind, Delegate):
        return _delegate(kind.target, value)
    converters: dict[str, Any] = {
        "bool": _to_bool, "dict": _to_dict, "float": _to_float, "int": _to_int, "json": _to_json,
        "list": _to_list, "raw": lambda v: v, "sid": _to_sid, "str": _net_str,
        "path": lambda v: _to_path(v, env),
    }
    return converters[kind](value)


def _type_label(kind: Any) -> str:
    return "delegate" if isinstance(kind, Delegate) else str(kind)


def ansible_flags(args: Mapping[str, Any], module_name: str) -> ModuleFlags:
    """The `_ansible_*` values of an argument dict, converted as Ansible.Basic converts them."""
    flags = ModuleFlags(module_name=module_name)
    for key, value in args.items():
        if not key.startswith("_ansible_") or key[9:] not in PASS_VARS:
            continue
        name = key[9:]
        if name in PASS_BOOLS:
            setattr(flags, name, _to_bool(value))
        elif name == "verbosity":
            flags.verbosity = _to_int(value)
        elif name == "module_name" and value is not None:
            flags.module_name = str(value)
        else:
            flags.other[name] = value
    return flags


@dataclass
class _Run:
    module_name: str
    env: Mapping[str, str]
    context: list[str] = field(default_factory=list)

    def ctx(self, msg: str, prefix: str = " ") -> str:
        return f"{msg}{prefix}found in {' -> '.join(self.context)}" if self.context else msg


def validate_args(spec: Mapping[str, Any], args: Mapping[str, Any], module_name: str,
                  env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The module's Params after Ansible.Basic's checks: `_ansible_*` removed, aliases copied, defaults set,
    values converted, every option present (None when unset). Raises ArgumentError or CheckModeSkipped.

    `env` is the host's environment for `type: path` expansion (%VAR%). Ordering of the "Supported parameters"
    list: Ansible.Basic prints a .NET Hashtable's (hash) order; the twin prints option names sorted, then
    aliases — the same set of names.
    """
    flags = ansible_flags(args, module_name)
    run = _Run(flags.module_name, env or {})
    params = dict(args)
    try:
        if spec.get("legacy"):
            return _legacy_validate(spec, params, flags)
        aliases = _apply_aliases(spec, params, run)
        legal = [f"_ansible_{v}" for v in PASS_VARS] + _legal_names(spec, aliases)
        _check_arguments(spec, params, legal, run, flags, root=True)
        return params
    except ArgumentError as error:
        # Ansible.Basic has already removed the `_ansible_*` keys when it fails on the arguments.
        user_args = {k: v for k, v in args.items() if not (k.startswith("_ansible_") and k[9:] in PASS_VARS)}
        error.result.setdefault("invocation", {"module_args": mask_no_log(spec, user_args)})
        raise


def _legal_names(spec: Mapping[str, Any], aliases: Mapping[str, str]) -> list[str]:
    return sorted(spec.get("options") or {}) + list(aliases)


def _apply_aliases(spec: Mapping[str, Any], params: dict[str, Any], run: _Run) -> dict[str, str]:
    """GetAliases: alias -> option, copying an alias's value to the option's own key."""
    found: dict[str, str] = {}
    for name in sorted(spec.get("options") or {}):
        option = spec["options"][name]
        if option.get("default") is not None and option.get("required"):
            raise ArgumentError(f"internal error: required and default are mutually exclusive for {name}")
        for alias in _as_list(option.get("aliases") or []):
            found[alias] = name
            if alias in params:
                params[name] = params[alias]
    return found


def _check_arguments(spec: Mapping[str, Any], params: dict[str, Any], legal: list[str], run: _Run,
                     flags: ModuleFlags, root: bool) -> None:
    _check_unsupported(params, legal, run, flags)
    if root and flags.check_mode and not spec.get("supports_check_mode", False):
        raise CheckModeSkipped({"changed": False, "skipped": True,
                                "msg": f"remote module ({run.module_name}) does not support check mode"})
    options: Mapping[str, Any] = spec.get("options") or {}
    for group in spec.get("mutually_exclusive") or []:
        if sum(1 for name in group if name in params) > 1:
            raise ArgumentError(run.ctx(f"parameters are mutually exclusive: {', '.join(group)}"))
    _check_required(options, params, run)
    for name, option in options.items():
        if params.get(name) is not None:
            params[name] = _convert_option(name, option, params[name], run)
    _check_dependencies(spec, params, run)
    for name, option in options.items():
        params.setdefault(name, None)
        _check_sub_option(params, name, option, run, flags)


def _check_unsupported(params: dict[str, Any], legal: list[str], run: _Run, flags: ModuleFlags) -> None:
    lower = {name.lower(): name for name in legal}
    unsupported = [k for k in params if k.lower() not in lower]
    for key in [k for k in params if k.startswith("_ansible_") and k in legal]:
        del params[key]
    if unsupported and not flags.ignore_unknown_opts:
        supported = [n for n in legal if not n.startswith("_ansible_")]
        msg = run.ctx(f"Unsupported parameters for ({run.module_name}) module: {', '.join(unsupported)}")
        raise ArgumentError(f"{msg}. Supported parameters include: {', '.join(supported)}")
    for key in [k for k in params if k.lower() in lower and k not in legal]:
        params[lower[key.lower()]] = params.pop(key)  # case-insensitive match: renamed to the spec's case


def _check_required(options: Mapping[str, Any], params: dict[str, Any], run: _Run) -> None:
    missing = []
    for name, option in options.items():
        if option.get("default") is not None and name not in params:
            params[name] = option["default"]
        if option.get("required") and name not in params:
            missing.append(name)
    if missing:
        raise ArgumentError(run.ctx(f"missing required arguments: {', '.join(missing)}"))


def _convert_option(name: str, option: Mapping[str, Any], value: Any, run: _Run) -> Any:
    kind = option.get("type", "str")
    try:
        value = _convert(kind, value, run.env)
    except ValueError as error:
        raise ArgumentError(run.ctx(f"argument for {name} is of type {_net_type(value)} and we were unable to "
                                    f"convert to {_type_label(kind)}: {error}")) from None
    choices = [_net_str(c) for c in option.get("choices") or []]
    if choices:
        values = [_net_str(v) for v in value] if kind == "list" else [_net_str(value)]
        wording = "one or more of" if kind == "list" else "one of"
        allowed = {c.lower() for c in choices}
        no_match = list(dict.fromkeys(v for v in values if v.lower() not in allowed))
        if no_match:
            raise ArgumentError(run.ctx(f"value of {name} must be {wording}: {', '.join(choices)}. "
                                        f"Got no match for: {', '.join(no_match)}"))
    return value


def _check_dependencies(spec: Mapping[str, Any], params: dict[str, Any], run: _Run) -> None:
    for group in spec.get("required_together") or []:
        present = [name in params for name in group]
        if any(present) and not all(present):
            raise ArgumentError(run.ctx(f"parameters are required together: {', '.join(group)}"))
    for group in spec.get("required_one_of") or []:
        if not any(name in params for name in group):
            raise ArgumentError(run.ctx(f"one of the following is required: {', '.join(group)}"))
    for check in spec.get("required_if") or []:
        _check_required_if(check, params, run)
    for key, needs in (spec.get("required_by") or {}).items():
        if key in params:
            missing = [n for n in _as_list(needs) if n not in params]
            if missing:
                raise ArgumentError(run.ctx(f"missing parameter(s) required by '{key}': {', '.join(missing)}"))


def _check_required_if(check: list[Any], params: dict[str, Any], run: _Run) -> None:
    if len(check) < 3:
        raise ArgumentError(f"internal error: invalid required_if value count of {len(check)}, expecting 3 or "
                            "4 entries")
    key, value, requirements = check[0], check[1], _as_list(check[2])
    any_of = len(check) == 4 and bool(check[3])
    if params.get(key) is None or _net_str(params[key]) != _net_str(value):
        return
    missing = [r for r in requirements if r not in params]
    if len(missing) >= (len(requirements) if any_of else 1) and missing:
        term = "any" if any_of else "all"
        raise ArgumentError(run.ctx(f"{key} is {_net_str(value)} but {term} of the following are missing: "
                                    f"{', '.join(missing)}"))


def _check_sub_option(params: dict[str, Any], name: str, option: Mapping[str, Any], run: _Run,
                      flags: ModuleFlags) -> None:
    kind, elements = option.get("type", "str"), option.get("elements")
    if not (kind == "dict" or (kind == "list" and elements is not None)):
        return
    value = params[name]
    if kind == "dict":
        params[name] = _parse_sub_spec(option, value, name, run, flags)
        return
    if value is None:
        return
    converted = []
    for element in value:
        if elements == "dict":
            converted.append(_parse_sub_spec(option, element, name, run, flags))
            continue
        try:
            converted.append(_convert(elements, element, run.env))
        except ValueError as error:
            raise ArgumentError(run.ctx(f"argument for list entry {name} is of type {_net_type(element)} and we "
                                        f"were unable to convert to {_type_label(elements)}: {error}")) from None
    params[name] = converted


def _parse_sub_spec(option: Mapping[str, Any], value: Any, name: str, run: _Run, flags: ModuleFlags) -> Any:
    sub_options = option.get("options") or {}
    if option.get("apply_defaults") and sub_options and value is None:
        value = {}
    elif not sub_options or value is None:
        return value
    run.context.append(name)
    try:
        try:
            sub_params = dict(_to_dict(value))
        except ValueError as error:
            raise ArgumentError(str(error)) from None
        aliases = _apply_aliases(option, sub_params, run)
        _check_arguments(option, sub_params, _legal_names(option, aliases), run, flags, root=False)
    finally:
        run.context.pop()
    return sub_params


def _legacy_validate(spec: Mapping[str, Any], params: dict[str, Any], flags: ModuleFlags) -> dict[str, Any]:
    """Ansible.ModuleUtils.Legacy's Parse-Args + Get-AnsibleParam (messages from Legacy.psm1).

    A real legacy module silently ignores unknown options; the twin refuses them, loudly, so that a test can
    never pass on an option the module would not have read.
    """
    if flags.check_mode and not spec.get("supports_check_mode"):
        raise CheckModeSkipped({"changed": False, "skipped": True, "msg": "remote module does not support check mode"})
    options: Mapping[str, Any] = spec.get("options") or {}
    known = {n for n, o in options.items()} | {a for o in options.values() for a in o.get("aliases") or []}
    unknown = [k for k in params if not k.startswith("_ansible_") and k not in known]
    if unknown:
        raise ArgumentError(f"Unsupported parameters for ({flags.module_name}) module: {', '.join(unknown)} (a legacy "
                            f"Parse-Args module would silently ignore them; the twin refuses). Supported parameters "
                            f"include: {', '.join(sorted(known))}")
    out: dict[str, Any] = {}
    for name, option in options.items():
        found = next((n for n in [name, *(option.get("aliases") or [])] if n in params), None)
        out[name] = _legacy_value(name, found, option, params)
    return out


def _legacy_value(name: str, found: str | None, option: Mapping[str, Any], params: Mapping[str, Any]) -> Any:
    if found is None:
        if option.get("required"):
            raise ArgumentError(f"Get-AnsibleParam: Missing required argument: {name}")
        value = option.get("default")
    else:
        value = params[found]
        choices = option.get("choices")
        if choices and _net_str(value).lower() not in {_net_str(c).lower() for c in choices}:
            raise ArgumentError(f"Get-AnsibleParam: Argument {found} needs to be one of "
                                f"{','.join(_net_str(c) for c in choices)} but was {_net_str(value)}.")
    if value is None:
        return None
    kind = option.get("type")
    if kind == "bool":
        return _to_bool(value)
    if kind == "str":
        return _net_str(value)
    if kind == "list":
        return _to_list(value)
    if kind == "int":
        try:
            return _to_int(value)
        except ValueError:
            return None  # `$value -as [int]` gives $null
    return value


def mask_no_log(spec: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Params with no_log option values masked, as Ansible.Basic puts them in `invocation.module_args`."""
    secrets = {_net_str(params[name]) for name, opt in (spec.get("options") or {}).items()
               if opt.get("no_log") and params.get(name) not in (None, "")}
    return {k: (NO_LOG_MASK if v is not None and not isinstance(v, dict | list) and _net_str(v) in secrets else v)
            for k, v in params.items()}


def invocation(spec: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    return {"module_args": mask_no_log(spec, params)}


# ---------------------------------------------------------------------------------------------------------
# Results against RETURN
# ---------------------------------------------------------------------------------------------------------

# Keys Ansible.Basic / Ansible add to any result; `diff` only when the module supports diff (it writes
# $module.Diff) — Ansible.Basic emits `diff` only in diff mode and only when Diff is non-empty.
COMMON_RESULT_KEYS = frozenset({"changed", "failed", "msg", "warnings", "deprecations", "invocation", "exception",
                                "skipped"})
_RETURN_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,), "int": (int,), "bool": (bool,), "float": (int, float), "list": (list,), "dict": (dict,),
    "complex": (dict, list), "path": (str,),
}


def check_result(return_doc: Mapping[str, Any], result: Mapping[str, Any], module_name: str,
                 supports_diff: bool = False, tolerated: frozenset[str] = frozenset()) -> list[str]:
    """Problems of `result` against RETURN: documented `returned: always` keys (and `returned: success` keys on
    a successful result) present, types as documented (None is accepted for any type: Ansible.Basic sends
    $null as null), nothing undocumented beyond COMMON_RESULT_KEYS (+ `diff` if `supports_diff`).

    `tolerated`: undocumented key names accepted anyway, at any depth. Only for modules of other collections,
    whose code returns keys their RETURN omits (ansible.windows win_service_info returns `win32_exit_code`);
    see `code_keys`. This collection's modules get none: their RETURN must be complete."""
    allowed = set(COMMON_RESULT_KEYS) | ({"diff"} if supports_diff else set()) | set(tolerated)
    success = not result.get("failed") and not result.get("skipped")
    problems = [f"{module_name}: result key {k!r} is not documented in RETURN"
                for k in result if k not in return_doc and k not in allowed]
    return problems + _check_returns(return_doc, result, module_name, [], success, tolerated)


def _check_returns(doc: Mapping[str, Any], value: Mapping[str, Any], module: str, path: list[str],
                   success: bool, tolerated: frozenset[str] = frozenset()) -> list[str]:
    problems: list[str] = []
    for key, entry in doc.items():
        entry = entry or {}
        where = ".".join([*path, key])
        returned = str(entry.get("returned", "")).strip().lower()
        if key not in value:
            if returned == "always" or (returned == "success" and success):
                problems.append(f"{module}: RETURN {where} is 'returned: {returned}' but missing from the result")
            continue
        problems += _check_type(entry, value[key], module, where, success, tolerated)
    return problems


def _check_type(entry: Mapping[str, Any], item: Any, module: str, where: str, success: bool,
                tolerated: frozenset[str]) -> list[str]:
    kind = entry.get("type", "str")
    if item is None or kind == "raw":
        return []
    expected = _RETURN_TYPES.get(kind)
    if expected is None:
        return [f"{module}: RETURN {where} has unknown type {kind!r}"]
    if not isinstance(item, expected) or (kind in ("int", "float") and isinstance(item, bool)):
        return [f"{module}: RETURN {where} is documented as {kind} but the result has "
                f"{type(item).__name__} {item!r}"[:300]]
    contains = entry.get("contains")
    if not contains:
        return []
    items = item if isinstance(item, list) else [item]
    problems: list[str] = []
    for index, element in enumerate(items):
        label = f"{where}[{index}]" if isinstance(item, list) else where
        if not isinstance(element, dict):
            problems.append(f"{module}: RETURN {label} should be a dict (it documents 'contains')")
            continue
        problems += [f"{module}: result key {label}.{k} is not documented in RETURN"
                     for k in element if k not in contains and k not in tolerated]
        problems += _check_returns(contains, element, module, [label], success, tolerated)
    return problems


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

    def validate_args(self, args: Mapping[str, Any], module_name: str | None = None,
                      env: Mapping[str, str] | None = None) -> dict[str, Any]:
        return validate_args(self.spec, args, module_name or self.name, env)

    def check_result(self, result: Mapping[str, Any]) -> list[str]:
        return check_result(self.returns, result, self.name, self.supports_diff, self.tolerated_keys)


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
                          tolerated_keys=frozenset() if own else code_keys(source))


def contract_problems(contract: ModuleContract) -> list[str]:
    """spec = docs, and every result key the `.ps1` sets is documented in RETURN."""
    problems = compare_spec_docs(contract.spec, contract.documentation, contract.name)
    undocumented = sorted(k for k in contract.result_keys if k not in contract.returns and k not in COMMON_RESULT_KEYS)
    problems += [f"{contract.name}: the .ps1 sets result key {k!r}, which RETURN does not document"
                 for k in undocumented]
    return problems


# ---------------------------------------------------------------------------------------------------------
# By fully-qualified module name (the emulation layer's seam)
# ---------------------------------------------------------------------------------------------------------


def collection_roots() -> list[Path]:
    """Folders holding `ansible_collections/`: ANSIBLE_COLLECTIONS_PATH, the repo's .build and .venv layouts,
    then sys.path (tests/conftest.py puts both there)."""
    import os
    import sys
    roots = [Path(p) for p in os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep) if p]
    roots += [REPO / ".build" / "collections", REPO / ".venv" / "collections"]
    roots += [Path(p) for p in sys.path if p]
    return list(dict.fromkeys(roots))


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


def check_module_result(fqcn: str, result: Mapping[str, Any]) -> list[str]:
    """Problems of a module result against that module's RETURN (empty list = conforms)."""
    return contract_for(fqcn).check_result(result)


def module_file_problems(ps1: Path, py: Path | None = None) -> list[str]:
    """spec = docs for one `.ps1` module file: a missing `.py`, an unreadable spec or docs, every mismatch."""
    py = py if py is not None else ps1.with_suffix(".py")
    if not py.is_file():
        return [f"{ps1.stem}: {ps1} has no documentation stub {py.name} beside it"]
    try:
        return contract_problems(load_module_contract(ps1, py))
    except (SpecError, yaml.YAMLError, SyntaxError) as error:
        return [f"{ps1.stem}: {error}"]
