# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of sql_single_user_check (the gate before KB 256202 step 5): validate on the controller,
read the sessions with the executor (one module call per poll), decide with plugin_utils/_sql/gate.py
which sessions block, and wait for them to go up to wait_timeout."""

from __future__ import annotations

import time
from typing import Any

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.base import Call, ExecutorAction, Failed
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.errors import PlanError
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._sql.gate import (
    blocking_sessions,
    check_instance,
    describe,
    session_view,
    visibility_problem,
)


class ActionModule(ExecutorAction):
    MODULE = "sql_single_user_check"

    def refused(self, args: Any, reason: str) -> dict[str, Any]:
        return {"polls": 0}

    def work(self, opts: dict[str, Any], call: Call) -> dict[str, Any]:
        deadline = time.monotonic() + opts["wait_timeout"]
        polls = 0
        while True:
            read = call.executor("read", opts)
            polls += 1
            if read.get("failed"):
                raise Failed(f"reading the sessions failed: {read.get('msg')}", polls=polls)
            instance = dict(read.get("instance") or {})
            try:
                check_instance(opts["instance"], list(read.get("instances") or []))
            except PlanError as exc:
                raise Failed(str(exc), polls=polls, instance=instance) from None
            answered = bool(read.get("connected"))
            blind = visibility_problem(read.get("permissions")) if answered else None
            if blind:
                # Never a wait and never fail_when_blocked=false: a gate that cannot see is no gate, and the sessions
                # it would hand to step 2 would be empty.
                raise Failed(f"the gate cannot see the sessions of instance {opts['instance']}: {blind}; nothing was "
                             "changed", polls=polls, instance=instance, permissions=read.get("permissions"))
            sessions = [session_view(s) for s in read.get("sessions") or []]
            blocking = blocking_sessions(sessions, opts["allowed_programs"])
            ready = answered and not blocking
            if ready or time.monotonic() + opts["poll_interval"] > deadline:
                break
            time.sleep(opts["poll_interval"])
        result: dict[str, Any] = {"changed": False, "ready": ready, "blocking_sessions": blocking,
                                  "instance": instance, "polls": polls}
        if answered:
            result.update({"sessions": sessions, "databases": list(read.get("databases") or []),
                           "permissions": read.get("permissions")})
        else:
            service = f"its service {instance.get('service')} is {instance.get('service_state')}"
            result["connect_error"] = str(read.get("connect_error") or service)
        if ready or not opts["fail_when_blocked"]:
            return result
        waited = f" after waiting {opts['wait_timeout']} seconds ({polls} reads)" if opts["wait_timeout"] else ""
        if not answered:
            raise Failed(f"instance {opts['instance']} did not answer{waited}: {result['connect_error']}. The gate "
                         "cannot prove that setup will get the single-user connection", **result)
        raise Failed(f"instance {opts['instance']} is not ready for its upgrade{waited}: {len(blocking)} session(s) "
                     f"would race SQL Server setup for the single-user connection - {describe(blocking)}. Stop them "
                     "(KB 256202 step 2: win_service_quiesce with these sessions as sql_sessions; step 4 for remote "
                     "ones), or name an accepted program in allowed_programs", **result)
