"""System tests: the real `ansible` / `ansible-playbook` over pywinrm against twin hosts in this process.

`Runner.ansible` / `Runner.playbook` start the real CLI as a subprocess, against an inventory a `Fleet` wrote,
with this folder's `twin_json` stdout callback (callback_plugins/), which writes every task result to a JSON
file; they return an `AnsibleRun` with the per-host task results. Assertions then read both Ansible's
results and the host model's state.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import pscontract as spec
from twin.fleet import CONNECTIONS, Fleet

PREFIX = "configmgr.sql_upgrade."
# Keys Ansible itself adds to a task result, not the module (loop / conditional bookkeeping, register).
PER_TASK = frozenset({"attempts", "retries", "ansible_loop_var", "item", "ansible_index_var", "ansible_loop"})

BIN = Path(sys.executable).parent
CALLBACKS = Path(__file__).parent / "callback_plugins"
_RUNS = itertools.count(1)


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    paths = env.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep)
    if not any((Path(p) / "ansible_collections" / "ansible" / "windows").is_dir() for p in paths if p):
        # `make venv` extracts ansible.windows into .venv/collections; tests/conftest.py puts it on the path.
        raise RuntimeError(f"ansible.windows is not on ANSIBLE_COLLECTIONS_PATH ({os.pathsep.join(paths)}): "
                           "run `make venv` (or any make target) first")
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": os.pathsep.join(p for p in paths if p),
        # ansible-core 2.19 ships no JSON stdout callback (json is ansible.posix's): use our own. The ad-hoc
        # `ansible` CLI uses the stdout callback only with ANSIBLE_LOAD_CALLBACK_PLUGINS.
        "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACKS),
        "ANSIBLE_STDOUT_CALLBACK": "twin_json",
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_HOST_KEY_CHECKING": "0",
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORKS": "20",
        "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-local"),
        "ANSIBLE_HOME": str(tmp / "ansible-home"),
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "NO_PROXY": "127.0.0.0/8,localhost",
        "no_proxy": "127.0.0.0/8,localhost",
    })
    return env


# The twin (in this process) reads module specs from the same collection path (pscontract.collection_roots).
os.environ["ANSIBLE_COLLECTIONS_PATH"] = _env(Path("/nonexistent"))["ANSIBLE_COLLECTIONS_PATH"]


def _run(cmd: list[str], env: dict[str, str], tmp: Path) -> AnsibleRun:
    result_file = tmp / f"result-{os.getpid()}-{next(_RUNS)}.json"
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**env, "TWIN_JSON_RESULT": str(result_file)},
                          timeout=300, check=False)
    if not result_file.exists():
        raise AssertionError(f"ansible wrote no results (rc {proc.returncode}): {' '.join(cmd)}\n"
                             f"{proc.stdout}\n{proc.stderr}")
    run = AnsibleRun(proc, json.loads(result_file.read_text(encoding="utf-8")))
    problems = run.return_problems()
    if problems:
        raise AssertionError("a task result of this collection breaks its module's RETURN:\n" + "\n".join(problems))
    return run


class AnsibleRun:
    def __init__(self, proc: subprocess.CompletedProcess[str], data: dict[str, Any]) -> None:
        self.proc = proc
        self.rc = proc.returncode
        self.data = data

    def task(self, index: int = -1) -> dict[str, dict[str, Any]]:
        """{host: result} of one task of the (last) play."""
        return self.data["plays"][-1]["tasks"][index]["hosts"]

    def result(self, host: str, index: int = -1) -> dict[str, Any]:
        return self.task(index)[host]

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        return self.data["stats"]

    def return_problems(self) -> list[str]:
        """Every result of a configmgr.sql_upgrade module task (what the action plugin hands the user) against
        that module's RETURN: nothing undocumented, documented keys with their types."""
        problems: list[str] = []
        for play in self.data["plays"]:
            for task in play["tasks"]:
                action = str(task["task"]["action"])
                if not action.startswith(PREFIX):
                    continue
                ps1, py = spec.module_paths(action)
                # An action plugin alone (site_reboot, as win_reboot) has its RETURN and no executor.
                returns = spec.contract_for(action).returns if ps1.exists() else spec.load_docs(py)[1]
                for host, result in task["hosts"].items():
                    if result.get("skipped"):
                        continue  # Ansible's own result of a task that did not run (when: false)
                    user = {k: v for k, v in result.items() if not k.startswith("_ansible") and k not in PER_TASK}
                    problems += [f"{host}: {p}" for p in spec.check_result(returns, user, action, True)]
        return problems


