# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of site_preflight: one read on the host, every check decided with
plugin_utils/_sql/preflight.py, every refusal listed at once (a host is refused before any change)."""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.checks import (
    _bool,
    _instance,
    _int,
    _run_options,
    _unknown,
)
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.errors import PlanError
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._sql import preflight as pf
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._sql import setup as su
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window import journal as jr
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.journal import JournalError
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window.run import (
    caller,
    decide_run,
    process_run_id,
)

MODULE = "configmgr.sql_upgrade.site_preflight"
OPTIONS = ("instance", "target_version", "media_path", "drives", "backup_max_age_hours", "product_key_given",
           "evaluation", "run_id", "takeover")


def validate_preflight_args(args: dict[str, Any]) -> dict[str, Any]:
    _unknown(args, OPTIONS)
    target = args.get("target_version")
    try:
        su.parse_version(target)
    except ValueError as exc:
        raise PlanError(f"option target_version: {exc}") from None
    drives = args.get("drives") or {}
    if not isinstance(drives, dict):
        raise PlanError("option drives must map drive letters to the GiB they need free, for example {C: 10}")
    needs: dict[str, int] = {}
    for letter, gib in drives.items():
        if not isinstance(letter, str) or len(letter.rstrip(":")) != 1 or not letter[0].isalpha():
            raise PlanError(f"option drives: {letter!r} is not a drive letter")
        needs[letter[0].upper()] = _int(f"drives.{letter}", gib, 0, 100000)
    media = args.get("media_path")
    if media is not None and (not isinstance(media, str) or any(c in media for c in '*?"<>|\x00\r\n')):
        raise PlanError(f"option media_path must be a local folder, got {media!r}")
    return {
        "instance": _instance(args),
        "target_version": str(target),
        "media_path": media,
        "drives": needs,
        "backup_max_age_hours": _int("backup_max_age_hours", args.get("backup_max_age_hours", 24), 1, 100000),
        "product_key_given": _bool("product_key_given", args.get("product_key_given", False)),
        "evaluation": _bool("evaluation", args.get("evaluation", False)),
        **_run_options(args),
    }


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True

    def run(self, tmp: Any = None, task_vars: Any = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        host = str(task_vars.get("inventory_hostname", "?"))
        try:
            opts = validate_preflight_args(dict(self._task.args))
        except PlanError as exc:
            return {"failed": True, "changed": False, "problems": [str(exc)], "upgrade_needed": False,
                    "msg": f"{host}: site_preflight: {exc}; nothing was sent to the host"}
        read = self._execute_module(module_name=MODULE, module_args={**opts, "_phase": "read"}, task_vars=task_vars)
        if read.get("failed"):
            return {"failed": True, "changed": False, "problems": [str(read.get("msg"))], "upgrade_needed": False,
                    "msg": f"{host}: the preflight read failed: {read.get('msg')}"}
        target = opts["target_version"]
        version = read.get("version")
        configmgr = dict(read.get("configmgr") or {})
        facts = {"version": version, "instance_id": read.get("instance_id"), "configmgr": configmgr,
                 "free_bytes": dict(read.get("free_bytes") or {}), "reboot": dict(read.get("reboot") or {}),
                 "databases": list(read.get("databases") or [])}
        result.update({"changed": False, "facts": facts})
        if not read.get("instance_id"):
            result.update({"failed": True, "upgrade_needed": False,
                           "problems": [f"SQL Server instance {opts['instance']} is not on this host"],
                           "msg": f"{host}: SQL Server instance {opts['instance']} is not on this host; nothing was "
                                  "changed"})
            return result
        if version and su.compare_versions(str(version), target) >= 0:
            result.update({"upgrade_needed": False, "problems": [],
                           "msg": f"{host}: instance {opts['instance']} is at {version}, already at or above {target}"})
            return result
        problems = pf.version_problems(version, target)
        problems += pf.reboot_problems(facts["reboot"])
        problems += pf.space_problems(facts["free_bytes"], {k: v * 1024**3 for k, v in opts["drives"].items()})
        problems += pf.configmgr_problems(configmgr.get("full_version"), target)
        if read.get("connect_error"):
            problems.append(f"the instance does not answer ({read['connect_error']})")
        else:
            problems += pf.database_problems(facts["databases"], configmgr.get("site_database"),
                                             opts["backup_max_age_hours"])
        problems += pf.key_problems(opts["product_key_given"], read.get("media_has_key"), opts["evaluation"])
        problems += self._holder_problems(read.get("journal_text"), opts)
        result.update({"upgrade_needed": True, "problems": problems})
        if problems:
            result.update({"failed": True, "msg": f"{host}: the preflight refuses the upgrade to {target}; nothing was "
                                                  f"changed: {'; '.join(problems)}"})
        else:
            result["msg"] = f"{host}: ready to upgrade {opts['instance']} from {version} to {target}"
        return result

    def _holder_problems(self, text: Any, opts: dict[str, Any]) -> list[str]:
        """Another run's unfinished journal holds the host (one run per host): refused now, before step 1."""
        try:
            journal = jr.parse(text)
        except JournalError as exc:
            return [f"the on-host journal is corrupt ({exc}): inspect it before anything runs"]
        try:
            decide_run(journal, caller(opts["run_id"], opts["takeover"]), process_run_id(),
                       bool(self._task.check_mode))
        except PlanError as exc:
            return [str(exc)]
        return []
