"""What Ansible.Basic.cs (ansible-core 2.19) does to a module's arguments: the same order of checks and the
same messages. `validate_args(spec, args, module_name)` returns the validated params or raises ArgumentError.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pscontract.errors import ArgumentError, CheckModeSkipped
from pscontract.extract import _INT_TARGETS, Delegate, _as_list

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
