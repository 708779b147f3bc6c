# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: window_account
type: aggregate
short_description: Each host's account of the KB 256202 service window at the end of a run, on screen and as JSON
version_added: 0.1.0
author:
  - configmgr.sql_upgrade maintainers (@configmgr)
description:
  - Collects the results of every M(configmgr.sql_upgrade.win_service_quiesce) and
    M(configmgr.sql_upgrade.wmi_disable) task of the run, and when the run ends (after the recap, also when a
    rollout stopped early) prints for each host what was stopped, disabled, ended and put back, and what is
    left behind, each with its reason, without C(-v).
  - Writes the same accounts as JSON to O(output_file), for scripts and ticket systems.
  - Works with any playbook that uses the collection's modules, any stdout callback, and AWX (enable it in the
    project's C(ansible.cfg) or with the environment variable below).
requirements:
  - "Enabled in C(ansible.cfg) (C(callbacks_enabled = configmgr.sql_upgrade.window_account)) or with
    C(ANSIBLE_CALLBACKS_ENABLED=configmgr.sql_upgrade.window_account)."
options:
  output_file:
    description:
      - Where the JSON document goes, C(hosts) mapping each host name to its account (the keys the filter
        C(configmgr.sql_upgrade.window_account) returns, without C(lines)). Relative paths are relative to
        the current directory. An empty value writes no file.
    type: path
    default: sql_upgrade_account.json
    env:
      - name: CONFIGMGR_SQL_UPGRADE_ACCOUNT_FILE
    ini:
      - section: callback_window_account
        key: output_file
"""

import json
import os
from collections import defaultdict
from typing import Any

from ansible import context
from ansible.plugins.callback import CallbackBase

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._window import account

_PREFIX = "configmgr.sql_upgrade."


def _part(result: Any, name: str) -> Any:
    """ansible-core 2.19 names the parts of a task result host/task/result; older ones _host/_task/_result."""
    value = getattr(result, name, None)
    return value if value is not None else getattr(result, f"_{name}")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "configmgr.sql_upgrade.window_account"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._results: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        self._check: dict[str, bool] = {}

    def _record(self, result: Any) -> None:
        task = _part(result, "task")
        action = str(getattr(task, "resolved_action", None) or task.action)
        module = action.removeprefix(_PREFIX)
        if not action.startswith(_PREFIX) or module not in account.MODULES:
            return
        host = _part(result, "host").get_name()
        self._results[host].append((module, dict(_part(result, "result"))))
        check = task.check_mode if isinstance(task.check_mode, bool) else bool(context.CLIARGS.get("check"))
        self._check[host] = self._check.get(host, True) and check

    def v2_runner_on_ok(self, result: Any) -> None:
        self._record(result)

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._record(result)

    def v2_playbook_on_stats(self, stats: Any) -> None:
        if not self._results:
            return
        accounts = {host: account.fold(host, results, self._check.get(host, False))
                    for host, results in sorted(self._results.items())}
        self._display.banner("SERVICE WINDOW ACCOUNT (configmgr.sql_upgrade)")
        for folded in accounts.values():
            for line in account.lines(folded):
                self._display.display(line)
        path = self.get_option("output_file")
        if path:
            path = os.path.abspath(os.path.expanduser(path))
            with open(path, "w", encoding="utf-8") as out:
                json.dump({"hosts": accounts}, out, indent=2, sort_keys=True)
                out.write("\n")
            self._display.display(f"The account as JSON: {path}")