class Runner:
    def __init__(self, fleet: Fleet, tmp: Path, connection: str = "winrm") -> None:
        self.fleet = fleet
        self.tmp = tmp
        self.connection = connection
        self.inventory = fleet.write_inventory(tmp / "inventory.yml", connection=connection)
        self.env = _env(tmp)

    def ansible(self, pattern: str, module: str, args: str = "", *extra: str) -> AnsibleRun:
        cmd = [str(BIN / "ansible"), "-i", str(self.inventory), pattern, "-m", module, *extra]
        if args:
            cmd += ["-a", args]
        return _run(cmd, self.env, self.tmp)

    def playbook(self, text: str, *extra: str) -> AnsibleRun:
        path = self.tmp / f"play{abs(hash(text)) % 10**8}.yml"
        path.write_text(text, encoding="utf-8")
        cmd = [str(BIN / "ansible-playbook"), "-i", str(self.inventory), str(path), *extra]
        return _run(cmd, self.env, self.tmp)


#: The fixtures whose parameter is the connection plugin.
_CONNECTION_FIXTURES = ("fleet", "make_fleet")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every system test runs over winrm; over psrp only those marked both_connections (a chosen subset: the
    journaled apply end to end, a dropped apply, net_isolate's proof over a new psrp connection, the setup run, and
    what is psrp's own: async, its WS-Management shell, put/fetch, reboot), unless
    TWIN_ALL_CONNECTIONS=1 asks for the whole matrix. Both plugins end in the same executors and the same twin, so
    the rest would prove the same code twice (and doubled the suite's time)."""
    if os.environ.get("TWIN_ALL_CONNECTIONS") == "1":
        return
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        over_psrp = any(params.get(name) == "psrp" for name in _CONNECTION_FIXTURES)
        (dropped if over_psrp and item.get_closest_marker("both_connections") is None else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(scope="module", params=CONNECTIONS)
def fleet(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    """A small fleet shared by one test module (tests use distinct hosts or restore what they change), reached
    through each connection plugin users pick (winrm, psrp) in turn."""
    with Fleet(size=4) as twin_fleet:
        yield Runner(twin_fleet, tmp_path_factory.mktemp("fleet"), request.param)


@pytest.fixture(params=CONNECTIONS)
def make_fleet(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A fleet with a scenario for one test: make_fleet(size, scenario_dict) -> Runner; every test that uses it
    runs once over Ansible's winrm plugin and once over its psrp plugin."""
    started: list[Fleet] = []

    def make(size: int = 1, scenario: dict[str, Any] | None = None) -> Runner:
        f = Fleet(size=size, scenario=scenario).start()
        started.append(f)
        return Runner(f, tmp_path, request.param)

    yield make
    for f in started:
        f.stop()


#: Most system tests change a host in one ansible-playbook run and put it back in another: they all belong to
#: this named run (module_defaults of the collection's action group), as an operator's maintenance would.
#: Tests of the one-run-per-host rule pass run_id=None and get each playbook run's own id.
TEST_RUN = "r-systemtest"


def play(task: str, run_id: str | None = TEST_RUN) -> str:
    """A one-host, one-task play around `task` (indented as a task's module key and arguments)."""
    defaults = ""
    if run_id is not None:
        defaults = f"""  module_defaults:
    group/configmgr.sql_upgrade.service_window:
      run_id: {run_id}
"""
    return f"""
- hosts: all
  gather_facts: false
{defaults}  tasks:
    - name: the task under test
{task}
"""


def services(host: Any) -> dict[str, tuple[str, str]]:
    """name → (start_mode, state): the table a restore must give back exactly."""
    return {name: (v["start_mode"], v["state"]) for name, v in host.snapshot()["services"].items()}
