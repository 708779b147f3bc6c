# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of sql_single_user_check (the gate before KB 256202 step 5): validate on the controller,
read the sessions with the executor (one module call per poll), decide with plugin_utils/_sql/gate.py
which sessions block, and wait for them to go up to wait_timeout."""

from __future__ import annotations

import time
from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.checks import validate_gate_args
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.errors import PlanError
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._sql.gate import (
    blocking_sessions,
    check_instance,
    describe,
    session_view,
)

MODULE = "configmgr.sql_upgrade.sql_single_user_check"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True

    def run(self, tmp: Any = None, task_vars: Any = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        host = str(task_vars.get("inventory_hostname", "?"))
        try:
            opts = validate_gate_args(self._task.args)
        except PlanError as exc:
            return {"failed": True, "changed": False, "polls": 0,
                    "msg": f"{host}: sql_single_user_check: {exc}; nothing was sent to the host"}
        deadline = time.monotonic() + opts["wait_timeout"]
        polls = 0
        while True:
            read = self._execute_module(module_name=MODULE, module_args={**opts, "_phase": "read"},
                                        task_vars=task_vars)
            polls += 1
            if read.get("failed"):
                return {"failed": True, "changed": False, "polls": polls,
                        "msg": f"{host}: reading the sessions failed: {read.get('msg')}"}
            instance = dict(read.get("instance") or {})
            try:
                check_instance(opts["instance"], list(read.get("instances") or []))
            except PlanError as exc:
                return {"failed": True, "changed": False, "polls": polls, "instance": instance,
                        "msg": f"{host}: {exc}"}
            sessions = [session_view(s) for s in read.get("sessions") or []]
            blocking = blocking_sessions(sessions, opts["allowed_programs"])
            answered = bool(read.get("connected"))
            ready = answered and not blocking
            if ready or time.monotonic() + opts["poll_interval"] > deadline:
                break
            time.sleep(opts["poll_interval"])
        result.update({"changed": False, "ready": ready, "blocking_sessions": blocking, "instance": instance,
                       "polls": polls})
        if answered:
            result.update({"sessions": sessions, "databases": list(read.get("databases") or [])})
        else:
            service = f"its service {instance.get('service')} is {instance.get('service_state')}"
            result["connect_error"] = str(read.get("connect_error") or service)
        if ready or not opts["fail_when_blocked"]:
            return result
        waited = f" after waiting {opts['wait_timeout']} seconds ({polls} reads)" if opts["wait_timeout"] else ""
        if not answered:
            result.update({"failed": True, "msg": f"{host}: instance {opts['instance']} did not answer{waited}: "
                           f"{result['connect_error']}. The gate cannot prove that setup will get the single-user "
                           "connection"})
            return result
        result.update({"failed": True, "msg": f"{host}: instance {opts['instance']} is not ready for its upgrade"
                       f"{waited}: {len(blocking)} session(s) would race SQL Server setup for the single-user "
                       f"connection - {describe(blocking)}. Stop them (KB 256202 step 2: win_service_quiesce with "
                       "these sessions as sql_sessions; step 4 for remote ones), or name an accepted program in "
                       "allowed_programs"})
        return result
