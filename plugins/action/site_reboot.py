# Copyright: configmgr.sql_upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of site_reboot (KB 256202 step 8): ansible.windows' win_reboot action runs the restart and the wait
in a thread of this worker, and this one prints a line every progress_interval seconds until it is back. The
restart is win_reboot's, through its public action (not its private plugin_utils), so it stays what it is."""

from __future__ import annotations

import threading
import time
from typing import Any

from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.base import Call, ExecutorAction, Failed
from ansible_collections.configmgr.sql_upgrade.plugins.plugin_utils._action.progress import duration

#: The options handed to ansible.windows.win_reboot as they are.
WIN_REBOOT_OPTIONS = ("reboot_timeout", "msg", "pre_reboot_delay", "post_reboot_delay", "connect_timeout",
                      "test_command")


def waited_for(test_command: str | None) -> str:
    then = f"then '{test_command}' to succeed" if test_command else "then the logon screen ready"
    return f"a new boot time over the connection, {then}"


class ActionModule(ExecutorAction):
    MODULE = "site_reboot"

    def always(self, args: Any) -> dict[str, Any]:
        return {"rebooted": False, "elapsed": 0, "waited_for": waited_for(args.get("test_command"))}

    def work(self, opts: dict[str, Any], call: Call) -> dict[str, Any]:
        task = self._task.copy()
        task.args = {k: opts[k] for k in WIN_REBOOT_OPTIONS if opts[k] is not None}
        reboot = self._shared_loader_obj.action_loader.get(
            "ansible.windows.win_reboot", task=task, connection=self._connection, play_context=self._play_context,
            loader=self._loader, templar=self._templar, shared_loader_obj=self._shared_loader_obj)
        what = waited_for(opts["test_command"])
        if call.check_mode:
            return {**self._shaped({}, what), "changed": True, "msg": "check mode: the host would be restarted"}
        outcome: dict[str, Any] = {}

        def restart() -> None:
            try:
                outcome.update(reboot.run(task_vars=dict(call.task_vars)))
            except Exception as exc:  # noqa: BLE001 - the thread's failure is the task's, reported below
                outcome.update({"failed": True, "msg": f"{type(exc).__name__}: {exc}"})

        worker = threading.Thread(target=restart, name=f"site_reboot-{call.host}", daemon=True)
        began = time.monotonic()
        call.say(f"restarting; waiting up to {duration(opts['reboot_timeout'])} for {what}")
        worker.start()
        while worker.is_alive():
            worker.join(opts["progress_interval"])
            if worker.is_alive():
                call.say(f"{duration(time.monotonic() - began)} since the restart was asked for; waiting up to "
                         f"{duration(opts['reboot_timeout'])} for {what}")
        result = self._shaped(outcome, what)
        waited = duration(time.monotonic() - began)
        if outcome.get("failed") or outcome.get("unreachable"):
            raise Failed(f"the restart did not end within {waited} ({outcome.get('msg')}). The host may still be "
                         "starting: look at its console, then run the play again from step 8 (--tags step8)",
                         changed=bool(outcome.get("rebooted")), **result)
        call.say(f"back after {waited} (win_reboot's elapsed {result['elapsed']} s)")
        return {**result, "changed": bool(outcome.get("changed")), "msg": f"restarted, back after {waited}"}

    @staticmethod
    def _shaped(outcome: dict[str, Any], what: str) -> dict[str, Any]:
        return {"rebooted": bool(outcome.get("rebooted")), "elapsed": int(outcome.get("elapsed") or 0),
                "waited_for": what}
