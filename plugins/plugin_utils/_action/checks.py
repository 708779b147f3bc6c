# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side validation of the task options of win_service_quiesce and wmi_disable, and shaping of
their results. Pure and Ansible-free: the action plugins call these before anything is sent to the host,
so bad input fails with a message naming the option and nothing reaches the host.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .._window.patterns import plain_type, validate_patterns
from .errors import PlanError

BOOL_TRUE = ("yes", "on", "1", "true", "y", "t")
BOOL_FALSE = ("no", "off", "0", "false", "n", "f")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PROCESS_BAD = re.compile(r"[*?\[\]\\/\x00-\x1f\x7f]")


def _bool(option: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in BOOL_TRUE + BOOL_FALSE:
        return value.strip().lower() in BOOL_TRUE
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise PlanError(f"option {option} must be a boolean, got {value!r}")


def _int(option: str, value: Any, low: int, high: int) -> int:
    """Ansible's int type (check_type_int): an int, or a string or float without a fractional part; 5.5 is
    an error, not 5."""
    if isinstance(value, bool):
        raise PlanError(f"option {option} must be an integer, got {value!r}")
    try:
        exact = decimal.Decimal(str(value).strip()) if isinstance(value, str | float) else value
        number = int(exact)
        if exact != number:
            raise ValueError("fractional part")
    except (decimal.DecimalException, TypeError, ValueError):
        raise PlanError(f"option {option} must be an integer: {value!r} ({plain_type(value)}) cannot be converted "
                        "to an int") from None
    if not low <= number <= high:
        raise PlanError(f"option {option} must be between {low} and {high}, got {number}")
    return number


def _choice(option: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise PlanError(f"option {option} must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _unknown(args: Mapping[str, Any], known: Sequence[str]) -> None:
    unknown = sorted(k for k in args if k not in known)
    internal = [k for k in unknown if k.startswith("_")]
    if internal:
        raise PlanError(f"option {internal[0]} is internal to the action plugin and cannot be set in a task")
    if unknown:
        raise PlanError(f"unsupported option(s) {', '.join(unknown)}; supported: {', '.join(sorted(known))}")


def valid_instance_name(name: str) -> bool:
    """SQL Server's rule for instance names (setup's Instance Configuration page): at most 16 characters, the
    first a letter ("Letters as defined by the Unicode Standard 2.0") or underscore, the others letters, decimal
    digits, $ or _; no spaces, \\ , : ; ' & - or @. So not a superscript or other numeric character, which
    Python's \\w would take."""
    return (0 < len(name) <= 16 and (name[0].isalpha() or name[0] == "_")
            and all(c.isalpha() or c.isdecimal() or c in "_$" for c in name[1:]))


QUIESCE_OPTIONS = (
    "state",
    "keep",
    "stop",
    "disable",
    "processes",
    "instance",
    "sql_sessions",
    "timeout",
    "missing_journal_ok",
    "end_hung_services",
    "lease_minutes",
    "run_id",
    "takeover",
)
WMI_OPTIONS = ("state", "timeout", "settle_seconds", "run_id", "takeover")


def _run_options(args: Mapping[str, Any]) -> dict[str, Any]:
    """run_id and takeover: a run id or nothing (checked against the run id rule with the journal)."""
    out: dict[str, Any] = {}
    for option in ("run_id", "takeover"):
        value = args.get(option)
        if value is not None and not isinstance(value, str):
            raise PlanError(f"option {option} must be a run id string such as r-3f2a9c01d4e5b6a7, got {value!r}")
        out[option] = value or None
    return out


def _instance(args: Mapping[str, Any]) -> str:
    """The option instance, held to SQL Server's instance-name rule (valid_instance_name)."""
    instance = args.get("instance", "MSSQLSERVER")
    if not isinstance(instance, str) or not valid_instance_name(instance):
        raise PlanError(
            f"option instance must be a SQL Server instance name (MSSQLSERVER for the default instance; a named "
            f"instance has 1-16 letters, digits, _ or $ and starts with a letter or _), got {instance!r}"
        )
    return instance


def validate_quiesce_args(args: Mapping[str, Any]) -> dict[str, Any]:
    """The task's options with defaults applied, or PlanError naming the first bad option."""
    _unknown(args, QUIESCE_OPTIONS)
    state = _choice("state", args.get("state", "quiesced"), ("quiesced", "restored", "verified"))
    keep = validate_patterns("keep", args.get("keep"))
    stop = validate_patterns("stop", args.get("stop"))
    processes = args.get("processes") or []
    if isinstance(processes, str):
        processes = processes.split(",")  # Ansible's list type
    if not isinstance(processes, list):
        raise PlanError("option processes must be a list of process names")
    for index, name in enumerate(processes):
        if not isinstance(name, str) or not name.strip() or _PROCESS_BAD.search(name):
            raise PlanError(
                f"option processes[{index}] must be a process name without wildcards or path characters "
                f"(for example Microsoft.ConfigurationManagement), got {name!r}"
            )
    instance = _instance(args)
    sessions = args.get("sql_sessions") or []
    if not isinstance(sessions, list):
        raise PlanError("option sql_sessions must be a list of dicts with host_process_id")
    for index, session in enumerate(sessions):
        pid = session.get("host_process_id") if isinstance(session, dict) else None
        if not isinstance(pid, int) or isinstance(pid, bool) or pid < 0:
            raise PlanError(
                f"option sql_sessions[{index}] needs host_process_id as a non-negative integer, got {session!r}"
            )
    return {
        "state": state,
        "keep": keep,
        "stop": stop,
        "disable": _bool("disable", args.get("disable", True)),
        "processes": list(processes),
        "instance": instance,
        "sql_sessions": [dict(s) for s in sessions],
        "timeout": _int("timeout", args.get("timeout", 120), 1, 86400),
        "missing_journal_ok": _bool("missing_journal_ok", args.get("missing_journal_ok", False)),
        "end_hung_services": _bool("end_hung_services", args.get("end_hung_services", True)),
        "lease_minutes": _int("lease_minutes", args.get("lease_minutes", 60), 5, 1440),
        **_run_options(args),
    }


def validate_wmi_args(args: Mapping[str, Any]) -> dict[str, Any]:
    _unknown(args, WMI_OPTIONS)
    return {
        "state": _choice("state", args.get("state", "disabled"), ("disabled", "running_for_setup", "enabled")),
        "timeout": _int("timeout", args.get("timeout", 120), 1, 86400),
        "settle_seconds": _int("settle_seconds", args.get("settle_seconds", 5), 0, 3600),
        **_run_options(args),
    }


NET_OPTIONS = ("state", "allow_from", "allow_to", "domain_controllers", "lease_minutes", "probation_seconds", "timeout",
               "run_id", "takeover")


def _address_list(option: str, value: Any, default: list[str] | None) -> list[str] | None:
    """Ansible's list type for address options (a comma string splits); each entry checked by network.py."""
    if value is None:
        return default
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list):
        raise PlanError(f"option {option} must be a list of addresses or networks, got {plain_type(value)}")
    return [v.strip() if isinstance(v, str) else v for v in value]


def validate_net_args(args: Mapping[str, Any]) -> dict[str, Any]:
    """net_isolate's options with defaults applied, or PlanError naming the first bad option. The addresses
    are checked (and refused when they would lock the controller out or isolate nothing) in network.py."""
    from .._window.network import parse_addresses  # noqa: PLC0415  (network imports nothing from here; keeps args light)

    _unknown(args, NET_OPTIONS)
    opts = {
        "state": _choice("state", args.get("state", "isolated"), ("isolated", "restored")),
        "allow_from": _address_list("allow_from", args.get("allow_from"), None),
        "allow_to": _address_list("allow_to", args.get("allow_to"), []),
        "domain_controllers": _address_list("domain_controllers", args.get("domain_controllers"), None),
        "lease_minutes": _int("lease_minutes", args.get("lease_minutes", 30), 5, 1440),
        "probation_seconds": _int("probation_seconds", args.get("probation_seconds", 120), 60, 3600),
        "timeout": _int("timeout", args.get("timeout", 120), 1, 86400),
        **_run_options(args),
    }
    for option in ("allow_from", "allow_to", "domain_controllers"):
        if opts[option] is not None:
            parse_addresses(option, opts[option])
    return opts


GATE_OPTIONS = ("instance", "login_user", "login_password", "allowed_programs", "wait_timeout", "poll_interval",
                "fail_when_blocked")


def validate_gate_args(args: Mapping[str, Any]) -> dict[str, Any]:
    """sql_single_user_check's options with defaults applied, or PlanError naming the first bad option."""
    _unknown(args, GATE_OPTIONS)
    instance = _instance(args)
    user = args.get("login_user")
    password = args.get("login_password")
    if user is not None and (not isinstance(user, str) or not user.strip() or _CONTROL.search(user)):
        raise PlanError("option login_user must be a SQL Server login name")
    if password is not None and not isinstance(password, str):
        raise PlanError("option login_password must be a string")
    if password is not None and not user:
        raise PlanError("option login_password needs login_user (without a login the connection uses Windows "
                        "authentication)")
    programs = args.get("allowed_programs") or []
    if isinstance(programs, str):
        programs = programs.split(",")
    if not isinstance(programs, list) or not all(isinstance(p, str) and p.strip() for p in programs):
        raise PlanError("option allowed_programs must be a list of program names")
    return {
        "instance": instance,
        "login_user": user,
        "login_password": password,
        "allowed_programs": [p.strip() for p in programs],
        "wait_timeout": _int("wait_timeout", args.get("wait_timeout", 0), 0, 86400),
        "poll_interval": _int("poll_interval", args.get("poll_interval", 5), 1, 300),
        "fail_when_blocked": _bool("fail_when_blocked", args.get("fail_when_blocked", True)),
    }
