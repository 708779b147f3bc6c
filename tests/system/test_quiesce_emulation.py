"""The twin's emulation of the win_service_quiesce / wmi_disable executors, at the emulation API (no WinRM):
it accepts exactly the .ps1's spec, refuses what it does not model by name, and fails like the executor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from twin.emulation import run_module
from twin.emulation.configmgr import journal_path
from twin.host import load_host

SITE = Path(__file__).resolve().parents[1] / "twin" / "data" / "site_server.yml"
QUIESCE = "configmgr.sql_upgrade.win_service_quiesce"
WMI = "configmgr.sql_upgrade.wmi_disable"


def host() -> Any:
    return load_host(str(SITE), name="site01", seed=1)


def test_unknown_option_is_refused_as_ansible_basic_does() -> None:
    res = run_module(host(), QUIESCE, {"_phase": "gather", "bogus": 1})
    assert res["failed"] is True and "Unsupported parameters" in res["msg"] and "bogus" in res["msg"]


def test_invalid_choice_is_refused() -> None:
    res = run_module(host(), WMI, {"state": "paused"})
    assert res["failed"] is True and "state" in res["msg"] and "disabled, running_for_setup, enabled" in res["msg"]


def test_gather_reports_the_toolhelp_snapshot_with_parent_ids_and_creation_times() -> None:
    h = host()
    res = run_module(h, QUIESCE, {"_phase": "gather", "processes": ["Microsoft.ConfigurationManagement"]})
    assert not res.get("failed"), res
    procs = {p["process_id"]: p for p in res["processes"]}
    assert set(procs) == {p.process_id for p in h.processes.snapshot()}
    ccm = h.scm.get("CcmExec").process_id
    assert procs[7204] == {"name": "powershell", "process_id": 7204, "parent_process_id": ccm,
                           "created": h.processes.get(7204).created_filetime}
    assert procs[6044]["name"] == "Microsoft.ConfigurationManagement" and procs[4]["created"] == 0


def end_op(h: Any, pid: int) -> dict[str, Any]:
    proc = h.processes.get(pid)
    return {"op": "end_process", "name": proc.name, "process_id": pid, "created": proc.created_filetime,
            "reason": "test"}


def test_end_process_ends_the_same_process_and_skips_a_gone_or_reused_one() -> None:
    h = host()
    console, helper = end_op(h, 6044), end_op(h, 7312)
    h.scm.stop("HealthService", force=True)  # MonitoringHost exits with its service
    reused = dict(end_op(h, 5120), created=1)  # same id and name, another creation time: not the same one
    res = run_module(h, QUIESCE, {"_phase": "apply", "_plan": [console, helper, reused]})
    assert not res.get("failed"), res
    assert [op["result"] for op in res["applied"]] == ["ended", "gone", "gone"]
    assert h.processes.get(6044) is None and h.processes.get(5120) is not None


@pytest.mark.parametrize(("fault", "text"), [("denied", "could not be ended"), ("stuck", "did not end within 3")])
def test_a_process_that_will_not_end_fails_by_name(fault: str, text: str) -> None:
    d = yaml.safe_load(SITE.read_text(encoding="utf-8"))
    d["processes"][3]["end"] = fault
    h = load_host(d, name="site01", seed=1)
    res = run_module(h, QUIESCE, {"_phase": "apply", "timeout": 3, "_plan": [end_op(h, 6044)]})
    assert res["failed"] is True
    assert "end_process of process Microsoft.ConfigurationManagement (id 6044) failed" in res["msg"]
    assert text in res["msg"] and ("Access is denied" in res["msg"]) == (fault == "denied")
    assert res["failed_op"]["process_id"] == 6044 and res["applied"] == []


def test_gather_reports_every_service_with_version_evidence() -> None:
    h = host()
    res = run_module(h, QUIESCE, {"_phase": "gather"})
    assert not res.get("failed"), res
    names = {s["name"] for s in res["services"]}
    assert names == set(h.scm.names())
    ccm = next(s for s in res["services"] if s["name"] == "CcmExec")
    assert ccm["product_name"] == h.scm.get("CcmExec").product_name
    assert res["journal_text"] is None and res["journal_path"] == journal_path(h)
    assert res["changed"] is False


def test_apply_writes_the_journal_before_the_first_operation_and_names_a_failed_one() -> None:
    h = host()
    doc = '{"note": "written before any change"}'
    plan = [
        {"op": "set_mode", "name": "SMS_EXECUTIVE", "start_mode": "disabled"},
        {"op": "start", "name": "SMS_EXECUTIVE"},  # already running: nothing to do
        {"op": "stop", "name": "NoSuchService"},
    ]
    res = run_module(h, QUIESCE, {"_phase": "apply", "_plan": plan, "_journal_before": doc})
    assert res["failed"] is True
    assert "stop of service NoSuchService failed" in res["msg"] and "1060" in res["msg"]
    assert res["failed_op"]["name"] == "NoSuchService"
    assert [op["name"] for op in res["applied"]] == ["SMS_EXECUTIVE", "SMS_EXECUTIVE"]
    assert json.loads(h.fs.read(journal_path(h))) == {"note": "written before any change"}
    assert h.scm.get("SMS_EXECUTIVE").start_mode == "disabled"


def test_apply_in_check_mode_changes_nothing() -> None:
    h = host()
    res = run_module(h, WMI, {"_phase": "apply", "_ansible_check_mode": True, "_journal_before": "{}",
                              "_plan": [{"op": "stop", "name": "Winmgmt"}]})
    assert res["changed"] is False and res["applied"] == []
    assert h.scm.get("Winmgmt").state == "running" and not h.fs.exists(journal_path(h))
