"""Aggregate callback of `make bench`: when each task started and ended on each host, written as JSON.

Writes ``[{"host", "task", "action", "start", "end", "status"}]`` (wall-clock seconds, time.time()) to the file
named by ``BENCH_TIMINGS`` when the run ends. The benchmark sums a host's task times without setup and the
reboot for the added maintenance window, and takes the first start and last end for the host's own time.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: bench_timings
type: aggregate
short_description: Per-host task start and end times as JSON in the file BENCH_TIMINGS names (benchmark only)
description:
  - Records the start (v2_runner_on_start) and the end of every task on every host.
requirements:
  - BENCH_TIMINGS in the environment
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timings"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._started: dict[tuple[str, str], float] = {}
        self._rows: list[dict[str, Any]] = []

    def v2_runner_on_start(self, host: Any, task: Any) -> None:
        self._started[(host.get_name(), task._uuid)] = time.time()

    def _end(self, result: Any, status: str) -> None:
        task = result._task
        host = result._host.get_name()
        start = self._started.pop((host, task._uuid), None)
        self._rows.append({"host": host, "task": task.get_name(), "action": task.action, "status": status,
                           "start": start, "end": time.time()})

    def v2_runner_on_ok(self, result: Any) -> None:
        self._end(result, "ok")

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._end(result, "failed")

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._end(result, "skipped")

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._end(result, "unreachable")

    def v2_playbook_on_stats(self, stats: Any) -> None:
        path = os.environ.get("BENCH_TIMINGS")
        if path:
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(self._rows, fh)
