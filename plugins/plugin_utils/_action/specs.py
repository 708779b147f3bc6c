# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The task options of every module of configmgr.sql_upgrade, declared once, in Ansible's argument_spec form.

The action plugin validates a task against its module's entry with ansible-core's own ArgumentSpecValidator (what
``ActionBase.validate_argument_spec`` runs) before anything reaches the host: types and their conversions,
defaults, choices, required options, unsupported options and the constraints below. What Ansible cannot say
(ranges, instance names, patterns, addresses, checksums) is checked by hand in ``checks.py``.

The other places an option shows are checked against this one by ``tests/unit/plugins/plugin_utils/action/
test_specs.py``: the executor's ``Ansible.Basic`` spec in ``plugins/modules/NAME.ps1`` (its public options; the
``_``-prefixed ones are the action plugin's calls, docs/executor-protocol.md) and the ``.py`` DOCUMENTATION. A new
option is a line here, its documentation and, if the host needs it, its line in the ``.ps1``.

Internal to configmgr.sql_upgrade (controller-side, not a public API).
"""

from __future__ import annotations

from typing import Any

#: Options every module of a run takes (doc fragment configmgr.sql_upgrade.service_window).
_RUN: dict[str, dict[str, Any]] = {"run_id": {"type": "str"}, "takeover": {"type": "str"}}
_TIMEOUT: dict[str, dict[str, Any]] = {"timeout": {"type": "int", "default": 120}}
_INSTANCE: dict[str, dict[str, Any]] = {"instance": {"type": "str", "default": "MSSQLSERVER"}}
_LOGIN: dict[str, dict[str, Any]] = {"login_user": {"type": "str"}, "login_password": {"type": "str", "no_log": True}}


def _str_list(default: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "list", "elements": "str"}
    if default is not None:
        spec["default"] = default
    return spec


#: Modules that are an action plugin alone (no executor on the host), as ansible.windows' win_reboot is.
ACTION_ONLY: tuple[str, ...] = ("site_reboot",)

#: module short name -> keyword arguments of ArgumentSpecValidator (argument_spec and its constraints).
SPECS: dict[str, dict[str, Any]] = {
    "win_service_quiesce": {
        "argument_spec": {
            "state": {"type": "str", "default": "quiesced", "choices": ["quiesced", "restored", "verified"]},
            "keep": _str_list([]),
            "stop": _str_list([]),
            "disable": {"type": "bool", "default": True},
            "processes": _str_list([]),
            **_INSTANCE,
            "sql_sessions": {"type": "list", "elements": "dict", "default": []},
            **_TIMEOUT,
            "missing_journal_ok": {"type": "bool", "default": False},
            "end_hung_services": {"type": "bool", "default": True},
            "configmgr_stop_timeout": {"type": "int", "default": 1800},
            "end_hung_configmgr": {"type": "bool", "default": False},
            "lease_minutes": {"type": "int", "default": 60},
            **_RUN,
        },
    },
    "wmi_disable": {
        "argument_spec": {
            "state": {"type": "str", "default": "disabled", "choices": ["disabled", "running_for_setup", "enabled"]},
            **_TIMEOUT,
            "settle_seconds": {"type": "int", "default": 5},
            **_RUN,
        },
    },
    "net_isolate": {
        "argument_spec": {
            "state": {"type": "str", "default": "isolated", "choices": ["isolated", "restored"]},
            "allow_from": _str_list(),
            "allow_to": _str_list([]),
            "domain_controllers": _str_list(),
            "lease_minutes": {"type": "int", "default": 30},
            "probation_seconds": {"type": "int", "default": 300},
            **_TIMEOUT,
            **_RUN,
        },
    },
    "sql_single_user_check": {
        "argument_spec": {
            **_INSTANCE,
            **_LOGIN,
            "allowed_programs": _str_list([]),
            "wait_timeout": {"type": "int", "default": 0},
            "poll_interval": {"type": "int", "default": 5},
            "fail_when_blocked": {"type": "bool", "default": True},
        },
        # Without a login the connection uses Windows authentication: a password alone is a mistake.
        "required_by": {"login_password": ["login_user"]},
    },
    "site_reboot": {
        "argument_spec": {
            "reboot_timeout": {"type": "int", "default": 600},
            "msg": {"type": "str", "default": "configmgr.sql_upgrade - KB 256202 step 8"},
            "pre_reboot_delay": {"type": "int", "default": 2},
            "post_reboot_delay": {"type": "int", "default": 0},
            "connect_timeout": {"type": "int", "default": 5},
            "test_command": {"type": "str"},
            "progress_interval": {"type": "int", "default": 30},
        },
    },
    "site_preflight": {
        "argument_spec": {
            **_INSTANCE,
            "target_version": {"type": "str", "required": True},
            "media_path": {"type": "str"},
            "drives": {"type": "dict", "default": {}},
            "backup_max_age_hours": {"type": "int", "default": 24},
            "product_key_given": {"type": "bool", "default": False},
            "evaluation": {"type": "bool", "default": False},
            **_RUN,
            "probe": {"type": "bool", "default": False},
        },
    },
    "sql_media": {
        "argument_spec": {
            "dest": {"type": "str", "required": True},
            "src": {"type": "str"},
            "url": {"type": "str"},
            "url_username": {"type": "str"},
            "url_password": {"type": "str", "no_log": True},
            "validate_certs": {"type": "bool", "default": True},
            "share_path": {"type": "str"},
            "share_user": {"type": "str"},
            "share_password": {"type": "str", "no_log": True},
            "checksum": {"type": "str"},
            "checksum_file": {"type": "str"},
            "chunk_size_mib": {"type": "int", "default": 64},
            "force": {"type": "bool", "default": False},
        },
        # Exactly one source. A WinRM session cannot hand its own credentials to a share (the double hop), so a
        # share needs both of its credentials, and credentials belong to their source.
        "mutually_exclusive": [["src", "url", "share_path"], ["checksum", "checksum_file"]],
        "required_one_of": [["src", "url", "share_path"]],
        "required_together": [["share_user", "share_password"]],
        "required_by": {"url_username": ["url"], "url_password": ["url"], "share_user": ["share_path"],
                        "share_password": ["share_path"]},
    },
    "sql_setup": {
        "argument_spec": {
            "media_path": {"type": "str", "required": True},
            **_INSTANCE,
            "product_key": {"type": "str", "no_log": True},
            "evaluation": {"type": "bool", "default": False},
            "target_version": {"type": "str"},
            "extra_args": {"type": "dict", "default": {}},
            "wmi_during_setup": {"type": "str", "default": "auto", "choices": ["auto", "running", "stopped"]},
            "state": {"type": "str", "default": "upgraded", "choices": ["upgraded", "verified"]},
            "wait_timeout": {"type": "int", "default": 14400},
            "poll_interval": {"type": "int", "default": 30},
            "stall_warning": {"type": "int", "default": 1800},
            **_LOGIN,
            **_RUN,
        },
        "required_by": {"login_password": ["login_user"]},
    },
}


def argument_spec(module: str) -> dict[str, dict[str, Any]]:
    """The options of `module` (short name), as Ansible's argument_spec."""
    return SPECS[module]["argument_spec"]
