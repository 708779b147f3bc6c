"""twin.host.processes: the Toolhelp32 view of the host, children that outlive their service, the console,
TerminateProcess and its faults, reboot, and the scenario section's validation."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from twin.host import DEFAULT_SCENARIO, ScenarioError, Unmodelled, WindowsError_, load_host


def data() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(DEFAULT_SCENARIO.read_text(encoding="utf-8")))


def names(host: Any) -> dict[int, str]:
    return {p.process_id: p.name for p in host.processes.snapshot()}


def test_snapshot_has_every_service_process_once_with_services_exe_as_parent() -> None:
    host = load_host(seed=1)
    snap = host.processes.snapshot()
    pids = [p.process_id for p in snap]
    assert len(pids) == len(set(pids))
    running = {s.process_id for s in host.scm.all() if s.alive}
    service_procs = {p.process_id for p in snap if p.kind == "service"}
    assert service_procs == running
    assert all(p.parent_process_id == host.processes.services_exe_pid for p in snap if p.kind == "service")
    ccm = host.scm.get("CcmExec")
    assert names(host)[ccm.process_id] == "CcmExec"


def test_a_child_outlives_its_service_and_a_well_behaved_one_does_not() -> None:
    host = load_host(seed=1)
    ccm_pid = host.scm.get("CcmExec").process_id
    child = host.processes.get(7204)
    assert child is not None and child.parent_process_id == ccm_pid and child.parent_service == "CcmExec"
    host.scm.stop("CcmExec", force=True)
    # Windows does not end the processes a service started when the service stops.
    left = host.processes.get(7204)
    assert left is not None and left.parent_process_id == ccm_pid  # Toolhelp keeps the stale parent id
    assert host.processes.get(ccm_pid) is None
    host.scm.stop("HealthService", force=True)
    assert host.processes.get(7312) is None  # exits_with_service


def test_a_restarted_service_spawns_a_new_child_created_after_it() -> None:
    host = load_host(seed=1)
    host.scm.stop("CcmExec", force=True)
    host.tick(5)
    host.scm.start("CcmExec")
    pid = host.scm.get("CcmExec").process_id
    kids = [p for p in host.processes.by_name("powershell") if p.parent_process_id == pid]
    assert len(kids) == 1 and kids[0].process_id != 7204
    parent = host.processes.get(pid)
    assert parent is not None and kids[0].created >= parent.created > host.processes.get(7204).created


def test_terminate_a_user_process_and_refusals() -> None:
    host = load_host(seed=1)
    host.processes.terminate(6044)
    assert host.processes.by_name("Microsoft.ConfigurationManagement") == []
    with pytest.raises(WindowsError_) as err:
        host.processes.terminate(6044)
    assert err.value.code == 87
    with pytest.raises(WindowsError_) as err:
        host.processes.terminate(4)
    assert err.value.code == 5
    with pytest.raises(Unmodelled, match="WmiPrvSE"):
        host.processes.terminate(host.wmiprvse_pid)


def test_terminating_a_service_process_is_a_crash_to_the_scm() -> None:
    host = load_host(seed=1)
    pid = host.scm.get("CcmExec").process_id
    host.processes.terminate(pid)
    svc = host.scm.get("CcmExec")
    assert svc.state == "stopped" and svc.win32_exit_code == 1067


@pytest.mark.parametrize("fault", ["denied", "stuck"])
def test_end_faults(fault: str) -> None:
    d = data()
    d["processes"][3]["end"] = fault
    host = load_host(d, seed=1)
    if fault == "denied":
        with pytest.raises(WindowsError_) as err:
            host.processes.terminate(6044)
        assert err.value.code == 5
    else:
        host.processes.terminate(6044)
        host.tick(600)
        proc = host.processes.get(6044)
        assert proc is not None and proc.terminating


def test_reboot_ends_everything_children_return_with_their_service_the_console_does_not() -> None:
    host = load_host(seed=1)
    host.reboot()
    assert host.processes.by_name("Microsoft.ConfigurationManagement") == []
    assert host.processes.get(7204) is None
    pid = host.scm.get("CcmExec").process_id
    assert [p.parent_process_id for p in host.processes.by_name("powershell")] == [pid]
    assert "processes" in host.snapshot() and host.snapshot()["processes"][0]["name"] == "System"


@pytest.mark.parametrize(
    ("change", "path", "text"),
    [
        (lambda p: p[0].update(bogus=1), "processes[0].bogus", "unknown key"),
        (lambda p: p[0].update(parent_service="NoSuch"), "processes[0].parent_service", "not a service"),
        (lambda p: p[0].pop("process_id"), "processes[0].process_id", "needs its process id"),
        (lambda p: p[0].update(process_id=7205), "processes[0].process_id", "multiple of 4"),
        (lambda p: p[0].update(process_id=5120), "processes[2].process_id", r"already the id of processes\[0\]"),
        (lambda p: p[3].update(name="console.exe"), "processes[3].name", "without .exe"),
        (lambda p: p[3].update(end="sometimes"), "processes[3].end", "denied, stuck"),
        (lambda p: p[3].update(exits_with_service=True), "processes[3].exits_with_service", "only a child"),
        (lambda p: p[0].update(parent_process_id=8), "processes[0].parent_process_id", "its service's process"),
    ],
)
def test_scenario_validation(change: Any, path: str, text: str) -> None:
    d = data()
    change(d["processes"])
    with pytest.raises(ScenarioError, match=text) as err:
        load_host(d)
    assert err.value.path == path


def test_a_child_of_a_stopped_service_is_not_running() -> None:
    d = data()
    d["processes"].append({"name": "tsprogressui", "path": r"C:\Windows\CCM\TsProgressUI.exe",
                           "parent_service": "smstsmgr", "process_id": 9000})
    with pytest.raises(ScenarioError, match="smstsmgr is stopped"):
        load_host(d)
    d["processes"][-1].pop("process_id")
    host = load_host(d, seed=1)
    assert host.processes.by_name("tsprogressui") == []
    host.scm.start("smstsmgr")
    assert [p.parent_service for p in host.processes.by_name("tsprogressui")] == ["smstsmgr"]
