"""Record what the executors answer, for the action plugins' unit tests (tests/unit/plugins/action/test_data/).

The action plugins are unit-tested from recorded executor outputs, as ansible.windows tests win_updates from
recorded data: no host, no twin, no WinRM in those tests. This script makes the recordings by running the
real action plugins against the twin's emulation of the executors (the only Windows here), and saves every
module call's arguments and result as JSON. Run it again when the executor protocol changes:

    .venv/bin/python tests/tools/record_executor_outputs.py

Recordings from a real server can be dropped in beside them in the same shape ({"calls": [{"module_args",
"result"}]}); the tests read whatever the files say.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / ".build" / "collections"))

from ansible_collections.configmgr.sql_upgrade.plugins.action import (  # noqa: E402
    win_service_quiesce,
    wmi_disable,
)
from twin.emulation import run_module  # noqa: E402
from twin.fleet import _merge  # noqa: E402
from twin.host import DEFAULT_SCENARIO, Host, load_host  # noqa: E402
from twin.host.scenario import read_scenario  # noqa: E402

OUT = REPO / "tests" / "unit" / "plugins" / "action" / "test_data"
RUN_ID = "r-recording"
ACTIONS = {"win_service_quiesce": win_service_quiesce.ActionModule, "wmi_disable": wmi_disable.ActionModule}


def host(faults: dict[str, Any] | None = None) -> Host:
    data = read_scenario(DEFAULT_SCENARIO)
    if faults:
        data = _merge(data, {"faults": faults})
    return load_host(data, name="site01", seed=1)


def run_task(h: Host, module: str, args: dict[str, Any], check: bool = False) -> tuple[dict[str, Any], list[dict]]:
    """One task through the real action plugin, its module calls answered by the twin's emulation."""
    calls: list[dict[str, Any]] = []
    plugin = object.__new__(ACTIONS[module])
    # One named run for every recording, so that the unit tests can replay them as that run.
    plugin._task = SimpleNamespace(args={"run_id": RUN_ID, **args}, check_mode=check, diff=True, async_val=0,
                                   action=module)
    plugin._connection = SimpleNamespace(_shell=SimpleNamespace(tmpdir="C:\\Windows\\TEMP\\ansible"))

    def execute_module(module_name: str, module_args: dict[str, Any], task_vars: dict[str, Any]) -> dict[str, Any]:
        result = run_module(h, module_name, {**module_args, "_ansible_check_mode": check})
        calls.append({"module_args": json.loads(json.dumps(module_args)), "result": json.loads(json.dumps(result))})
        return result

    plugin._execute_module = execute_module  # type: ignore[method-assign]
    result = plugin.run(task_vars={"inventory_hostname": "site01"})
    return result, calls


def save(name: str, calls: list[dict[str, Any]]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps({"calls": calls}, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"recorded {path.relative_to(REPO)} ({len(calls)} call(s))")


def record_all() -> None:
    h = host()
    console = {"state": "quiesced", "processes": ["Microsoft.ConfigurationManagement"]}
    calls = run_task(h, "win_service_quiesce", console)[1]
    save("quiesce_fresh", calls)  # gather of an untouched site server, then its apply
    calls = run_task(h, "win_service_quiesce", {"state": "quiesced"})[1]
    save("quiesce_again", calls)  # gather of the quiesced host (journal present): nothing to apply
    calls = run_task(h, "wmi_disable", {"state": "disabled"})[1]
    save("wmi_disable", calls)
    calls = run_task(h, "wmi_disable", {"state": "enabled"})[1]
    save("wmi_enable", calls)
    calls = run_task(h, "win_service_quiesce", {"state": "restored"})[1]
    save("restore", calls)

    stuck = host({"services": {"SMS_EXECUTIVE": {"stop": "stuck"}}})
    calls = run_task(stuck, "win_service_quiesce", {"state": "quiesced", "timeout": 5, "configmgr_stop_timeout": 30,
                                                    "end_hung_services": False})[1]
    save("quiesce_stuck", calls)  # the apply fails on SMS_EXECUTIVE, after the journal was written
    hung = host({"services": {"SMS_EXECUTIVE": {"stop": "stuck"}}})
    calls = run_task(hung, "win_service_quiesce", {"state": "quiesced", "timeout": 5, "configmgr_stop_timeout": 30,
                                                   "end_hung_configmgr": True})[1]
    save("quiesce_hung_ended", calls)  # end_hung_configmgr: SMS_EXECUTIVE's own process is ended, the window goes on


if __name__ == "__main__":
    record_all()
