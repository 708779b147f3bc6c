"""Spec extraction: the literal `$spec = @{ ... }` given to `[Ansible.Basic.AnsibleModule]::Create($args,
$spec)`, read from the tree-sitter parse tree as Python; anything not literal raises SpecError (file:line:col
and construct). Also the `$module.Result.KEY` names a `.ps1` sets, and whether it writes `$module.Diff`.

Two statically readable forms of ansible.windows are understood too, so the twin can use the modules it
emulates: a `type = $var` where `$var = [Func[[Object], [UInt32]]] { ... }` (a converter delegate,
win_service), and a legacy `Parse-Args` / `Get-AnsibleParam` module (win_file; `legacy: True` in the spec).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import tree_sitter

from pscontract.errors import SpecError
from pscontract.wmi_rules import node_text, parse_powershell, position, unwrap, walk

Node = tree_sitter.Node


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
