# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A task's options, checked before anything is sent to the host: ansible-core's ArgumentSpecValidator with the
module's spec (``specs.py``), then what Ansible's argument spec cannot say, by hand, per module: ranges, SQL Server
instance names, service patterns, process names, addresses, versions, checksums, paths.

``validate(module, args)`` is the one entry; bad input raises PlanError naming the option, and nothing reaches a
host. Internal to configmgr.sql_upgrade (controller-side, not a public API).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.errors import UnsupportedError

from .._sql import media as md
from .._sql import setup as su
from .._window.network import parse_addresses
from .._window.patterns import validate_patterns
from .errors import PlanError
from .specs import SPECS

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PROCESS_BAD = re.compile(r"[*?\[\]\\/\x00-\x1f\x7f]")
_PATH_BAD = '*?"<>|\x00\r\n'


def validate(module: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """`module`'s options (short name) from a task's `args`, converted and completed, or PlanError naming the
    first bad option."""
    internal = sorted(str(k) for k in args if str(k).startswith("_"))
    if internal:
        raise PlanError(f"option {internal[0]} is internal to the action plugin and cannot be set in a task")
    result = ArgumentSpecValidator(**SPECS[module]).validate(dict(args))
    if result.error_messages:
        first = result.errors[0]
        msg = str(first)
        if isinstance(first, UnsupportedError):
            msg = f"unsupported option(s) {msg}"
        raise PlanError(msg)
    return DOMAIN_CHECKS[module](dict(result.validated_parameters))


def _range(option: str, value: Any, low: int, high: int) -> int:
    # Ansible's int type takes a bool (a subclass of int); a timeout of `true` is a mistake, not 1 second.
    if isinstance(value, bool) or not isinstance(value, int):
        raise PlanError(f"option {option} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise PlanError(f"option {option} must be between {low} and {high}, got {value}")
    return value


def _timeout(p: dict[str, Any]) -> int:
    """The service window's per-service timeout (specs._TIMEOUT): 1 second to a day."""
    return _range("timeout", p["timeout"], 1, 86400)


def valid_instance_name(name: str) -> bool:
    """SQL Server's rule for instance names (setup's Instance Configuration page): at most 16 characters, the
    first a letter ("Letters as defined by the Unicode Standard 2.0") or underscore, the others letters, decimal
    digits, $ or _; no spaces, \\ , : ; ' & - or @. So not a superscript or other numeric character, which
    Python's \\w would take."""
    return (0 < len(name) <= 16 and (name[0].isalpha() or name[0] == "_")
            and all(c.isalpha() or c.isdecimal() or c in "_$" for c in name[1:]))


def _instance(p: dict[str, Any]) -> str:
    instance = p["instance"]
    if not isinstance(instance, str) or not valid_instance_name(instance):
        raise PlanError(
            f"option instance must be a SQL Server instance name (MSSQLSERVER for the default instance; a named "
            f"instance has 1-16 letters, digits, _ or $ and starts with a letter or _), got {instance!r}"
        )
    return instance


def _text(p: dict[str, Any], option: str) -> str | None:
    """A string option that, when given, may not be empty."""
    value = p.get(option)
    if value is not None and not value:
        raise PlanError(f"option {option} must be a non-empty string")
    return value


def _local_path(option: str, value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or any(c in value for c in _PATH_BAD):
        raise PlanError(f"option {option} must be {what}, got {value!r}")
    return value


def _quiesce(p: dict[str, Any]) -> dict[str, Any]:
    processes = p["processes"] or []
    for index, name in enumerate(processes):
        if not name.strip() or _PROCESS_BAD.search(name):
            raise PlanError(
                f"option processes[{index}] must be a process name without wildcards or path characters "
                f"(for example Microsoft.ConfigurationManagement), got {name!r}"
            )
    sessions = p["sql_sessions"] or []
    for index, session in enumerate(sessions):
        pid = session.get("host_process_id")
        if not isinstance(pid, int) or isinstance(pid, bool) or pid < 0:
            raise PlanError(
                f"option sql_sessions[{index}] needs host_process_id as a non-negative integer, got {session!r}"
            )
    return {**p, "keep": validate_patterns("keep", p["keep"]), "stop": validate_patterns("stop", p["stop"]),
            "processes": list(processes), "instance": _instance(p), "sql_sessions": [dict(s) for s in sessions],
            "timeout": _timeout(p),
            "configmgr_stop_timeout": _range("configmgr_stop_timeout", p["configmgr_stop_timeout"], 30, 14400),
            "lease_minutes": _range("lease_minutes", p["lease_minutes"], 5, 1440)}


def _wmi(p: dict[str, Any]) -> dict[str, Any]:
    return {**p, "timeout": _timeout(p),
            "settle_seconds": _range("settle_seconds", p["settle_seconds"], 0, 3600)}


def _net(p: dict[str, Any]) -> dict[str, Any]:
    """The addresses are checked here, and refused when they would lock the controller out or isolate nothing, by
    the planner (network.py)."""
    out = {**p, "lease_minutes": _range("lease_minutes", p["lease_minutes"], 5, 1440),
           "probation_seconds": _range("probation_seconds", p["probation_seconds"], 60, 3600),
           "timeout": _timeout(p)}
    for option in ("allow_from", "allow_to", "domain_controllers"):
        if out[option] is not None:
            out[option] = [v.strip() for v in out[option]]
            parse_addresses(option, out[option])
    if out["allow_to"] is None:
        out["allow_to"] = []
    return out


def _gate(p: dict[str, Any]) -> dict[str, Any]:
    user = p["login_user"]
    if user is not None and (not user.strip() or _CONTROL.search(user)):
        raise PlanError("option login_user must be a SQL Server login name")
    programs = p["allowed_programs"] or []
    if not all(program.strip() for program in programs):
        raise PlanError("option allowed_programs must be a list of program names")
    return {**p, "instance": _instance(p), "allowed_programs": [program.strip() for program in programs],
            "wait_timeout": _range("wait_timeout", p["wait_timeout"], 0, 86400),
            "poll_interval": _range("poll_interval", p["poll_interval"], 1, 300)}


def _version(option: str, value: Any) -> str:
    try:
        su.parse_version(value)
    except ValueError as exc:
        raise PlanError(f"option {option}: {exc}") from None
    return str(value)


def _preflight(p: dict[str, Any]) -> dict[str, Any]:
    needs: dict[str, int] = {}
    for letter, gib in (p["drives"] or {}).items():
        if not isinstance(letter, str) or len(letter.rstrip(":")) != 1 or not letter[0].isalpha():
            raise PlanError(f"option drives: {letter!r} is not a drive letter")
        if isinstance(gib, str) and gib.strip().isdecimal():
            gib = int(gib)  # Ansible's dict type keeps values as given: a GiB count from a survey is a string
        needs[letter[0].upper()] = _range(f"drives.{letter}", gib, 0, 100000)
    media = p["media_path"]
    if media is not None:
        _local_path("media_path", media, "a local folder")
    return {**p, "instance": _instance(p), "target_version": _version("target_version", p["target_version"]),
            "drives": needs, "backup_max_age_hours": _range("backup_max_age_hours", p["backup_max_age_hours"], 1,
                                                            100000)}


def _media(p: dict[str, Any]) -> dict[str, Any]:
    out = {option: _text(p, option) for option in ("src", "url", "url_username", "url_password", "share_path",
                                                   "share_user", "share_password", "checksum", "checksum_file")}
    out.update({"dest": md.validate_dest(p["dest"]), "validate_certs": p["validate_certs"], "force": p["force"],
                "chunk_size_mib": _range("chunk_size_mib", p["chunk_size_mib"], 1, 1024)})
    if out["url"] is not None:
        md.validate_url(out["url"])
    if out["share_path"] is not None:
        out["share_path"] = md.validate_share_path(out["share_path"])
    if out["checksum"] is not None:
        out["checksum"] = md.parse_checksum(out["checksum"])
    return out


def _setup(p: dict[str, Any]) -> dict[str, Any]:
    key = p["product_key"]
    if key is not None and not su.valid_product_key(key):
        raise PlanError("option product_key must be a SQL Server product key of five groups of five letters or "
                        "digits separated by '-' (the value is not shown)")
    media = _local_path("media_path", p["media_path"], "the local folder of the media (sql_media's dest)")
    return {**p, "media_path": media.rstrip("\\"), "instance": _instance(p),
            "target_version": None if p["target_version"] is None else _version("target_version", p["target_version"]),
            "extra_args": su.validate_extra_args(p["extra_args"]),
            "wait_timeout": _range("wait_timeout", p["wait_timeout"], 0, 259200),
            "poll_interval": _range("poll_interval", p["poll_interval"], 1, 3600),
            "stall_warning": _range("stall_warning", p["stall_warning"], 0, 86400)}


#: module short name -> its checks beyond the spec (every module of SPECS has one).
def _reboot(p: dict[str, Any]) -> dict[str, Any]:
    return {**p, "reboot_timeout": _range("reboot_timeout", p["reboot_timeout"], 1, 86400),
            "pre_reboot_delay": _range("pre_reboot_delay", p["pre_reboot_delay"], 0, 3600),
            "post_reboot_delay": _range("post_reboot_delay", p["post_reboot_delay"], 0, 3600),
            "connect_timeout": _range("connect_timeout", p["connect_timeout"], 1, 600),
            "progress_interval": _range("progress_interval", p["progress_interval"], 1, 3600)}


DOMAIN_CHECKS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "win_service_quiesce": _quiesce, "wmi_disable": _wmi, "net_isolate": _net, "sql_single_user_check": _gate,
    "site_preflight": _preflight, "sql_media": _media, "sql_setup": _setup, "site_reboot": _reboot,
}
