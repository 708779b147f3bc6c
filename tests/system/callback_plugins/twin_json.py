"""Stdout callback for the system tests: every task result as one JSON document in a file.

ansible-core 2.19 ships no JSON stdout callback (``json`` lives in ansible.posix, which is not installed), and
parsing the human-readable ``default`` output would be fragile. This callback writes
``{"plays": [{"play": {"name"}, "tasks": [{"task": {"name", "action"}, "hosts": {HOST: RESULT}}]}],
"stats": {HOST: {ok, changed, failures, unreachable, skipped, rescued, ignored}}}`` to the file named by
``TWIN_JSON_RESULT`` when the run ends (``v2_playbook_on_stats``; ad-hoc ``ansible`` sends it too), and a
one-line summary per result on stdout for the test log. Unreachable results carry ``"unreachable": true``,
as Ansible's own result does.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: twin_json
type: stdout
short_description: Write task results as JSON to the file TWIN_JSON_RESULT names (system tests only)
description:
  - Collects every task result per play, task and host, and writes them with the play stats as one JSON
    document when the run ends.
requirements:
  - TWIN_JSON_RESULT in the environment
"""

_KEEP = ("diff", "exception", "warnings", "deprecations")
_HIDDEN = "twin_json_kept_"


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "twin_json"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plays: list[dict[str, Any]] = []
        self._tasks: dict[str, dict[str, Any]] = {}  # task uuid -> task entry of the current play

    # -- structure ----------------------------------------------------------------------------------------
    def _play(self) -> dict[str, Any]:
        if not self._plays:
            self._plays.append({"play": {"name": ""}, "tasks": []})
        return self._plays[-1]

    def _task(self, task: Any) -> dict[str, Any]:
        uid = str(task._uuid)
        entry = self._tasks.get(uid)
        if entry is None:
            entry = {"task": {"name": task.get_name(), "action": task.action}, "hosts": {}}
            self._tasks[uid] = entry
            self._play()["tasks"].append(entry)
        return entry

    def _record(self, result: Any, **flags: bool) -> None:
        raw = dict(result.result)
        # _dump_results drops these from screen output (diff below verbosity 3); the tests want them all, so
        # they travel under another name through its serialisation and come back.
        kept = [k for k in _KEEP if k in raw]
        for key in kept:
            raw[_HIDDEN + key] = raw.pop(key)
        data = json.loads(self._dump_results(raw, keep_invocation=True))
        for key in kept:
            data[key] = data.pop(_HIDDEN + key)
        data.update(flags)
        host = result.host.get_name()
        self._task(result.task)["hosts"][host] = data
        state = ",".join(k for k, v in flags.items() if v) or ("changed" if data.get("changed") else "ok")
        self._display.display(f"{host} | {result.task.get_name()} | {state}")

    # -- events -------------------------------------------------------------------------------------------
    def v2_playbook_on_play_start(self, play: Any) -> None:
        self._plays.append({"play": {"name": play.get_name()}, "tasks": []})
        self._tasks = {}

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._task(task)

    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        self._task(task)

    def v2_runner_on_ok(self, result: Any) -> None:
        self._record(result)

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._record(result, failed=True)

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._record(result, unreachable=True)

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._record(result, skipped=True)

    def v2_playbook_on_stats(self, stats: Any) -> None:
        summary = {host: stats.summarize(host) for host in sorted(stats.processed)}
        doc = {"plays": self._plays, "stats": summary}
        path = os.environ.get("TWIN_JSON_RESULT")
        if not path:
            raise RuntimeError("twin_json callback: TWIN_JSON_RESULT is not set")
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(doc, fh)
